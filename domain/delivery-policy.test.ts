import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RETRY_SCHEDULE,
  classifyAttempt,
  nextDelayMs,
  retryAfterMs,
} from './delivery-policy.js';

describe('delivery policy', () => {
  it('classifies outcomes', () => {
    expect(classifyAttempt(200).kind).toBe('delivered');
    expect(classifyAttempt(204).kind).toBe('delivered');
    for (const status of [408, 429, 500, 502, 503, 504, undefined]) {
      expect(classifyAttempt(status).kind, String(status)).toBe('retry');
    }
    expect(classifyAttempt(410).kind).toBe('gone');
    for (const status of [301, 302, 400, 401, 403, 404, 422]) {
      expect(classifyAttempt(status).kind, String(status)).toBe('failed');
    }
  });

  it('follows the schedule with ±20 % jitter and ends when it is exhausted', () => {
    expect(DEFAULT_RETRY_SCHEDULE).toEqual([0, 5, 300, 1800, 7200, 18000, 36000, 36000]);
    expect(nextDelayMs(1, DEFAULT_RETRY_SCHEDULE, { random: () => 0.5 })).toBe(5_000);
    expect(nextDelayMs(1, DEFAULT_RETRY_SCHEDULE, { random: () => 0 })).toBe(4_000);
    expect(nextDelayMs(1, DEFAULT_RETRY_SCHEDULE, { random: () => 1 })).toBe(6_000);
    expect(nextDelayMs(0, DEFAULT_RETRY_SCHEDULE, { random: () => 1 })).toBe(0);
    expect(nextDelayMs(8)).toBeUndefined();
  });

  it('honours Retry-After within [delay, 2 × delay]', () => {
    const now = Date.parse('2026-11-24T12:00:00Z');
    expect(nextDelayMs(2, DEFAULT_RETRY_SCHEDULE, { retryAfter: '400', now })).toBe(400_000);
    expect(nextDelayMs(2, DEFAULT_RETRY_SCHEDULE, { retryAfter: '1', now })).toBe(300_000);
    expect(nextDelayMs(2, DEFAULT_RETRY_SCHEDULE, { retryAfter: '99999', now })).toBe(600_000);
    expect(retryAfterMs('Tue, 24 Nov 2026 12:01:00 GMT', now)).toBe(60_000);
    expect(retryAfterMs('soon', now)).toBeUndefined();
  });
});
