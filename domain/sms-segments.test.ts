import { describe, expect, it } from 'vitest';
import { isGsm7, smsSegments } from './sms-segments.js';

describe('SMS segments', () => {
  it('counts GSM-7 texts: 160 in one, 153 per part after that', () => {
    expect(smsSegments('')).toMatchObject({ encoding: 'GSM-7', segments: 1, units: 0 });
    expect(smsSegments('a'.repeat(160))).toMatchObject({ encoding: 'GSM-7', segments: 1 });
    expect(smsSegments('a'.repeat(161))).toMatchObject({
      encoding: 'GSM-7',
      segments: 2,
      units: 161,
      perSegment: 153,
    });
    expect(smsSegments('a'.repeat(306)).segments).toBe(2);
    expect(smsSegments('a'.repeat(307)).segments).toBe(3);
    expect(smsSegments('Hello @ £5, Ünö? "ñ", Ä and ß are GSM.').encoding).toBe('GSM-7');
  });

  it('counts extension characters as two septets and never splits them', () => {
    expect(smsSegments('€'.repeat(80))).toMatchObject({
      encoding: 'GSM-7',
      units: 160,
      segments: 1,
    });
    expect(smsSegments('€'.repeat(81)).segments).toBe(2);
    // 152 plain + "€": 154 septets, two parts; the escape pair does not straddle them.
    expect(smsSegments(`${'a'.repeat(152)}€${'a'.repeat(152)}`)).toMatchObject({
      units: 306,
      segments: 3,
    });
  });

  it('falls back to UCS-2: 70 in one, 67 per part; surrogate pairs stay whole', () => {
    expect(isGsm7('Привет')).toBe(false);
    expect(isGsm7('naïve')).toBe(false); // ï is not in the GSM alphabet
    expect(smsSegments('Привет')).toMatchObject({ encoding: 'UCS-2', segments: 1, units: 6 });
    expect(smsSegments('я'.repeat(70)).segments).toBe(1);
    expect(smsSegments('я'.repeat(71))).toMatchObject({ segments: 2, perSegment: 67 });
    // One emoji makes the whole text UCS-2; it takes two code units.
    expect(smsSegments(`${'a'.repeat(69)}😀`)).toMatchObject({
      encoding: 'UCS-2',
      units: 71,
      segments: 2,
    });
    // 66 units + an emoji (2) does not fit in 67: the pair moves whole to the next part.
    expect(smsSegments(`${'a'.repeat(66)}😀${'a'.repeat(66)}`)).toMatchObject({
      units: 134,
      segments: 3,
    });
  });
});
