import { z } from 'zod';
import { MAX_TEXT } from '../chat/conversation.js';

/** What clients send on both socket namespaces: a chat message, and a seq they have read. */

/** PostgreSQL cannot store a NUL character: refused as the HTTP routes refuse it. */
const NO_NUL = 'must not contain a NUL character (\\u0000)';

/** A message a customer (or, with its `interactionId`, an agent) sends. */
export const chatMessage = z
  .object({
    text: z
      .string()
      .max(MAX_TEXT)
      .refine(value => value.trim().length > 0, 'must not be empty')
      .refine(value => !value.includes('\u0000'), NO_NUL),
    clientMessageId: z
      .string()
      .trim()
      .min(1)
      .max(128)
      .refine(value => !value.includes('\u0000'), NO_NUL)
      .optional(),
  })
  .strict();

/**
 * A seq a client says it has read: a safe integer of 0 or more, else undefined. A huge or
 * fractional one would count every later event as already seen and silence the socket for good.
 */
export function clientSeq(value: unknown): number | undefined {
  const seq = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
  return Number.isSafeInteger(seq) && seq >= 0 ? seq : undefined;
}
