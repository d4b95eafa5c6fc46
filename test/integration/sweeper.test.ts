import { UnrecoverableError, Worker } from 'bullmq';
import pg from 'pg';
import { sql } from 'slonik';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { inboundQueue, SWEEP_SCHEDULER_ID, type InboundPayload } from '../../queues/index.js';
import { reopenFailedWork } from '../../db/work.js';
import { enqueueDurably, recordWork } from '../../queues/work.js';
import { sweepPendingWork } from '../../workers/sweeper.js';
import { createHarness, eventually, testRedisTopology, type Harness } from '../helpers/harness.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/redis-server.js';

const message = (externalId: string): InboundPayload => ({
  tenantId: 't1',
  channel: 'sms',
  externalId,
  from: '+15550001',
  receivedAt: new Date().toISOString(),
});

const countByState = async (h: Harness) =>
  Object.fromEntries(
    (
      await h.db.any(
        sql.type(
          z.object({ state: z.string(), n: z.number() }),
        )`SELECT state, count(*)::int AS n FROM work GROUP BY state`,
      )
    ).map(row => [row.state, row.n]),
  );

describe('sweeper', () => {
  let redis: PrivateRedis;
  let h: Harness;

  beforeEach(async () => {
    redis = await startPrivateRedis();
    h = await createHarness({
      REDIS_URL: redis.url,
      NEXUS_SWEEP_INTERVAL_MS: '250',
      NEXUS_SWEEP_AFTER_MS: '300',
    });
  });
  afterEach(async () => {
    await h.close();
    await redis.stop();
  });

  it('re-enqueues every pending row after FLUSHALL, and each is processed once', async () => {
    const processed = new Map<string, number>();
    const processors = {
      inbound: async (payload: InboundPayload) => {
        processed.set(payload.externalId, (processed.get(payload.externalId) ?? 0) + 1);
      },
    };

    // Phase 1: Redis loses queued jobs before any worker ran.
    for (let i = 0; i < 50; i++) {
      await enqueueDurably(h.enqueue, inboundQueue, message(`before-${i}`));
    }
    expect(await h.queues.get('inbound').getJobCounts('waiting')).toEqual({ waiting: 50 });
    await redis.client.flushall();
    expect(await h.queues.get('inbound').getJobCounts('waiting')).toEqual({ waiting: 0 });

    await h.startWorkers({ processors, select: ['inbound', 'maintenance'] });
    await eventually(async () => (await countByState(h)).done === 50, 20_000, '50 rows done');

    // Phase 2: Redis loses its data, the sweeper's own schedule included, while workers run; the
    // rows committed meanwhile never got a job at all.
    await redis.client.flushall();
    expect(await h.queues.get('maintenance').getJobScheduler(SWEEP_SCHEDULER_ID)).toBeUndefined();
    await h.db.transaction(async tx => {
      for (let i = 0; i < 20; i++) {
        await recordWork(tx, inboundQueue, message(`after-${i}`), { sweepAfterMs: 300 });
      }
    });
    await eventually(async () => (await countByState(h)).done === 70, 20_000, '70 rows done');

    expect(processed.size).toBe(70);
    expect([...processed.values()].every(count => count === 1)).toBe(true);
    expect(await h.queues.get('maintenance').getJobScheduler(SWEEP_SCHEDULER_ID)).toMatchObject({
      every: 250,
    });
    expect(await countByState(h)).toEqual({ done: 70 });
  });

  it('leaves in-flight jobs alone', async () => {
    const record = await enqueueDurably(h.enqueue, inboundQueue, message('waiting'));
    await h.db.query(sql.unsafe`UPDATE work SET next_sweep_at = now()`);
    const result = await sweepPendingWork(h, { afterMs: 60_000, batch: 100 });
    expect(result).toEqual({ skipped: false, checked: 1, reenqueued: 0, failed: 0 });
    expect(await h.queues.get('inbound').getJobState(record.jobId)).toBe('waiting');
    // The row's next check moved away, so the next sweep does not read it again.
    expect(await sweepPendingWork(h, { afterMs: 60_000, batch: 100 })).toMatchObject({
      checked: 0,
    });
  });

  it('records undelivered work whose job failed without the runner recording it, and re-drives replays that raced', async ({
    skip,
  }) => {
    // Its rogue worker connects to the private server as one plain node (host and port), which a
    // cluster answers with MOVED and a TLS server refuses.
    skip(testRedisTopology() !== 'single', 'the rogue worker needs one plain Redis server');
    const record = await enqueueDurably(h.enqueue, inboundQueue, message('stalled-out'));
    // A worker that is not ours fails the job outright. UnrecoverableError fails it at once
    // whatever its attempts. (A stall-out with attempts left is re-added instead: see
    // infrastructure-outage.test.ts.)
    const rogue = new Worker(
      'inbound',
      () => Promise.reject(new UnrecoverableError('failed outside the runner')),
      { connection: { host: '127.0.0.1', port: redis.port }, prefix: h.config.queues.prefix },
    );
    await eventually(
      async () => (await h.queues.get('inbound').getJobState(record.jobId)) === 'failed',
      10_000,
    );
    await rogue.close();
    expect(await countByState(h)).toEqual({ pending: 1 });

    await h.db.query(sql.unsafe`UPDATE work SET next_sweep_at = now()`);
    expect(await sweepPendingWork(h, { afterMs: 60_000, batch: 100 })).toMatchObject({
      failed: 1,
      reenqueued: 0,
    });
    expect(await countByState(h)).toEqual({ failed: 1 });
    const reason = await h.db.oneFirst(
      sql.type(
        z.object({ reason: z.string() }),
      )`SELECT reason FROM undelivered WHERE job_id = ${record.jobId}`,
    );
    expect(reason).toBe('failed outside the runner');
    // BullMQ keeps only the message: the sweeper records it with the generic code.
    const code = await h.db.oneFirst(
      sql.type(
        z.object({ code: z.string() }),
      )`SELECT code FROM undelivered WHERE job_id = ${record.jobId}`,
    );
    expect(code).toBe('NEXUS_ERR_WORK_FAILED');

    // A replay reopened the row but could not remove the failed job from Redis.
    await new Promise(resolve => setTimeout(resolve, 20));
    await reopenFailedWork(h.db, 'inbound', record.jobId, { sweepAfterMs: 0 });
    await h.db.query(sql.unsafe`UPDATE work SET next_sweep_at = now()`);
    expect(await sweepPendingWork(h, { afterMs: 60_000, batch: 100 })).toMatchObject({
      failed: 0,
      reenqueued: 1,
    });
    expect(await h.queues.get('inbound').getJobState(record.jobId)).toBe('waiting');
  });

  it('runs on one replica at a time', async () => {
    await enqueueDurably(h.enqueue, inboundQueue, message('locked'));
    const other = new pg.Client({ connectionString: h.dbUrl });
    await other.connect();
    try {
      await other.query('SELECT pg_advisory_lock($1)', [0x73776565]);
      expect(await sweepPendingWork(h, { afterMs: 1, batch: 10 })).toEqual({
        skipped: true,
        checked: 0,
        reenqueued: 0,
        failed: 0,
      });
    } finally {
      await other.end();
    }
  });
});
