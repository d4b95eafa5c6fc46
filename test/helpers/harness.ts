import { randomBytes } from 'node:crypto';
import type { DatabasePool } from 'slonik';
import { afterEach, beforeEach, inject } from 'vitest';
import { createServer } from 'node:http';
import { buildApp, type BuiltApp } from '../../api/app.js';
import { attachRealtime } from '../../api/realtime/index.js';
import { RealtimePublisher } from '../../lib/realtime-publisher.js';
import { createDbPool } from '../../db/pool.js';
import { loadConfig, type Config } from '../../lib/config.js';
import { InvalidationBus } from '../../lib/invalidation.js';
import { createLogger, type Logger } from '../../lib/logger.js';
import { closeRedis, createRedis, type RedisConnection } from '../../lib/redis.js';
import { QueueSet, type QueueName } from '../../queues/index.js';
import type { JobsOptions } from 'bullmq';
import { Cluster } from 'ioredis';
import { enqueueContext, type EnqueueContext } from '../../queues/work.js';
import { createMaintenanceProcessor } from '../../workers/processors/maintenance.js';
import { flagCustomerUndelivered } from '../../workers/undelivered.js';
import {
  startWorkers,
  type WorkerRuntimeOptions,
  type WorkerRuntime,
} from '../../workers/runtime.js';
import {
  TEST_REDIS_URL,
  databaseUrl,
  runDatabase,
  templateDatabase,
  withAdmin,
} from './services.js';
import type { RedisTopology, TestRedisTarget } from './redis-topologies.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/** Everything one test needs, on its own database (cloned from the template) and queue prefix. */
export interface Harness {
  readonly config: Config;
  readonly log: Logger;
  readonly db: DatabasePool;
  readonly dbUrl: string;
  readonly redis: RedisConnection;
  readonly queues: QueueSet;
  readonly bus: InvalidationBus;
  readonly enqueue: EnqueueContext;
  /** A new app (its own caches) on the harness's connections. */
  app(): BuiltApp;
  /**
   * An API replica listening on a local port, sockets included (closed by
   * {@link Harness.close}). Each call is another replica with its own caches and subscriptions.
   */
  serve(): Promise<{ url: string; app: BuiltApp; close(): Promise<void> }>;
  /** The workers' publisher of realtime events. */
  readonly publisher: RealtimePublisher;
  /**
   * Starts workers (closed by {@link Harness.close}) with the real maintenance processor unless
   * given another; lock timings are shrunk for tests.
   */
  startWorkers(
    options: Pick<WorkerRuntimeOptions, 'processors' | 'select'> & { config?: Config },
  ): Promise<WorkerRuntime>;
  close(): Promise<void>;
}

const open = new Set<Harness>();

/** Resources a test left open; the integration setup file fails the test when this is not empty. */
export const leakedHarnesses = () => open.size;

export async function createTestDatabase(): Promise<{
  name: string;
  url: string;
  drop: () => Promise<void>;
}> {
  const run = inject('testRun');
  const name = runDatabase(run);
  await withAdmin(client =>
    client.query(`CREATE DATABASE ${name} TEMPLATE ${templateDatabase(run)}`),
  );
  return {
    name,
    url: databaseUrl(name),
    drop: () =>
      withAdmin(client => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(
        () => undefined,
      ),
  };
}

/**
 * The hub's Redis variables of the run's topology (test/helpers/redis-topologies.ts): the
 * machine's Redis by default; the run's cluster or TLS server under NEXUS_TEST_REDIS.
 */
export function testRedisEnv(): Readonly<Record<string, string>> {
  return (inject('testRedis') as TestRedisTarget | undefined)?.env ?? { REDIS_URL: TEST_REDIS_URL };
}

/** The run's Redis topology: `single`, or `cluster` / `tls` under NEXUS_TEST_REDIS. */
export function testRedisTopology(): RedisTopology {
  return (inject('testRedis') as TestRedisTarget | undefined)?.topology ?? 'single';
}

/** The configuration a test process would load, with a unique queue prefix. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...testRedisEnv(),
    NEXUS_QUEUE_PREFIX: `{t${randomBytes(5).toString('hex')}}`,
    NEXUS_ADMIN_TOKEN: ADMIN_TOKEN,
    PORT: '0',
    METRICS_PORT: '0',
    // Tests send faster than a person types; the limit itself has its own test.
    NEXUS_CHAT_SESSION_LIMIT: '10000/1',
    ...env,
  });
}

export interface HarnessOptions {
  /** Per-queue job options (fewer attempts, shorter backoff). */
  jobOptions?: Partial<Record<QueueName, JobsOptions>>;
  /** The apps' logger (tests that read the logs). */
  log?: Logger;
}

export async function createHarness(
  env: Record<string, string> = {},
  options: HarnessOptions = {},
): Promise<Harness> {
  const database = await createTestDatabase();
  const config = testConfig({ DATABASE_URL: database.url, ...env });
  const log = createLogger(config.logLevel);
  const db = await createDbPool(config.db, log);
  const redis = createRedis(config.redis, 'producer', 'test-producer', log);
  await waitReady(redis);
  const queues = new QueueSet(redis, config.queues.prefix, log, options.jobOptions);
  const bus = InvalidationBus.create(config, redis, log);
  await eventually(() => bus.live, 5_000, 'the invalidation bus');
  const runtimes: WorkerRuntime[] = [];
  const servers: { close(): Promise<void> }[] = [];
  const publisher = new RealtimePublisher(redis, config, log);

  const harness: Harness = {
    config,
    log,
    db,
    dbUrl: database.url,
    redis,
    queues,
    bus,
    enqueue: enqueueContext({ db, queues, log }, config),
    app: () => buildApp({ config, log: options.log ?? log, db, queues, redis, bus }),
    publisher,
    async serve() {
      const replicaBus = InvalidationBus.create(config, redis, log, 'replica-invalidation');
      await eventually(() => replicaBus.live, 5_000, 'the replica bus');
      const app = buildApp({ config, log: options.log ?? log, db, queues, redis, bus: replicaBus });
      const server = createServer(app);
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
      const realtime = attachRealtime(server, {
        config,
        db,
        log,
        chat: app.chat,
        auth: app.auth,
        bus: replicaBus,
      });
      const { port } = server.address() as { port: number };
      let closed: Promise<void> | undefined;
      const handle = {
        url: `http://127.0.0.1:${port}`,
        app,
        close: () =>
          (closed ??= (async () => {
            await realtime.close();
            await replicaBus.close();
          })()),
      };
      servers.push(handle);
      return handle;
    },
    async startWorkers(options) {
      const workerConfig = options.config ?? config;
      const maintenance = createMaintenanceProcessor(
        { db, queues, log, publisher },
        { afterMs: workerConfig.workers.sweepAfterMs, batch: workerConfig.workers.sweepBatch },
      );
      const runtime = await startWorkers({
        config: workerConfig,
        log,
        db,
        queues,
        processors: { maintenance, ...options.processors },
        select: options.select,
        lock: { lockDuration: 2_000, stalledInterval: 1_000 },
        onFinalFailure: flagCustomerUndelivered(db, events => publisher.events(events), log),
      });
      runtimes.push(runtime);
      return runtime;
    },
    async close() {
      await Promise.all(servers.map(server => server.close()));
      await Promise.all(runtimes.map(runtime => runtime.close(5_000)));
      await queues.close();
      await bus.close();
      await deleteKeys(redis, config.queues.prefix).catch(() => undefined);
      await closeRedis(redis);
      await db.end();
      await database.drop();
      open.delete(harness);
    },
  };
  open.add(harness);
  return harness;
}

/** A harness per test, closed after it. Returns a getter: `const h = useHarness(); h().db`. */
export function useHarness(
  env: Record<string, string> = {},
  options: HarnessOptions = {},
): () => Harness {
  let current: Harness | undefined;
  beforeEach(async () => {
    current = await createHarness(env, options);
  });
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
  return () => {
    if (!current) throw new Error('harness used outside a test');
    return current;
  };
}

export function waitReady(connection: RedisConnection): Promise<void> {
  if (connection.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    connection.once('ready', resolve);
    connection.once('end', () => reject(new Error('redis connection ended before ready')));
  });
}

/** Deletes every key under a queue prefix (the test's queues), on every master of a cluster. */
export async function deleteKeys(connection: RedisConnection, prefix: string): Promise<void> {
  const nodes = connection instanceof Cluster ? connection.nodes('master') : [connection];
  for (const node of nodes) {
    const stream = node.scanStream({ match: `${prefix}:*`, count: 500 });
    for await (const keys of stream as AsyncIterable<string[]>) {
      if (keys.length > 0) await node.del(...keys);
    }
  }
}

/** Polls `check` every 50 ms until it returns a truthy value or `timeoutMs` passes. */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last instanceof Error ? last.message : JSON.stringify(last)}` : ''}`,
      );
    }
    await new Promise(resolve => setTimeout(resolve, 50));
  }
}
