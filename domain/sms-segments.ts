/**
 * SMS encoding and segment count (3GPP TS 23.038 / 23.040). A text that only uses the GSM 03.38
 * default alphabet and its extension table goes as GSM-7: 160 septets in one SMS, 153 per part of
 * a concatenated one (the user data header takes 7); an extension character takes two septets
 * (escape + character) and is never split across parts. Anything else goes as UCS-2: 70 UTF-16
 * code units in one SMS, 67 per part, and a surrogate pair (an emoji, say) is never split.
 */

/** The GSM 03.38 default alphabet (one septet each). */
const GSM_BASIC =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u001bÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
  '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
/** The extension table (escape + one septet each). */
const GSM_EXTENSION = '\f^{}\\[~]|€';

const basic = new Set(GSM_BASIC);
const extension = new Set(GSM_EXTENSION);

export type SmsEncoding = 'GSM-7' | 'UCS-2';

export interface SegmentInfo {
  encoding: SmsEncoding;
  /** Segments (SMS parts) the text needs; 1 for an empty text. */
  segments: number;
  /** Septets (GSM-7) or UTF-16 code units (UCS-2) of the text. */
  units: number;
  /** Units one part can hold: 160/153 (GSM-7) or 70/67 (UCS-2). */
  perSegment: number;
}

const LIMITS = {
  'GSM-7': { single: 160, part: 153 },
  'UCS-2': { single: 70, part: 67 },
} as const;

/** Whether every character of `text` is in the GSM-7 alphabet or its extension table. */
export function isGsm7(text: string): boolean {
  for (const char of text) {
    if (!basic.has(char) && !extension.has(char)) return false;
  }
  return true;
}

/** The encoding and segment count of an outbound text. */
export function smsSegments(text: string): SegmentInfo {
  const encoding: SmsEncoding = isGsm7(text) ? 'GSM-7' : 'UCS-2';
  // Each character's size in units; characters are never split between parts.
  const sizes: number[] = [];
  for (const char of text) {
    if (encoding === 'GSM-7') sizes.push(extension.has(char) ? 2 : 1);
    else sizes.push(char.length); // 2 for a surrogate pair
  }
  const units = sizes.reduce((sum, size) => sum + size, 0);
  const limit = LIMITS[encoding];
  if (units <= limit.single) return { encoding, segments: 1, units, perSegment: limit.single };
  let segments = 1;
  let used = 0;
  for (const size of sizes) {
    if (used + size > limit.part) {
      segments++;
      used = 0;
    }
    used += size;
  }
  return { encoding, segments, units, perSegment: limit.part };
}
