import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AppError, ERRORS, coerceError } from './errors.js';

const WIDGET_CODES = [
  'INVALID_CONTACT_CENTER',
  'INVALID_ENDPOINT',
  'INVALID_NICKNAME',
  'AUTHENTICATION_REQUIRED',
];

describe('error catalogue', () => {
  it('keys equal codes, codes follow NEXUS_ERR_<AREA>_<WHAT>, statuses are HTTP statuses', () => {
    for (const [key, definition] of Object.entries(ERRORS)) {
      expect(definition.code).toBe(key);
      // Ours are NEXUS_ERR_*; the chat widget transport's own codes keep their names.
      if (!WIDGET_CODES.includes(key)) expect(key).toMatch(/^NEXUS_ERR_[A-Z]+(_[A-Z]+)*$/);
      expect(definition.status).toBeGreaterThanOrEqual(400);
      expect(definition.status).toBeLessThan(600);
    }
  });

  it('docs/errors.md documents exactly the catalogue', () => {
    const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
    const documented = [...doc.matchAll(/^\| `([A-Z_]+)` +\| (\d{3}) +\|/gm)].map(m => [
      m[1],
      Number(m[2]),
    ]);
    expect(Object.fromEntries(documented)).toEqual(
      Object.fromEntries(
        Object.values(ERRORS).map(definition => [definition.code, definition.status]),
      ),
    );
  });

  it('AppError carries its status, default message, field and cause', () => {
    const cause = new Error('root');
    const error = new AppError('NEXUS_ERR_VALIDATION', 'body.since: bad', 'body.since', { cause });
    expect(error.status).toBe(400);
    expect(error.field).toBe('body.since');
    expect(error.cause).toBe(cause);
    expect(new AppError('NEXUS_ERR_NOT_FOUND').message).toBe('Not found');
  });

  it('coerceError wraps non-errors and keeps them as cause', () => {
    const error = coerceError({ weird: true });
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toContain('{"weird":true}');
    expect(error.cause).toEqual({ weird: true });
    const original = new TypeError('x');
    expect(coerceError(original)).toBe(original);
  });
});
