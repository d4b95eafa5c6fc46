import { describe, expect, it } from 'vitest';
import { normalisePhone, parsePhone } from './phone.js';

describe('phone numbers', () => {
  it('read every way of writing one number as the same E.164 number', () => {
    for (const raw of [
      '+15551234567',
      ' 15551234567', // "+" sent unencoded in a form: decoded as a space
      '  1 555 123 4567',
      '+1 (555) 123-4567',
      '+1.555.123.4567',
      '0015551234567',
      '15551234567', // an MSISDN without its "+"
      '1-555-123-4567',
    ]) {
      expect(normalisePhone(raw), JSON.stringify(raw)).toBe('+15551234567');
    }
    expect(normalisePhone('+44 20 7946 0958')).toBe('+442079460958');
  });

  it('keep short codes as they are', () => {
    expect(normalisePhone('12345')).toBe('12345');
    expect(normalisePhone('123456')).toBe('123456');
    expect(normalisePhone(' 12-345 ')).toBe('12345');
    expect(normalisePhone('1234567')).toBe('+1234567');
  });

  it('refuse what cannot be a phone number, saying why', () => {
    for (const raw of [
      '',
      '   ',
      'not a number',
      '+1555CALLNOW',
      '555-1234x12',
      '12',
      '+12345', // "+" and too few digits
      '+1234567890123456', // 16 digits: longer than E.164
      '07700900123', // national format: the country is unknown
      '+0123456789',
      '++15551234567',
      '+',
    ]) {
      const parsed = parsePhone(raw);
      expect(parsed.ok, JSON.stringify(raw)).toBe(false);
      if (!parsed.ok) expect(parsed.reason).toMatch(/^must be /);
    }
  });
});
