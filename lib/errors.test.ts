import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AppError,
  ERRORS,
  FAILURE_CODES,
  GENERIC_FAILURE_CODE,
  WORK_FAILURES,
  WorkFailure,
  coerceError,
  failureCodeOf,
} from './errors.js';

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

  it('docs/errors.md lists exactly the codes failed work can carry, each with a meaning', () => {
    const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
    const section = doc.split(/^## /m).find(part => part.startsWith('Failed work'));
    const documented = [...(section ?? '').matchAll(/^\| `([A-Z_]+)` +\| +(\S[^|]*?) +\|/gm)];
    expect(documented.map(m => m[1]).sort()).toEqual([...FAILURE_CODES].sort());
    expect(documented.every(m => (m[2]?.length ?? 0) > 10)).toBe(true);
  });

  it('work failure codes follow NEXUS_ERR_<AREA>_<WHAT> and are not HTTP codes', () => {
    for (const [key, definition] of Object.entries(WORK_FAILURES)) {
      expect(definition.code).toBe(key);
      expect(key).toMatch(/^NEXUS_ERR_[A-Z]+(_[A-Z]+)+$/);
      expect(Object.keys(ERRORS)).not.toContain(key);
    }
    expect(new Set(FAILURE_CODES).size).toBe(FAILURE_CODES.length);
  });

  it('the code names every catalogue code, and only catalogue codes', () => {
    // Every code the sources name (thrown, sent on a socket, recorded in undelivered, or in a
    // comment) is catalogued; every catalogued code is used somewhere besides the catalogue.
    const root = new URL('../', import.meta.url);
    const sources = ['api', 'athena', 'bin', 'db', 'domain', 'lib', 'queues', 'workers']
      .flatMap(folder =>
        readdirSync(new URL(folder, root), { recursive: true, encoding: 'utf8' }).map(
          file => `${folder}/${file}`,
        ),
      )
      .filter(file => /\.(ts|sql)$/.test(file) && !file.endsWith('.test.ts'))
      .filter(file => file !== 'lib/errors.ts');
    const text = sources.map(file => readFileSync(new URL(file, root), 'utf8')).join('\n');
    const named = new Set(text.match(/\bNEXUS_ERR_[A-Z]+(?:_[A-Z]+)*\b/g));
    const catalogued = new Set<string>([...Object.keys(ERRORS), ...FAILURE_CODES]);
    expect([...named].filter(code => !catalogued.has(code))).toEqual([]);
    // The widget transport's codes are not NEXUS_ERR_*: they are used as string literals.
    const used = (code: string) => named.has(code) || text.includes(`'${code}'`);
    expect([...catalogued].filter(code => !used(code))).toEqual([]);
  });

  it("failureCodeOf: a WorkFailure's or a listed catalogue code, else the generic one", () => {
    expect(failureCodeOf(new WorkFailure('NEXUS_ERR_SMS_OPTED_OUT', 'opted-out: x'))).toBe(
      'NEXUS_ERR_SMS_OPTED_OUT',
    );
    expect(failureCodeOf(new AppError('NEXUS_ERR_SECRET_UNREADABLE'))).toBe(
      'NEXUS_ERR_SECRET_UNREADABLE',
    );
    expect(failureCodeOf(new AppError('NEXUS_ERR_DB_BUSY'))).toBe(GENERIC_FAILURE_CODE);
    expect(failureCodeOf(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(
      GENERIC_FAILURE_CODE,
    );
    expect(failureCodeOf(undefined)).toBe(GENERIC_FAILURE_CODE);
  });

  it("WorkFailure is permanent (BullMQ's UnrecoverableError, by name) unless retried", () => {
    const permanent = new WorkFailure('NEXUS_ERR_WORK_NOT_BUILT', 'later', { attempts: 3 });
    expect(permanent.name).toBe('UnrecoverableError');
    expect(permanent.attempts).toBe(3);
    const cause = new Error('socket hang up');
    const retried = new WorkFailure('NEXUS_ERR_SMS_PROVIDER_UNAVAILABLE', 'socket hang up', {
      retry: true,
      cause,
    });
    expect(retried.name).toBe('WorkFailure');
    expect(retried.cause).toBe(cause);
  });

  it('AppError carries its status, default message, field and cause', () => {
    const cause = new Error('root');
    const error = new AppError('NEXUS_ERR_VALIDATION', 'body.since: bad', 'body.since', { cause });
    expect(error.status).toBe(400);
    expect(error.field).toBe('body.since');
    expect(error.cause).toBe(cause);
    expect(new AppError('NEXUS_ERR_NOT_FOUND').message).toBe('Not found');
  });

  it("a 5xx answer shows the catalogue's message, never the detail; a 4xx its own message", () => {
    const unreadable = new AppError('NEXUS_ERR_SECRET_UNREADABLE', 'sealed with key abcd1234');
    expect(unreadable.message).toContain('abcd1234');
    expect(unreadable.publicMessage).toBe(ERRORS.NEXUS_ERR_SECRET_UNREADABLE.message);
    const invalid = new AppError(
      'NEXUS_ERR_VALIDATION',
      'body.since: must be a date',
      'body.since',
    );
    expect(invalid.publicMessage).toBe('body.since: must be a date');
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
