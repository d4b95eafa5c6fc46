import type { Queue, Worker } from 'bullmq';
import type { Logger } from '../lib/logger.js';
import { withTimeout } from '../lib/with-timeout.js';
import { workerReplacedTotal } from '../lib/metrics.js';
import type { QueueName } from '../queues/index.js';

/**
 * A worker whose fetch loop no longer takes jobs, replaced by a new one.
 *
 * BullMQ takes jobs through a blocking connection of its own. On a Redis Cluster whose every node
 * restarted, that connection at times never becomes ready again: the worker stays "running",
 * jobs wait, and nothing takes them until the process restarts (seen in about half the runs of
 * test/integration/realtime-redis-restart.test.ts on a cluster, with BullMQ 6.7.0 and 6.7.6).
 * Every `stallMs / 3` this checks each queue of the process: when jobs waited at two checks
 * `stallMs` apart and the worker took none in between while it had a free slot and was not
 * paused, its fetching is wedged. The worker is replaced by a new one (with a new blocking
 * connection); the old one is closed in the background, its running jobs let finish. A healthy worker with a free slot takes a waiting
 * job within milliseconds, so the check does not fire on a merely busy queue (the hub uses no
 * BullMQ rate limiter, which would hold jobs waiting on purpose).
 */

/** How many jobs a worker's processor has started, and how many run now. */
export interface Usage {
  taken: number;
  running: number;
}

/** The processor, counting into `usage` every job it runs (exact, whatever becomes of the job). */
export function tracked<A extends unknown[], R>(
  processor: (...args: A) => Promise<R>,
): { processor: (...args: A) => Promise<R>; usage: Usage } {
  const usage: Usage = { taken: 0, running: 0 };
  const counting = async (...args: A) => {
    usage.taken++;
    usage.running++;
    try {
      return await processor(...args);
    } finally {
      usage.running--;
    }
  };
  // BullMQ passes the abort signal only to a processor that declares three parameters.
  Object.defineProperty(counting, 'length', { value: processor.length });
  return { usage, processor: counting };
}

export interface FetchWatchdogOptions {
  /** The process's workers, by queue; a replaced worker is swapped in this map. */
  workers: Map<QueueName, Worker>;
  /** The current worker's usage (from {@link tracked}), by queue. */
  usageOf: (name: QueueName) => Usage;
  /** Producers of the same queues, to see whether jobs wait. */
  queueOf: (name: QueueName) => Queue;
  /** A new, running worker for the queue (its usage then answered by `usageOf`). */
  replace: (name: QueueName) => Worker;
  /**
   * Whether the workers may take jobs now: not closing, not paused for the queue prefix, and
   * the connection they share ready (a new worker would share it too, so no verdict without it).
   */
  active: () => boolean;
  stallMs: number;
  log: Logger;
}

export interface FetchWatchdog {
  /**
   * Stops checking; resolves once a check in flight has ended and the replaced workers have
   * closed (their running jobs finished).
   */
  stop(): Promise<void>;
}

/** Since when jobs have waited with the queue's worker taking none, and how many it had taken. */
interface Watch {
  since: number;
  taken: number;
}

export function watchFetching(options: FetchWatchdogOptions): FetchWatchdog {
  const watches = new Map<QueueName, Watch>();
  const retiring = new Set<Promise<void>>();
  let stopped = false;
  /** Whether the queue's worker may be judged now (checked again after every wait). */
  const judgeable = (name: QueueName, worker: Worker) =>
    !stopped &&
    options.active() &&
    options.workers.get(name) === worker &&
    worker.isRunning() &&
    !worker.isPaused() &&
    options.usageOf(name).running < worker.concurrency;

  const check = async (name: QueueName, worker: Worker) => {
    if (!judgeable(name, worker)) {
      watches.delete(name);
      return;
    }
    // Redis away or slow: no verdict (the workers wait for it like everything else).
    const waiting = await withTimeout(
      options.queueOf(name).getWaitingCount(),
      Math.max(100, Math.floor(options.stallMs / 3)),
    ).catch(() => undefined);
    if (!waiting || !judgeable(name, worker)) {
      watches.delete(name);
      return;
    }
    const now = Date.now();
    const taken = options.usageOf(name).taken;
    const watch = watches.get(name);
    if (!watch || watch.taken !== taken) {
      watches.set(name, { since: now, taken });
      return;
    }
    if (now - watch.since < options.stallMs) return;
    options.log.warn(
      { queue: name, waiting, stalledMs: now - watch.since },
      'worker took no job while jobs waited: replaced by a new one',
    );
    workerReplacedTotal.inc({ queue: name });
    watches.delete(name);
    options.workers.set(name, options.replace(name));
    // Not forced: its running jobs finish and complete (a forced close would stop renewing their
    // locks, and another worker could run them again).
    const closing = worker.close().catch(() => undefined);
    retiring.add(closing);
    void closing.finally(() => retiring.delete(closing));
  };

  let checking: Promise<void> | undefined;
  const timer = setInterval(
    () => {
      if (checking) return;
      checking = Promise.all(
        [...options.workers].map(([name, worker]) => check(name, worker)),
      ).then(() => {
        checking = undefined;
      });
    },
    Math.max(100, Math.floor(options.stallMs / 3)),
  );
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await checking;
      await Promise.all([...retiring]);
    },
  };
}
