/**
 * Failures of the hub's own infrastructure (PostgreSQL or Redis unreachable, shutting down, or
 * refusing connections) as opposed to failures of a job's work. The workers never spend a job's
 * attempts on the former: they defer the job until the infrastructure is back.
 */

/**
 * slonik's and ioredis's connection-level errors, by class or error name (an instance check would
 * tie lib/ to one copy of each library).
 */
const CONNECTION_ERROR_NAMES = new Set([
  'ConnectionError',
  'BackendTerminatedError',
  'BackendTerminatedUnexpectedlyError',
  // ioredis: a command that ran out of retries while the connection was down.
  'MaxRetriesPerRequestError',
]);

/**
 * PostgreSQL SQLSTATEs and hub codes that mean "the database is not there (yet)". Not a lock
 * timeout (`55P03`, the hub's `NEXUS_ERR_DB_BUSY`): the database answers, another session holds
 * the row. That is retried as a failure of the work, using an attempt, so a job that always waits
 * on a lock ends undelivered instead of waiting for ever; the attempts of every queue outlast
 * `DB_IDLE_IN_TRANSACTION_TIMEOUT_MS`, which frees a lock a frozen session holds.
 */
const UNAVAILABLE_CODES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovering)
  '53300', // too_many_connections
  'NEXUS_ERR_DB_UNAVAILABLE',
]);

/** PostgreSQL's connection-exception class (08xxx: connection does not exist, failure, …). */
const CONNECTION_EXCEPTION_CLASS = /^08[0-9A-Z]{3}$/;

/** Messages only node-postgres, its pool and ioredis use, when their connection is away. */
const UNAVAILABLE_MESSAGES =
  /connection terminated|timeout exceeded when trying to connect|client has encountered a connection error|^connection is closed\.?$|stream isn't writeable|reached the max retries per request/i;

/**
 * Socket errors: PostgreSQL's and Redis's (slonik passes node-postgres's `connect ECONNREFUSED`
 * and `read ECONNRESET` through as they are), but also any remote's a processor calls (an SMS
 * provider), so they alone do not say whose failure it is.
 */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/**
 * What a job's failure is:
 * - `infrastructure`: PostgreSQL or Redis is unreachable (slonik's connection errors, PostgreSQL
 *   shutdown / cannot-connect / too-many-connections / 08xxx codes, the hub's
 *   `NEXUS_ERR_DB_UNAVAILABLE`, node-postgres's and ioredis's closed-connection errors);
 * - `connection`: a socket error (refused, reset, timed out): the hub's infrastructure's or a
 *   remote's; the caller finds out by checking whether PostgreSQL and Redis answer;
 * - `work`: anything else, a failure of the work itself.
 * The cause chain (and an AggregateError's errors) is searched, 6 deep.
 */
export type FailureKind = 'infrastructure' | 'connection' | 'work';

export function classifyFailure(error: unknown): FailureKind {
  let kind: FailureKind = 'work';
  const visit = (current: unknown, depth: number, seen: Set<unknown>): void => {
    if (kind === 'infrastructure' || depth >= 6) return;
    if (!current || typeof current !== 'object' || seen.has(current)) return;
    seen.add(current);
    const { name, code, message, cause, errors } = current as {
      name?: unknown;
      code?: unknown;
      message?: unknown;
      cause?: unknown;
      errors?: unknown;
    };
    // slonik's errors keep the name "Error": their class tells them apart.
    const kindName = (current as { constructor?: { name?: unknown } }).constructor?.name;
    if (
      (typeof name === 'string' && CONNECTION_ERROR_NAMES.has(name)) ||
      (typeof kindName === 'string' && CONNECTION_ERROR_NAMES.has(kindName)) ||
      (typeof code === 'string' &&
        (UNAVAILABLE_CODES.has(code) || CONNECTION_EXCEPTION_CLASS.test(code))) ||
      (typeof message === 'string' && UNAVAILABLE_MESSAGES.test(message))
    ) {
      kind = 'infrastructure';
      return;
    }
    if (typeof code === 'string' && SOCKET_CODES.has(code)) kind = 'connection';
    // Node's AggregateError: a connect attempt to several addresses that all failed.
    if (Array.isArray(errors)) for (const inner of errors) visit(inner, depth + 1, seen);
    visit(cause, depth + 1, seen);
  };
  visit(error, 0, new Set());
  return kind;
}

export interface DeferralPolicy {
  /** The first deferral's delay. */
  readonly baseMs: number;
  /** The longest delay, however many deferrals came before. */
  readonly maxMs: number;
}

/**
 * How long to put a job aside after its `deferrals`-th deferral in a row (0 for the first):
 * doubling from `baseMs` up to `maxMs`, with jitter (between half and all of it), so a backlog
 * deferred during an outage does not come back all at once.
 */
export function deferralDelayMs(
  deferrals: number,
  policy: DeferralPolicy,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(0, deferrals), 30);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  return Math.max(1, Math.round(ceiling * (0.5 + 0.5 * random())));
}
