import { DatabaseError } from 'pg';
import { BackendTerminatedError, ConnectionError, StatementTimeoutError } from 'slonik';
import { describe, expect, it } from 'vitest';
import { AppError } from './errors.js';
import { classifyFailure, deferralDelayMs } from './infrastructure.js';

const withCode = (message: string, code: string, cause?: unknown) =>
  Object.assign(new Error(message, { cause }), { code });

const pgError = (code: string) => {
  const error = new DatabaseError('server says no', 0, 'error');
  error.code = code;
  return error;
};

describe('classifyFailure', () => {
  it('knows PostgreSQL and Redis being away', () => {
    for (const error of [
      new ConnectionError('connect failed'),
      new BackendTerminatedError(new Error('terminated')),
      pgError('57P01'),
      pgError('57P03'),
      pgError('53300'),
      pgError('08006'),
      new AppError('NEXUS_ERR_DB_UNAVAILABLE'),
      new Error('Connection terminated unexpectedly'),
      new Error('timeout exceeded when trying to connect'),
      new Error('Connection is closed.'),
      new Error("Stream isn't writeable and enableOfflineQueue options is false"),
      Object.assign(new Error('Reached the max retries per request limit'), {
        name: 'MaxRetriesPerRequestError',
      }),
      // Deep in a cause chain, or wrapped by the hub's own errors.
      new Error('batch failed', { cause: new Error('flush', { cause: pgError('57P01') }) }),
      new AppError('NEXUS_ERR_INTERNAL', undefined, undefined, { cause: pgError('57P03') }),
    ]) {
      expect(classifyFailure(error), String(error)).toBe('infrastructure');
    }
  });

  it('counts a lock timeout as the work’s failure: the database answers, a row is held', () => {
    for (const error of [
      pgError('55P03'),
      new AppError('NEXUS_ERR_DB_BUSY'),
      new AppError('NEXUS_ERR_INTERNAL', undefined, undefined, { cause: pgError('55P03') }),
    ]) {
      expect(classifyFailure(error), String(error)).toBe('work');
    }
  });

  it('leaves socket errors to a check of the infrastructure (they may be a remote’s)', () => {
    expect(classifyFailure(withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'))).toBe(
      'connection',
    );
    expect(classifyFailure(withCode('read ECONNRESET', 'ECONNRESET'))).toBe('connection');
    expect(
      classifyFailure(new Error('send failed', { cause: withCode('timed out', 'ETIMEDOUT') })),
    ).toBe('connection');
    expect(
      classifyFailure(
        new AggregateError([withCode('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED')], 'x'),
      ),
    ).toBe('connection');
    // A definite sign anywhere wins over a socket code.
    expect(classifyFailure(withCode('read ECONNRESET', 'ECONNRESET', pgError('57P01')))).toBe(
      'infrastructure',
    );
  });

  it('counts failures of the work as work', () => {
    for (const error of [
      new Error('provider answered 500'),
      new StatementTimeoutError(new Error('canceling statement due to statement timeout')),
      pgError('23505'),
      pgError('40P01'),
      new AppError('NEXUS_ERR_VALIDATION'),
      'a string',
      undefined,
      null,
    ]) {
      expect(classifyFailure(error), String(error)).toBe('work');
    }
    const circular = new Error('loop');
    (circular as { cause?: unknown }).cause = circular;
    expect(classifyFailure(circular)).toBe('work');
  });
});

describe('deferralDelayMs', () => {
  const policy = { baseMs: 1_000, maxMs: 30_000 };

  it('doubles from the base up to the cap', () => {
    const top = (n: number) => deferralDelayMs(n, policy, () => 1);
    expect([0, 1, 2, 3, 4, 5, 6, 50].map(top)).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000,
    ]);
  });

  it('jitters between half and all of the delay', () => {
    expect(deferralDelayMs(3, policy, () => 0)).toBe(4_000);
    for (let i = 0; i < 100; i++) {
      const delay = deferralDelayMs(10, policy);
      expect(delay).toBeGreaterThanOrEqual(15_000);
      expect(delay).toBeLessThanOrEqual(30_000);
    }
    expect(deferralDelayMs(-1, policy, () => 1)).toBe(1_000);
  });
});
