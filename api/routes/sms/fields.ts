import { z } from 'zod';
import { parsePhone } from '../../../domain/phone.js';

/**
 * The request fields every SMS surface validates (a customer's phone, the text of one SMS) and
 * the media size limit, shared by the SMS routes and the app's body parser for media uploads.
 */

/** The largest media file a gateway may upload. */
export const MEDIA_MAX_BYTES = 5 * 1024 * 1024;

/**
 * A customer's phone number, normalised where it enters (domain/phone.ts): E.164, or a short code
 * as it is. `+1 (555) 123-4567`, `15551234567` and ` 15551234567` (a `+` lost to form decoding)
 * are one phone, so one conversation and one contact.
 */
export const phone = z
  .string()
  .max(64)
  .transform((value, ctx) => {
    const parsed = parsePhone(value);
    if (parsed.ok) return parsed.value;
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: parsed.reason });
    return z.NEVER;
  });

/** The text of one SMS as callers submit it. */
export const smsText = z.string().min(1, 'must not be empty').max(4_096);
