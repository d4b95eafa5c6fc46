import {
  createPool,
  createTypeParserPreset,
  sql,
  type DatabasePool,
  type Interceptor,
} from 'slonik';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import {
  dbConnectTotal,
  dbDisconnectTotal,
  dbErrorsTotal,
  dbRequestDuration,
  dbRequestTotal,
  dbSuccessTotal,
} from '../lib/metrics.js';

export type { DatabasePool };
export { sql };

/** int8 as number (ids stay below 2^53), timestamptz as ISO-8601 strings. */
const typeParsers = [
  ...createTypeParserPreset().filter(
    parser => !['int8', 'timestamptz', 'timestamp'].includes(parser.name),
  ),
  { name: 'int8', parse: (value: string) => Number(value) },
  { name: 'timestamptz', parse: (value: string) => new Date(value).toISOString() },
];

function metricsInterceptor(db: string): Interceptor {
  return {
    name: 'nexus-metrics',
    afterPoolConnection: () => {
      dbConnectTotal.inc({ db });
      return null;
    },
    beforePoolConnectionRelease: () => {
      dbDisconnectTotal.inc({ db });
      return null;
    },
    beforeQueryExecution: context => {
      dbRequestTotal.inc({ db });
      context.sandbox.startedAt = process.hrtime.bigint();
      return null;
    },
    afterQueryExecution: (context, _query, result) => {
      dbSuccessTotal.inc({ db, command: result.command });
      dbRequestDuration.observe(
        { db, method: result.command },
        elapsedMs(context.sandbox.startedAt),
      );
      return null;
    },
    queryExecutionError: (context, _query, error) => {
      const cause = error.cause as { code?: unknown } | undefined;
      const code = typeof cause?.code === 'string' ? cause.code : error.name;
      dbErrorsTotal.inc({ db, code });
      dbRequestDuration.observe({ db, method: 'ERROR' }, elapsedMs(context.sandbox.startedAt));
      return null;
    },
  };
}

function elapsedMs(startedAt: unknown): number {
  return typeof startedAt === 'bigint' ? Number(process.hrtime.bigint() - startedAt) / 1e6 : 0;
}

const CONNECTION_ERRORS = new Set([
  'ConnectionError',
  'BackendTerminatedError',
  'BackendTerminatedUnexpectedlyError',
]);

export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.slice(1)) || 'postgres';
}

/**
 * The connection URL with the session's `lock_timeout` added to its `options` (any the operator
 * set are kept). `options` travels in the startup packet of every connection the pool opens, a
 * reconnection included, so no session runs without it and no query pays a round trip for a SET.
 */
export function sessionUrl(url: string, lockTimeoutMs: number): string {
  const parsed = new URL(url);
  const options = parsed.searchParams.get('options');
  parsed.searchParams.set(
    'options',
    [options, `-c lock_timeout=${lockTimeoutMs}`].filter(Boolean).join(' '),
  );
  return parsed.toString();
}

/**
 * The PostgreSQL pool. Connections are opened lazily, so a database that is down at start or
 * restarts later fails queries (the API answers 503) but never the process. Every session has a
 * `lock_timeout` (a lock wait behind a stuck transaction fails with 55P03 instead of piling up
 * requests: the API answers 503 `NEXUS_ERR_DB_BUSY`, a worker retries) and an
 * `idle_in_transaction_session_timeout` (a process frozen inside a transaction loses its
 * session, and so its locks).
 */
export async function createDbPool(config: Config['db'], log: Logger): Promise<DatabasePool> {
  const pool = await createPool(sessionUrl(config.url, config.lockTimeoutMs), {
    maximumPoolSize: config.poolSize,
    connectionTimeout: 5_000,
    connectionRetryLimit: 1,
    idleTimeout: 30_000,
    statementTimeout: 30_000,
    idleInTransactionSessionTimeout: config.idleInTransactionTimeoutMs,
    interceptors: [metricsInterceptor(databaseName(config.url))],
    typeParsers,
    captureStackTrace: false,
    // slonik sends `DISCARD ALL` each time a connection goes back to the pool: one more round trip
    // per query or transaction. The hub keeps no session state on pooled connections (no SET
    // without LOCAL, no session advisory locks, no LISTEN, no temporary tables; migrations use a
    // client of their own), so there is nothing to discard.
    resetConnection: () => Promise.resolve(),
    ssl: config.ssl ? {} : undefined,
  });
  // Without a listener, an idle client killed by a PostgreSQL restart would crash the process.
  // slonik also reports ordinary query errors here; those reach their caller anyway.
  let lastErrorLog = 0;
  pool.on('error', error => {
    const now = Date.now();
    if (CONNECTION_ERRORS.has(error.name) && now - lastErrorLog > 10_000) {
      lastErrorLog = now;
      log.warn({ err: error }, 'postgres connection error');
    }
  });
  return pool;
}

/** `SELECT 1` within `timeoutMs`: whether PostgreSQL answers now. */
export async function pingDb(pool: DatabasePool, timeoutMs = 2_000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>(resolve => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([pool.oneFirst(sql.unsafe`SELECT 1`).then(() => true), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
