import { Worker, type Processor, type WorkerOptions } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { workerReplacedTotal } from '../../lib/metrics.js';
import { closeRedis, createRedis, type RedisConnection } from '../../lib/redis.js';
import type { QueueName } from '../../queues/index.js';
import { tracked, watchFetching, type Usage } from '../../workers/fetch-watchdog.js';
import { eventually, useHarness } from '../helpers/harness.js';

/**
 * The fetch watchdog (workers/fetch-watchdog.ts) on real BullMQ workers and Redis. The wedge it
 * exists for (a blocking connection that never comes back after every node of a Redis Cluster
 * restarted) is not reproducible at will; it is covered by realtime-redis-restart.test.ts in the
 * `integration-cluster` project. Here: it leaves busy and healthy workers alone, and replaces a
 * running worker that takes no job while jobs wait (held here by BullMQ's rate limiter, which the
 * hub itself never uses).
 */
const QUEUE: QueueName = 'receipts';
const replaced = async () =>
  (await workerReplacedTotal.get()).values.find(v => v.labels.queue === QUEUE)?.value ?? 0;

describe('fetch watchdog', () => {
  const h = useHarness();
  const started: Worker[] = [];
  const usages = new Map<Worker, Usage>();
  const stops: (() => Promise<void>)[] = [];
  let connection: RedisConnection | undefined;
  afterEach(async () => {
    await Promise.all(stops.splice(0).map(stop => stop()));
    await Promise.all(started.splice(0).map(worker => worker.close(true)));
    if (connection) await closeRedis(connection);
    connection = undefined;
  });

  const worker = (processor: Processor, opts: Partial<WorkerOptions>) => {
    connection ??= createRedis(h().config.redis, 'worker', 'watchdog-test', h().log);
    const counted = tracked(processor);
    const created = new Worker(QUEUE, counted.processor, {
      connection,
      prefix: h().config.queues.prefix,
      ...opts,
    });
    created.on('error', () => undefined);
    started.push(created);
    usages.set(created, counted.usage);
    return created;
  };

  const watch = (workers: Map<QueueName, Worker>, replace: () => Worker) => {
    const watchdog = watchFetching({
      workers,
      usageOf: name => usages.get(workers.get(name) as Worker) as Usage,
      queueOf: name => h().queues.get(name),
      replace,
      active: () => true,
      stallMs: 400,
      log: h().log,
    });
    stops.push(() => watchdog.stop());
  };

  it('leaves alone a worker whose every slot is busy while jobs wait', async () => {
    const busy = worker(() => new Promise(resolve => setTimeout(resolve, 1_500)), {
      concurrency: 1,
    });
    const workers = new Map([[QUEUE, busy]]);
    let replacements = 0;
    watch(workers, () => {
      replacements++;
      return worker(async () => undefined, {});
    });
    const before = await replaced();
    await h()
      .queues.get(QUEUE)
      .addBulk([1, 2, 3].map(n => ({ name: 'slow', data: { n } })));
    await new Promise(resolve => setTimeout(resolve, 2_500));
    expect(replacements).toBe(0);
    expect(workers.get(QUEUE)).toBe(busy);
    expect(await replaced()).toBe(before);
  });

  it('leaves alone a healthy worker that keeps taking jobs from a queue that never empties', async () => {
    let done = 0;
    const healthy = worker(
      async () => {
        done++;
        await new Promise(resolve => setTimeout(resolve, 20));
      },
      { concurrency: 2 },
    );
    const workers = new Map([[QUEUE, healthy]]);
    let replacements = 0;
    watch(workers, () => {
      replacements++;
      return worker(async () => undefined, {});
    });
    await h()
      .queues.get(QUEUE)
      .addBulk(Array.from({ length: 150 }, (_, n) => ({ name: 'quick', data: { n } })));
    await eventually(() => done === 150, 15_000, 'every job done');
    expect(replacements).toBe(0);
    expect(workers.get(QUEUE)).toBe(healthy);
  });

  it('replaces a running worker that takes no job while jobs wait, and the new one takes them', async () => {
    let taken = 0;
    // Held by the limiter after its first job: running, not paused, a free slot, taking nothing.
    const held = worker(
      async () => {
        taken++;
      },
      { concurrency: 5, limiter: { max: 1, duration: 60_000 } },
    );
    const workers = new Map([[QUEUE, held]]);
    const before = await replaced();
    let fresh: Worker | undefined;
    watch(workers, () => {
      // The limit is the queue's, in Redis: the new worker runs without one.
      fresh = worker(async () => {
        taken++;
      }, {});
      return fresh;
    });
    await h()
      .queues.get(QUEUE)
      .addBulk([1, 2, 3].map(n => ({ name: 'held', data: { n } })));
    await eventually(() => fresh !== undefined, 5_000, 'the held worker replaced');
    expect(workers.get(QUEUE)).toBe(fresh);
    expect(fresh?.isRunning()).toBe(true);
    expect(await replaced()).toBe(before + 1);
    await eventually(() => taken === 3, 10_000, 'every job taken');
  });
});
