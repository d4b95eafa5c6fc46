/**
 * What a webhook delivery attempt's outcome means, and when the next attempt goes (design §6,
 * reliability notes §2): 2xx delivered; 408, 429, 5xx, timeouts and connection errors retried on
 * the schedule; 410 disables the target; any other status (including 3xx: redirects are not
 * followed) fails for good.
 */

import { DEFAULT_RETRY_SCHEDULE } from '../lib/config.js';

export { DEFAULT_RETRY_SCHEDULE };

export type AttemptOutcome =
  | { kind: 'delivered' }
  | { kind: 'retry' }
  | { kind: 'failed'; reason: string }
  | { kind: 'gone'; reason: string };

/** Classifies an attempt: an HTTP status, or `undefined` for a timeout or connection error. */
export function classifyAttempt(status: number | undefined): AttemptOutcome {
  if (status === undefined) return { kind: 'retry' };
  if (status >= 200 && status < 300) return { kind: 'delivered' };
  if (status === 410) return { kind: 'gone', reason: 'the receiver answered 410 Gone' };
  if (status === 408 || status === 429 || status >= 500) return { kind: 'retry' };
  return { kind: 'failed', reason: `the receiver answered ${status}` };
}

/**
 * Milliseconds until attempt `attempt + 1` (attempt 1 is the first), or undefined when the
 * schedule is exhausted. ±20 % jitter keeps retries of many deliveries apart; a `Retry-After`
 * (seconds or an HTTP date) is honoured within [delay, 2 × delay] of the schedule's delay, so a
 * receiver can slow retries down but not stop or flood them.
 */
export function nextDelayMs(
  attempt: number,
  schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE,
  options: { retryAfter?: string | undefined; random?: () => number; now?: number } = {},
): number | undefined {
  const base = schedule[attempt];
  if (base === undefined) return undefined;
  const random = options.random ?? Math.random;
  let delay = base * 1000 * (0.8 + 0.4 * random());
  const asked = retryAfterMs(options.retryAfter, options.now ?? Date.now());
  if (asked !== undefined) delay = Math.min(Math.max(asked, base * 1000), 2 * base * 1000);
  return Math.round(delay);
}

/** A `Retry-After` header in milliseconds (delta-seconds or an HTTP date), if valid. */
export function retryAfterMs(header: string | undefined, now: number): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
