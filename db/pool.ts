import { EventEmitter } from 'node:events';
import { createPgDriverFactory } from '@slonik/pg-driver';
import {
  createPool,
  createTypeParserPreset,
  sql,
  type DatabasePool,
  type DriverClient,
  type DriverFactory,
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
 * slonik's PostgreSQL driver, with one defect of its connections mended. A connection whose socket
 * dies during a query (a network cut, a reset) destroys itself: it waits for the active query,
 * which rejects with the same error, so the destruction itself rejects before the connection
 * tells the pool it is gone. It then stays in the pool as "pending destroy" for ever, holding a
 * place: after a cut with the pool's size of queries in flight, every later query waits for a
 * place that never frees, and the process answers nothing from PostgreSQL until it restarts.
 * Here a connection whose destruction fails is reported destroyed all the same (its socket is
 * gone anyway), so the pool drops it and opens a new one when asked.
 */
export function resilientDriverFactory(
  inner: DriverFactory = createPgDriverFactory(),
): DriverFactory {
  return async args => {
    const driver = await inner(args);
    return {
      createClient: async () => mendDestroy(await driver.createClient()),
    };
  };
}

function mendDestroy(client: DriverClient): DriverClient {
  // The pool listens for `destroy` here; every other event stays the client's own.
  const destroyed = new EventEmitter();
  let gone = false;
  const reportGone = () => {
    if (gone) return;
    gone = true;
    destroyed.emit('destroy');
  };
  client.on('destroy', reportGone);
  const destroy = () => client.destroy().catch(reportGone);
  // The driver destroys the connection on its own `error`; a failed destruction shows up on the
  // same promise, which `destroy()` answers once started.
  client.on('error', () => {
    if (client.state() === 'PENDING_DESTROY') void destroy();
  });
  const on = (event: string, listener: () => void) => {
    if (event === 'destroy') destroyed.on(event, listener);
    else client.on(event as 'release', listener);
    return mended;
  };
  const off = (event: string, listener: () => void) => {
    if (event === 'destroy') destroyed.off(event, listener);
    else client.off(event, listener);
    return mended;
  };
  const mended: DriverClient = {
    ...client,
    destroy,
    on: on as unknown as DriverClient['on'],
    off: off as unknown as DriverClient['off'],
    removeListener: off as unknown as DriverClient['removeListener'],
    state: () => (gone ? 'DESTROYED' : client.state()),
  };
  return mended;
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
    driverFactory: resilientDriverFactory(),
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
