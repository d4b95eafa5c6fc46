import type { Queue, Worker } from 'bullmq';
import type { Logger } from '../lib/logger.js';
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
 * paused, its fetching is wedged. The worker is replaced by a new one (with new connections);
 * the old one is closed in the background. A healthy worker with a free slot takes a waiting
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
  return {
    usage,
    processor: async (...args: A) => {
      usage.taken++;
      usage.running++;
      try {
        return await processor(...args);
      } finally {
        usage.running--;
      }
    },
  };
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
  /** Whether the workers may take jobs now (not closing). */
  active: () => boolean;
  stallMs: number;
  log: Logger;
}

/** Since when jobs have waited with the queue's worker taking none, and how many it had taken. */
interface Watch {
  since: number;
  taken: number;
}

export function watchFetching(options: FetchWatchdogOptions): { stop(): void } {
  const watches = new Map<QueueName, Watch>();

  const check = async (name: QueueName, worker: Worker) => {
    const usage = options.usageOf(name);
    const busy = usage.running >= worker.concurrency;
    if (!options.active() || !worker.isRunning() || worker.isPaused() || busy) {
      watches.delete(name);
      return;
    }
    // Redis away: no verdict (the workers wait for it like everything else).
    const waiting = await options
      .queueOf(name)
      .getWaitingCount()
      .catch(() => undefined);
    if (!waiting) {
      watches.delete(name);
      return;
    }
    const now = Date.now();
    const watch = watches.get(name);
    if (!watch || watch.taken !== usage.taken) {
      watches.set(name, { since: now, taken: usage.taken });
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
    void worker.close(true).catch(() => undefined);
  };

  let checking = false;
  const timer = setInterval(
    () => {
      if (checking) return;
      checking = true;
      void Promise.all([...options.workers].map(([name, worker]) => check(name, worker))).finally(
        () => {
          checking = false;
        },
      );
    },
    Math.max(100, Math.floor(options.stallMs / 3)),
  );
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
