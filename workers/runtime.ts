import { Worker } from 'bullmq';
import type { DatabasePool } from 'slonik';
import type { Config } from '../lib/config.js';
import { deploymentId } from '../db/queries/deployment.js';
import { AppError, isAppError, type FailureCode } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { withTimeout } from '../lib/with-timeout.js';
import { jobsStalledTotal } from '../lib/metrics.js';
import { stampQueuePrefix } from '../lib/queue-prefix.js';
import { closeRedis, createRedis, type RedisConnection } from '../lib/redis.js';
import { sleep } from '../lib/shutdown.js';
import {
  QUEUE_NAMES,
  QUEUES,
  isQueueName,
  type QueueName,
  type QueueSet,
} from '../queues/index.js';
import type { ProcessorMap } from './processors/index.js';
import { instrumentProcessor, type Processor } from './run-processor.js';
import { tracked, watchFetching, type Usage } from './fetch-watchdog.js';
import { ensureSweepScheduler } from './sweeper.js';

/**
 * The worker process's runtime: which queues it runs (`--queues`), one BullMQ Worker per queue
 * around its instrumented processor, the queue prefix stamped with this deployment before any job
 * is taken, the sweeper's schedule, the processors' companions, and an orderly close.
 */

export interface WorkerRuntimeOptions {
  config: Config;
  log: Logger;
  db: DatabasePool;
  /** Producers: the sweeper adds jobs through them. */
  queues: QueueSet;
  /** Processors by queue name; a selected queue without one refuses to start. */
  processors: Partial<ProcessorMap>;
  /** Queue names to run; all queues when undefined. */
  select?: readonly string[] | undefined;
  /** Called once a job's final failure is recorded as undelivered. */
  onFinalFailure?: (
    queue: string,
    payload: unknown,
    reason: string,
    code: FailureCode,
  ) => Promise<void>;
  /** Overrides BullMQ's lock timings (tests shrink them). */
  lock?: { lockDuration?: number; stalledInterval?: number };
}

export interface WorkerRuntime {
  readonly queues: readonly QueueName[];
  readonly workers: ReadonlyMap<QueueName, Worker>;
  /**
   * Stops taking jobs, waits up to `graceMs` for active ones, then closes the connection.
   * Jobs still running after the grace are abandoned: BullMQ's stall check hands them to another
   * worker once their lock expires, and their work rows keep them from running twice.
   */
  close(graceMs: number): Promise<void>;
}

/**
 * The queues a hub worker runs when none is named: all but `ai-connector`, which the AI
 * connector's own process (`npm run athena`) runs with its processor.
 */
export const HUB_QUEUE_NAMES: readonly QueueName[] = QUEUE_NAMES.filter(
  name => name !== 'ai-connector',
);

/**
 * Resolves `--queues` / NEXUS_WORKER_QUEUES against the known queues and the processors present.
 * The internal `maintenance` queue (the sweeper) is always included.
 */
export function selectQueues(
  select: readonly string[] | undefined,
  processors: Partial<ProcessorMap>,
): QueueName[] {
  // Every worker process also runs the sweeper's queue: cheap, and one run at a time cluster-wide.
  const requested =
    select && select.length > 0 ? [...new Set([...select, 'maintenance'])] : HUB_QUEUE_NAMES;
  const unknown = requested.filter(name => !isQueueName(name));
  if (unknown.length > 0) {
    throw new AppError(
      'NEXUS_ERR_WORKER_UNKNOWN_QUEUE',
      `unknown queue(s): ${unknown.join(', ')}; known queues: ${QUEUE_NAMES.join(', ')}`,
    );
  }
  const names = requested as QueueName[];
  const missing = names.filter(name => !processors[name]);
  if (missing.length > 0) {
    throw new AppError(
      'NEXUS_ERR_WORKER_NO_PROCESSOR',
      `no processor for queue(s): ${missing.join(', ')}; add one to workers/processors/index.ts`,
    );
  }
  return names;
}

/**
 * Jobs a queue's worker runs at once. Webhooks wait on receivers, so they get their own figure:
 * twice the attempts in flight, since a job waiting for a place sends nothing, and a target whose
 * jobs fill its share (its places and a round waiting) must leave job slots for the others.
 */
function concurrencyOf(name: QueueName, config: Config): number {
  if (name === 'maintenance') return 1;
  if (name === 'webhooks') return 2 * config.webhooks.concurrency;
  return config.workers.concurrency;
}

/** The longest wait between two tries of a queue prefix stamp that failed at start. */
const STAMP_RETRY_MAX_MS = 5_000;

export function parseQueuesFlag(argv: readonly string[]): string[] | undefined {
  const index = argv.findIndex(arg => arg === '--queues' || arg.startsWith('--queues='));
  if (index === -1) return undefined;
  const arg = argv[index] ?? '';
  const value = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[index + 1];
  if (!value || value.startsWith('--')) {
    throw new AppError(
      'NEXUS_ERR_WORKER_UNKNOWN_QUEUE',
      '--queues needs a comma-separated list of queue names',
    );
  }
  return value
    .split(',')
    .map(name => name.trim())
    .filter(Boolean);
}

export async function startWorkers(options: WorkerRuntimeOptions): Promise<WorkerRuntime> {
  const { config, log, db, processors } = options;
  const names = selectQueues(options.select, processors);
  const connection: RedisConnection = createRedis(config.redis, 'worker', 'worker', log);
  const prefix = config.queues.prefix;
  const workers = new Map<QueueName, Worker>();

  // The queue prefix is this deployment's alone: stamped with its id before any job is taken, and
  // again on every sweep interval (Redis may have lost it). A prefix another deployment stamped
  // stops the start; found later, it pauses the workers until the prefix is this deployment's.
  // The workers are created idle and take jobs once the prefix is stamped (retried until then).
  const stampPrefix = async () => {
    const id = await deploymentId(db);
    if (await stampQueuePrefix(connection, prefix, id)) {
      log.info({ prefix, deployment: id }, 'queue prefix stamped with this deployment');
    }
  };
  let stamped = false;
  try {
    await withTimeout(stampPrefix(), 10_000);
    stamped = true;
  } catch (error) {
    if (isAppError(error) && error.code === 'NEXUS_ERR_QUEUE_PREFIX_TAKEN') {
      await closeRedis(connection);
      throw error;
    }
    // PostgreSQL or Redis not there yet: the workers wait, taking no job, until a stamp succeeds.
    log.warn(
      { err: error, prefix },
      'could not stamp the queue prefix yet; the workers take no job until it is stamped',
    );
  }

  /** What each queue's current worker runs (the fetch watchdog reads it). */
  const usages = new Map<QueueName, Usage>();
  const createWorker = (name: QueueName): Worker => {
    const definition = QUEUES[name];
    const processor = processors[name] as Processor;
    const counted = tracked(
      instrumentProcessor(definition, processor, {
        db,
        log,
        prefix,
        redisReady: () => connection.status === 'ready',
        deferMaxMs: config.workers.deferMaxMs,
        onFinalFailure: options.onFinalFailure,
      }),
    );
    usages.set(name, counted.usage);
    const worker = new Worker(name, counted.processor, {
      connection,
      prefix,
      // Run (take jobs) only once the prefix is stamped: see `run` below.
      autorun: false,
      concurrency: concurrencyOf(name, config),
      lockDuration: config.workers.lockMs,
      stalledInterval: config.workers.lockMs,
      ...options.lock,
    });
    worker.on('error', error => log.error({ err: error, queue: name }, 'worker error'));
    worker.on('stalled', () => jobsStalledTotal.inc({ queue: name }));
    return worker;
  };
  for (const name of names) workers.set(name, createWorker(name));
  // Companions of the selected queues' processors (e.g. the webhook dispatcher).
  const companions = names.flatMap(name => {
    const companion = (processors[name] as Processor).companion;
    return companion ? [companion] : [];
  });

  let closed = false;
  let running = false;
  /** The workers (and companions) start taking work: once, after the first stamp. */
  const run = () => {
    if (running || closed) return;
    running = true;
    for (const [name, worker] of workers) {
      worker
        .run()
        .catch((error: unknown) => log.error({ err: error, queue: name }, 'worker error'));
    }
    for (const companion of companions) companion.start();
  };
  if (stamped) run();

  /** Another deployment stamped the queue prefix: the workers are paused until it is ours again. */
  let pausedForPrefix = false;
  // A worker whose fetching wedged (workers/fetch-watchdog.ts) is replaced while the others run.
  const watchdog = watchFetching({
    workers,
    usageOf: name => usages.get(name) ?? { taken: 0, running: 0 },
    queueOf: name => options.queues.get(name),
    replace: name => {
      const fresh = createWorker(name);
      fresh.run().catch((error: unknown) => log.error({ err: error, queue: name }, 'worker error'));
      return fresh;
    },
    active: () => running && !closed && !pausedForPrefix && connection.status === 'ready',
    stallMs: config.workers.fetchStallMs,
    log,
  });

  // Not stamped at start: retried with a short backoff; the workers run once it succeeds. A
  // prefix found to be another deployment's keeps them waiting, with the error logged.
  let retryTimer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const stampBeforeRunning = async () => {
    let lastLog = 0;
    let lastKind: 'taken' | 'unreachable' | undefined;
    for (let turn = 0; !closed; turn++) {
      await new Promise<void>(resolve => {
        wake = resolve;
        retryTimer = setTimeout(
          resolve,
          Math.min(STAMP_RETRY_MAX_MS, 250 * 2 ** Math.min(turn, 10)),
        );
      });
      if (closed) return;
      try {
        await withTimeout(stampPrefix(), 10_000);
      } catch (error) {
        const taken = isAppError(error) && error.code === 'NEXUS_ERR_QUEUE_PREFIX_TAKEN';
        const kind = taken ? 'taken' : 'unreachable';
        if (kind !== lastKind || Date.now() - lastLog >= 30_000) {
          lastKind = kind;
          lastLog = Date.now();
          if (taken) {
            log.error({ err: error, prefix }, `${error.code}: ${error.message}; workers paused`);
          } else log.warn({ err: error, prefix }, 'could not stamp the queue prefix; retrying');
        }
        continue;
      }
      log.warn({ prefix }, 'queue prefix stamped: the workers take jobs now');
      run();
      return;
    }
  };
  if (!stamped) void stampBeforeRunning();

  let schedulerTimer: NodeJS.Timeout | undefined;
  if (workers.has('maintenance')) {
    const queue = options.queues.get('maintenance');
    const keepScheduled = () =>
      ensureSweepScheduler(queue, config.workers.sweepIntervalMs)
        .then(created => {
          if (created) log.info({ everyMs: config.workers.sweepIntervalMs }, 'sweeper scheduled');
        })
        .catch((error: unknown) =>
          log.warn({ err: error }, 'could not schedule the sweeper; retrying'),
        );
    const keepPrefix = async () => {
      // Until the first stamp, the retries above keep the workers waiting.
      if (!running) return;
      try {
        await stampPrefix();
      } catch (error) {
        if (!isAppError(error) || error.code !== 'NEXUS_ERR_QUEUE_PREFIX_TAKEN') {
          log.warn({ err: error, prefix }, 'could not stamp the queue prefix; retrying');
          return;
        }
        log.error({ err: error, prefix }, `${error.code}: ${error.message}; workers paused`);
        if (pausedForPrefix) return;
        pausedForPrefix = true;
        await Promise.all([...workers.values()].map(worker => worker.pause(true)));
        return;
      }
      if (!pausedForPrefix) return;
      pausedForPrefix = false;
      log.warn({ prefix }, "the queue prefix is this deployment's again: workers resumed");
      await Promise.all([...workers.values()].map(worker => worker.resume()));
    };
    await keepScheduled();
    schedulerTimer = setInterval(
      () => void keepPrefix().then(keepScheduled),
      config.workers.sweepIntervalMs,
    );
    schedulerTimer.unref();
  }
  log.info(
    { queues: names, concurrency: config.workers.concurrency, takingJobs: stamped },
    'workers started',
  );

  let closing: Promise<void> | undefined;
  return {
    queues: names,
    workers,
    close(graceMs) {
      closing ??= (async () => {
        closed = true;
        clearInterval(schedulerTimer);
        // No replacement from here on; a worker replaced earlier closes alongside the others.
        const watchdogStopped = watchdog.stop();
        clearTimeout(retryTimer);
        wake?.();
        if (running) await Promise.all(companions.map(companion => companion.stop()));
        await Promise.all([
          Promise.race([watchdogStopped, sleep(graceMs)]),
          ...[...workers].map(async ([name, worker]) => {
            const finished = await Promise.race([
              worker.close().then(() => true),
              sleep(graceMs).then(() => false),
            ]);
            if (!finished) {
              log.warn(
                { queue: name, graceMs },
                'grace elapsed with jobs still active; abandoning them to the stall check',
              );
            }
          }),
        ]);
        await Promise.all(companions.map(companion => companion.release?.() ?? Promise.resolve()));
        await closeRedis(connection);
        log.info('workers closed');
      })();
      return closing;
    },
  };
}
