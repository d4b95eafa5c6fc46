import type { Server } from 'node:http';
import type { DatabasePool } from 'slonik';
import { ensureDatabase, migrate } from '../db/migrate.js';
import { createDbPool } from '../db/pool.js';
import { ConfigError, loadConfig, type Config } from '../lib/config.js';
import { createLogger, type Logger } from '../lib/logger.js';
import { addQueueDepthSource, startMetricsServer } from '../lib/metrics.js';
import {
  checkEvictionPolicy,
  closeRedis,
  createRedis,
  type RedisConnection,
} from '../lib/redis.js';
import { InvalidationBus } from '../lib/invalidation.js';
import { isAppError } from '../lib/errors.js';
import { stampQueuePrefix } from '../lib/queue-prefix.js';
import { deploymentId } from '../db/queries/deployment.js';
import { Shutdown } from '../lib/shutdown.js';
import { QueueSet } from '../queues/index.js';

/** What every process (api, worker, or both) starts with. */
export interface Core {
  config: Config;
  log: Logger;
  db: DatabasePool;
  /** Fail-fast producer connection and the queues on it. */
  redis: RedisConnection;
  queues: QueueSet;
  /** Cross-replica cache invalidation over Redis pub/sub. */
  bus: InvalidationBus;
  shutdown: Shutdown;
  startedAt: Date;
  evictionPolicy: () => string | undefined;
  /** Closes what {@link bootCore} opened, last of the shutdown steps. */
  close(): Promise<void>;
}

function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.code}: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}

/**
 * Reads the configuration (exiting with every bad variable named), applies migrations when
 * enabled, opens PostgreSQL and the producer Redis connection, starts the metrics server and
 * installs SIGTERM/SIGINT handling. The caller adds its own shutdown steps, then `core.close`.
 */
export async function bootCore(
  role: 'api' | 'worker' | 'all' | 'athena',
  /** The configuration already read (the AI connector reads its own); else the hub's. */
  loaded?: Config,
): Promise<Core> {
  const startedAt = new Date();
  const config = loaded ?? loadConfigOrExit();
  const log = createLogger(config.logLevel, undefined, { role });
  for (const warning of config.warnings) log.warn(warning);
  const shutdown = new Shutdown(log);
  shutdown.installSignalHandlers();
  process.on('unhandledRejection', reason => {
    log.fatal({ err: reason }, 'unhandled promise rejection');
    void shutdown.run('unhandledRejection').finally(() => process.exit(1));
  });

  if (config.db.migrateOnStart) {
    try {
      await ensureDatabase(config.db.url, log);
      await migrate(config.db.url, log);
    } catch (error) {
      log.fatal(
        { err: error },
        'cannot migrate the database; is PostgreSQL reachable at DATABASE_URL?',
      );
      process.exit(1);
    }
  }
  let db: DatabasePool;
  try {
    db = await createDbPool(config.db, log);
  } catch (error) {
    log.fatal({ err: error }, 'cannot connect to PostgreSQL; is it reachable at DATABASE_URL?');
    process.exit(1);
  }
  const redis = createRedis(config.redis, 'producer', `${role}-producer`, log);
  const queues = new QueueSet(redis, config.queues.prefix, log);
  const bus = InvalidationBus.create(config, redis, log, `${role}-invalidation`);
  const removeDepthSource = addQueueDepthSource(() => queues.depths());

  // One deployment per queue prefix: a process of another deployment refuses to start.
  try {
    await stampPrefixAtStart(db, redis, config.queues.prefix);
  } catch (error) {
    if (isAppError(error) && error.code === 'NEXUS_ERR_QUEUE_PREFIX_TAKEN') {
      process.stderr.write(`${error.code}: ${error.message}\n`);
      log.fatal({ err: error, prefix: config.queues.prefix }, error.message);
      process.exit(1);
    }
    log.warn({ err: error }, 'could not stamp the queue prefix at start (the workers retry)');
  }

  let evictionPolicy: string | undefined;
  redis.on('ready', () => {
    void checkEvictionPolicy(redis, log).then(policy => (evictionPolicy = policy));
  });

  let metricsServer: Server | undefined;
  try {
    metricsServer = await startMetricsServer(config.metrics.port, config.http.host, log);
  } catch (error) {
    log.fatal(
      { err: error, port: config.metrics.port },
      'cannot start the metrics server; is METRICS_PORT free?',
    );
    process.exit(1);
  }

  return {
    config,
    log,
    db,
    redis,
    queues,
    bus,
    shutdown,
    startedAt,
    evictionPolicy: () => evictionPolicy,
    async close() {
      removeDepthSource();
      await queues.close();
      await bus.close();
      await closeRedis(redis);
      // A pool that lived through an outage of PostgreSQL may answer with a connection's old error.
      await db.end().catch((error: unknown) => log.warn({ err: error }, 'closing PostgreSQL'));
      await new Promise(resolve => metricsServer?.close(resolve));
    },
  };
}

/**
 * Stamps the queue prefix with the deployment's id, or checks the stamp, within `timeoutMs` of
 * PostgreSQL and Redis answering; throws `NEXUS_ERR_QUEUE_PREFIX_TAKEN` for another deployment's
 * prefix. Given up on, it leaves nothing behind (no listener on the connection).
 */
export async function stampPrefixAtStart(
  db: DatabasePool,
  redis: RedisConnection,
  prefix: string,
  timeoutMs = 5_000,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`PostgreSQL or Redis did not answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  let gaveUp = false;
  let onReady: (() => void) | undefined;
  const stamp = (async () => {
    const id = await deploymentId(db);
    if (!gaveUp && redis.status !== 'ready') {
      await new Promise<void>(resolve => {
        onReady = resolve;
        redis.once('ready', onReady);
      });
    }
    if (gaveUp) return;
    await stampQueuePrefix(redis, prefix, id);
  })();
  try {
    await Promise.race([stamp, timeout]);
  } finally {
    gaveUp = true;
    clearTimeout(timer);
    if (onReady) {
      redis.off('ready', onReady);
      onReady();
    }
    stamp.catch(() => undefined);
  }
}
