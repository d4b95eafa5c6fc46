/**
 * Phone numbers as the hub stores and compares them, whichever way they arrived: an
 * international number in E.164 (`+`, then 7 to 15 digits, the first not 0), or a short code
 * (3 to {@link SHORT_CODE_MAX_DIGITS} digits, kept as it is). The same phone then always reads
 * the same, so it threads into one conversation and matches one contact.
 *
 * The readings, in order:
 * - spaces, dashes, dots and parentheses are separators and dropped, and so is a leading space:
 *   it is what a `+` becomes when a form (`application/x-www-form-urlencoded`) is sent without
 *   encoding it (`device_address=+1555…` arrives as ` 1555…`);
 * - up to {@link SHORT_CODE_MAX_DIGITS} digits without `+` are a short code;
 * - more digits without `+` are a full international number whose `+` was left out (the form
 *   aggregators send MSISDNs in, or a `+` lost to form decoding), so `15551234567` is
 *   `+15551234567`; a leading `00` (the international call prefix) is read as `+`. A number in
 *   national format (a leading 0, say `07700900123`) cannot be read without its country and is
 *   refused, as is anything with letters or more than 15 digits.
 *
 * `channels_sender_key` (migration 0017) reduces a channel's number to the same digits in SQL.
 */

export const SHORT_CODE_MAX_DIGITS = 6;
const SHORT_CODE_MIN_DIGITS = 3;
/** E.164 allows 15 digits at most (country code included). */
const E164_MAX_DIGITS = 15;
const E164_MIN_DIGITS = 7;

export type PhoneParse = { ok: true; value: string } | { ok: false; reason: string };

/** Reads a phone number (see the module's comment); answers it normalised, or why it is not one. */
export function parsePhone(raw: string): PhoneParse {
  let rest = raw.trim();
  const international = rest.startsWith('+');
  if (international) rest = rest.slice(1);
  if (!/^[\d\s().-]+$/.test(rest)) {
    return { ok: false, reason: 'must be a phone number: digits, with a leading "+"' };
  }
  let digits = rest.replace(/\D/g, '');
  if (!international && digits.length <= SHORT_CODE_MAX_DIGITS) {
    return digits.length >= SHORT_CODE_MIN_DIGITS
      ? { ok: true, value: digits }
      : { ok: false, reason: 'must be a phone number or a short code of 3 digits or more' };
  }
  // Longer than a short code and without "+": "00" stands for it, and so does nothing at all
  // (an MSISDN, or a "+" lost to form decoding); a leading 0 alone is national, refused below.
  if (!international && digits.startsWith('00')) digits = digits.slice(2);
  if (digits.length > E164_MAX_DIGITS) {
    return { ok: false, reason: `must be a phone number of at most ${E164_MAX_DIGITS} digits` };
  }
  if (digits.length < E164_MIN_DIGITS) {
    return {
      ok: false,
      reason: `must be a phone number of at least ${E164_MIN_DIGITS} digits with its country code`,
    };
  }
  if (digits.startsWith('0')) {
    return {
      ok: false,
      reason: 'must be an international number (+ and the country code), not a national one',
    };
  }
  return { ok: true, value: `+${digits}` };
}

/** {@link parsePhone}'s value, or undefined when `raw` is not a phone number. */
export function normalisePhone(raw: string): string | undefined {
  const parsed = parsePhone(raw);
  return parsed.ok ? parsed.value : undefined;
}
