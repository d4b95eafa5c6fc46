import { z } from 'zod';
import { EMAIL_ADDRESS, LINE_BREAK } from '../../domain/email-address.js';

/**
 * The request fields of the email routes. Header values are refused at intake with the field
 * named (a 400, nothing stored) when they could inject a header: CR, LF or NUL.
 */

export const headerText = (max: number) =>
  z
    .string()
    .max(max)
    .refine(value => !LINE_BREAK.test(value), 'must not hold a line break (CR, LF) or NUL');

export const emailAddress = z
  .string()
  .trim()
  .max(254)
  .regex(EMAIL_ADDRESS, 'must be an email address (local@domain)');

/** `"a@b.example"` or `{address, name}`. */
export const namedAddress = z
  .union([
    emailAddress,
    z.object({ address: emailAddress, name: headerText(200).optional() }).strict(),
  ])
  .transform(value => (typeof value === 'string' ? { address: value } : value));
