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
 * job within milliseconds, so the check does not fire on a merely busy queue.
 */
export interface FetchWatchdogOptions {
  /** The process's workers, by queue; a replaced worker is swapped in this map. */
  workers: Map<QueueName, Worker>;
  /** Producers of the same queues, to see whether jobs wait. */
  queueOf: (name: QueueName) => Queue;
  /** A new, running worker for the queue. */
  replace: (name: QueueName) => Worker;
  /** Whether the workers may take jobs now (not closing, not paused for the queue prefix). */
  active: () => boolean;
  stallMs: number;
  log: Logger;
}

interface Watch {
  /** The worker the counts belong to. */
  worker: Worker;
  /** Jobs taken and finished since it was watched. */
  taken: number;
  finished: number;
  /** Since when jobs have waited with this worker taking none, or undefined. */
  waitingSince?: number;
  takenThen?: number;
}

export function watchFetching(options: FetchWatchdogOptions): { stop(): void } {
  const watches = new Map<QueueName, Watch>();
  const watch = (worker: Worker): Watch => {
    const state: Watch = { worker, taken: 0, finished: 0 };
    worker.on('active', () => state.taken++);
    worker.on('completed', () => state.finished++);
    worker.on('failed', () => state.finished++);
    return state;
  };
  for (const [name, worker] of options.workers) watches.set(name, watch(worker));

  const check = async (name: QueueName, state: Watch) => {
    const { worker } = state;
    const busy = state.taken - state.finished >= worker.concurrency;
    if (!options.active() || !worker.isRunning() || worker.isPaused() || busy) {
      state.waitingSince = undefined;
      return;
    }
    // Redis away: no verdict (the workers wait for it like everything else).
    const waiting = await options
      .queueOf(name)
      .getWaitingCount()
      .catch(() => undefined);
    if (!waiting) {
      state.waitingSince = undefined;
      return;
    }
    const now = Date.now();
    if (state.waitingSince === undefined || state.takenThen !== state.taken) {
      state.waitingSince = now;
      state.takenThen = state.taken;
      return;
    }
    if (now - state.waitingSince < options.stallMs) return;
    options.log.warn(
      { queue: name, waiting, stalledMs: now - state.waitingSince },
      'worker took no job while jobs waited: replaced by a new one',
    );
    workerReplacedTotal.inc({ queue: name });
    const fresh = options.replace(name);
    options.workers.set(name, fresh);
    watches.set(name, watch(fresh));
    void worker.close(true).catch(() => undefined);
  };

  let running = false;
  const timer = setInterval(
    () => {
      if (running) return;
      running = true;
      void Promise.all([...watches].map(([name, state]) => check(name, state))).finally(() => {
        running = false;
      });
    },
    Math.max(100, Math.floor(options.stallMs / 3)),
  );
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
