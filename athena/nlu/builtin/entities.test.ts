import { describe, expect, it } from 'vitest';
import type { NluEntity } from '../provider.js';
import { winkNlp } from './classifier.js';
import {
  compileEntities,
  extractEntities,
  PATTERN_INPUT_MAX_CHARS,
  PATTERN_MATCHES_MAX,
  resolveDate,
  type CompiledEntities,
} from './entities.js';
import { trainModel } from './model.js';

const now = new Date('2026-03-10T12:00:00Z');
const none = compileEntities({ lists: [], patterns: [] });

function extract(text: string, compiled: CompiledEntities = none, timeZone?: string) {
  return extractEntities(text, winkNlp().readDoc(text), compiled, { now, timeZone });
}

/** `kind value "text"` lines, and each entity's offsets checked against the text. */
function read(text: string, compiled?: CompiledEntities, timeZone?: string): string[] {
  return extract(text, compiled, timeZone).map((entity: NluEntity) => {
    expect(text.slice(entity.start, entity.end)).toBe(entity.text);
    return `${entity.kind} ${entity.value} "${entity.text}"`;
  });
}

describe('built-in entities', () => {
  it('reads a phone number written with spaces as one E.164 number', () => {
    expect(extract('Call me at +1 555 123 4567 please')).toEqual([
      { kind: 'phone', value: '+15551234567', text: '+1 555 123 4567', start: 11, end: 26 },
    ]);
    expect(
      read('+44 20 7946 0958, 0044 20 7946 0958, +1-555-123-4567, +1 (555) 123-4567, +15551234567'),
    ).toEqual([
      'phone +442079460958 "+44 20 7946 0958"',
      'phone +442079460958 "0044 20 7946 0958"',
      'phone +15551234567 "+1-555-123-4567"',
      'phone +15551234567 "+1 (555) 123-4567"',
      'phone +15551234567 "+15551234567"',
    ]);
  });

  it('keeps the digits of a national number (its country is unknown), and leaves bare digit runs as numbers', () => {
    expect(read('(555) 123-4567 or 555-123-4567; order 12345678')).toEqual([
      'phone 5551234567 "(555) 123-4567"',
      'phone 5551234567 "555-123-4567"',
      'number 12345678 "12345678"',
    ]);
  });

  it('ends a phone number before a trailing short group', () => {
    expect(read('call +1 555 123 4567 2 times')).toEqual([
      'phone +15551234567 "+1 555 123 4567"',
      'number 2 "2"',
    ]);
  });

  it('finds emails (domain in lower case) and URLs (normalised, sentence punctuation left out)', () => {
    expect(
      read(
        'Mail Bob.Smith+tag@Example.COM. See https://x.io/a?b=1, www.Example.com/help) or (http://localhost:3000/x).',
      ),
    ).toEqual([
      'email Bob.Smith+tag@example.com "Bob.Smith+tag@Example.COM"',
      'url https://x.io/a?b=1 "https://x.io/a?b=1"',
      'url https://www.example.com/help "www.Example.com/help"',
      'url http://localhost:3000/x "http://localhost:3000/x"',
    ]);
    expect(read('see https://en.wikipedia.org/wiki/Foo_(bar).')).toEqual([
      'url https://en.wikipedia.org/wiki/Foo_(bar) "https://en.wikipedia.org/wiki/Foo_(bar)"',
    ]);
  });

  it('reads numbers without float rounding, and not inside words, versions or other entities', () => {
    expect(
      read(
        'I paid $42.50 for 3 items, 1,000.50 more, -5 degrees, pages 10-20, v1.2.3, 3rd, 5pm, 007',
      ),
    ).toEqual([
      'number 42.5 "42.50"',
      'number 3 "3"',
      'number 1000.5 "1,000.50"',
      'number -5 "-5"',
      'number 10 "10"',
      'number 20 "20"',
      'number 7 "007"',
    ]);
    expect(read('order 123456789012345678901')).toEqual([
      'number 123456789012345678901 "123456789012345678901"',
    ]);
  });

  it('resolves the simple date forms relative to now, and keeps the text of the others', () => {
    expect(
      read(
        'today, tomorrow, yesterday, 2026-12-24, 24/12/2026, 12/24/2026, 24.12.2026, December 24, Dec 5th, 24 December 2026, the 3rd of May, next Monday',
      ),
    ).toEqual([
      'date 2026-03-10 "today"',
      'date 2026-03-11 "tomorrow"',
      'date 2026-03-09 "yesterday"',
      'date 2026-12-24 "2026-12-24"',
      'date 2026-12-24 "24/12/2026"',
      'date 2026-12-24 "12/24/2026"',
      'date 2026-12-24 "24.12.2026"',
      'date 2025-12-24 "December 24"',
      'date 2025-12-05 "Dec 5th"',
      'date 2026-12-24 "24 December 2026"',
      'date 2026-05-03 "the 3rd of May"',
      'date next Monday "next Monday"',
    ]);
  });

  it('does not resolve an impossible or ambiguous date', () => {
    expect(read('on 2026-02-30 or 03/04/2026')).toEqual([
      'date 2026-02-30 "2026-02-30"',
      'date 03/04/2026 "03/04/2026"',
    ]);
  });

  it('reads today in the time zone it is given', () => {
    // 12:00 UTC on March 10 is 02:00 on March 11 in Kiritimati (UTC+14), 08:00 on March 10 in New York.
    expect(read('tomorrow', none, 'Pacific/Kiritimati')).toEqual(['date 2026-03-12 "tomorrow"']);
    expect(read('tomorrow', none, 'America/New_York')).toEqual(['date 2026-03-11 "tomorrow"']);
  });

  it('answers nothing for a message without entities', () => {
    expect(extract('where is my order?')).toEqual([]);
    expect(extract('')).toEqual([]);
  });
});

describe('resolveDate', () => {
  const today = { year: 2026, month: 1, day: 5 };

  it('reads a day and month without a year as the nearest occurrence', () => {
    expect(resolveDate('December 24', today)).toBe('2025-12-24');
    expect(resolveDate('January 20', today)).toBe('2026-01-20');
    expect(resolveDate('July 5', today)).toBe('2026-07-05');
    // None within a year of today: not resolved.
    expect(resolveDate('February 29', today)).toBeUndefined();
    expect(resolveDate('February 29', { year: 2028, month: 1, day: 5 })).toBe('2028-02-29');
  });

  it('rolls over months and years for relative days', () => {
    expect(resolveDate('Yesterday', { year: 2026, month: 1, day: 1 })).toBe('2025-12-31');
    expect(resolveDate('tomorrow', { year: 2028, month: 2, day: 28 })).toBe('2028-02-29');
  });
});

describe('tenant lists', () => {
  const compiled = compileEntities(
    trainModel({
      language: 'en',
      intents: [{ name: 'x', examples: ['hello'] }],
      entities: {
        lists: [
          {
            name: 'product',
            entries: [
              { value: 'iPhone 15', synonyms: ['iphone15', 'the new iphone'] },
              { value: 'Wi-Fi router', synonyms: ['router', 'wifi box'] },
              { value: 'Café crème', synonyms: [] },
              { value: 'C++ course', synonyms: ['C++'] },
            ],
          },
          { name: 'colour', entries: [{ value: 'blue', synonyms: ['navy'] }] },
        ],
      },
    }).entities,
  );

  it('matches entries and synonyms whatever their case and accents, giving the canonical value', () => {
    expect(
      read('My WI-FI ROUTER broke and THE NEW IPHONE too; a cafe creme, navy please', compiled),
    ).toEqual([
      'product Wi-Fi router "WI-FI ROUTER"',
      'product iPhone 15 "THE NEW IPHONE"',
      'product Café crème "cafe creme"',
      'colour blue "navy"',
    ]);
  });

  it('matches on word boundaries only, the longest phrase first', () => {
    expect(read('routers, Routerless, navyblue, a router. C++ course or c++?', compiled)).toEqual([
      'product Wi-Fi router "router"',
      'product C++ course "C++ course"',
      'product C++ course "c++"',
    ]);
  });
});

describe('tenant patterns', () => {
  const compiledWith = (pattern: string, ignoreCase = false) =>
    compileEntities(
      trainModel({
        language: 'en',
        intents: [{ name: 'x', examples: ['hello'] }],
        entities: { patterns: [{ name: 'order_id', pattern, ignoreCase }] },
      }).entities,
    );

  it('reports every match, its named group `value` as the value, also where a number is', () => {
    expect(read('ord-123456 and ORD-654321', compiledWith('ORD-(?<value>\\d{6})', true))).toEqual([
      'order_id 123456 "ord-123456"',
      'number 123456 "123456"',
      'order_id 654321 "ORD-654321"',
      'number 654321 "654321"',
    ]);
    expect(read('ord-123456 ORD-654321', compiledWith('ORD-\\d{6}'))).toEqual([
      'number 123456 "123456"',
      'order_id ORD-654321 "ORD-654321"',
      'number 654321 "654321"',
    ]);
  });

  it('keeps at most PATTERN_MATCHES_MAX matches and reads only the first PATTERN_INPUT_MAX_CHARS', () => {
    const compiled = compiledWith('[A-Z]{2}\\d');
    const many = Array.from({ length: 30 }, (_, i) => `AB${i % 10}`).join(' ');
    expect(extract(many, compiled).filter(e => e.kind === 'order_id')).toHaveLength(
      PATTERN_MATCHES_MAX,
    );
    const late = `${'.'.repeat(PATTERN_INPUT_MAX_CHARS - 2)}AB1 XY2`;
    expect(extract(late, compiled).filter(e => e.kind === 'order_id')).toEqual([]);
    const edge = `${'.'.repeat(PATTERN_INPUT_MAX_CHARS - 3)}AB1`;
    expect(extract(edge, compiled).filter(e => e.kind === 'order_id')).toEqual([
      {
        kind: 'order_id',
        value: 'AB1',
        text: 'AB1',
        start: PATTERN_INPUT_MAX_CHARS - 3,
        end: PATTERN_INPUT_MAX_CHARS,
      },
    ]);
  });

  it('steps over zero-length matches of a stored pattern instead of looping', () => {
    const compiled = compileEntities({
      lists: [],
      patterns: [{ name: 'gap', pattern: '(?=x)|y', flags: 'g' }],
    });
    expect(read('xxy', compiled)).toEqual(['gap y "y"']);
  });
});
