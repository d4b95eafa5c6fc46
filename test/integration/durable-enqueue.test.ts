import { sql } from 'slonik';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { createDbPool } from '../../db/pool.js';
import { createLogger } from '../../lib/logger.js';
import { registry } from '../../lib/metrics.js';
import { closeRedis, createRedis } from '../../lib/redis.js';
import { QueueSet, inboundQueue, type InboundPayload } from '../../queues/index.js';
import { enqueueDurably, recordWork } from '../../queues/work.js';
import { useHarness } from '../helpers/harness.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const message = (externalId: string, tenantId = 't1'): InboundPayload => ({
  tenantId,
  channel: 'sms',
  externalId,
  from: '+15550001',
  text: 'hello',
  receivedAt: new Date().toISOString(),
});

const workRows = z.object({ job_id: z.string(), state: z.string(), overdue: z.boolean() });

async function metricValue(name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find(m => m.name === name);
  const value = metric?.values.find(v =>
    Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  );
  return value?.value ?? 0;
}

describe('durable enqueue', () => {
  const h = useHarness();

  it('commits a pending work row, then adds the job under the idempotency key', async () => {
    const record = await enqueueDurably(h().enqueue, inboundQueue, message('m-1'));
    expect(record).toMatchObject({ created: true, state: 'pending', jobId: 'inbound.t1.sms.m-1' });
    const rows = await h().db.any(
      sql.type(workRows)`SELECT job_id, state, next_sweep_at > now() AS overdue FROM work`,
    );
    expect(rows).toEqual([{ job_id: 'inbound.t1.sms.m-1', state: 'pending', overdue: true }]);
    const job = await h().queues.get('inbound').getJob(record.jobId);
    expect(job?.data).toMatchObject({ tenantId: 't1', externalId: 'm-1', text: 'hello' });
  });

  it('records the same work once, however often it is submitted', async () => {
    const payload = message('dup');
    const records = await Promise.all(
      Array.from({ length: 10 }, () => enqueueDurably(h().enqueue, inboundQueue, payload)),
    );
    expect(records.filter(r => r.created)).toHaveLength(1);
    expect(new Set(records.map(r => r.id)).size).toBe(1);
    expect(
      await h().db.oneFirst(
        sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM work`,
      ),
    ).toBe(1);
    expect(await h().queues.get('inbound').getJobCounts('waiting')).toEqual({ waiting: 1 });
  });

  it('stores and enqueues nothing when the surrounding transaction fails', async () => {
    await expect(
      enqueueDurably(h().enqueue, inboundQueue, message('rolled-back'), async tx => {
        await tx.query(sql.unsafe`SELECT 1`);
        throw new Error('the domain write failed');
      }),
    ).rejects.toThrow('the domain write failed');
    expect(
      await h().db.oneFirst(
        sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM work`,
      ),
    ).toBe(0);
    expect(await h().queues.get('inbound').getJobCounts('waiting')).toEqual({ waiting: 0 });
  });

  it('rejects a payload that breaks the queue schema before writing anything', async () => {
    await expect(
      h().db.transaction(tx =>
        recordWork(tx, inboundQueue, { ...message('x'), channel: 'fax' } as never, {
          sweepAfterMs: 1000,
        }),
      ),
    ).rejects.toThrow(/channel/);
  });

  it('accepts work while Redis is down and leaves it due for the sweeper at once', async () => {
    const log = createLogger('silent');
    const deadRedis = createRedis(
      { ...h().config.redis, nodes: ['redis://127.0.0.1:1'] },
      'producer',
      'dead',
      log,
    );
    const queues = new QueueSet(deadRedis, h().config.queues.prefix, log);
    const before = await metricValue('nexus_enqueue_deferred_total', { queue: 'inbound' });
    try {
      const started = Date.now();
      const record = await enqueueDurably(
        { ...h().enqueue, queues },
        inboundQueue,
        message('redis-down'),
      );
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(record).toMatchObject({ created: true, state: 'pending' });
      const rows = await h().db.any(
        sql.type(workRows)`SELECT job_id, state, next_sweep_at <= now() AS overdue FROM work`,
      );
      expect(rows).toEqual([{ job_id: record.jobId, state: 'pending', overdue: true }]);
      expect(await metricValue('nexus_enqueue_deferred_total', { queue: 'inbound' })).toBe(
        before + 1,
      );
    } finally {
      await queues.close();
      await closeRedis(deadRedis);
    }
  });

  it('fails, storing and enqueueing nothing, when PostgreSQL is down', async () => {
    const proxy = await startTcpProxy(Number(new URL(h().dbUrl).port || 5432));
    const url = new URL(h().dbUrl);
    url.port = String(proxy.port);
    const db = await createDbPool(
      { ...h().config.db, url: url.toString() },
      createLogger('silent'),
    );
    try {
      await proxy.cut();
      await expect(
        enqueueDurably({ ...h().enqueue, db }, inboundQueue, message('pg-down')),
      ).rejects.toThrow();
      expect(await h().queues.get('inbound').getJobCounts('waiting')).toEqual({ waiting: 0 });
      await proxy.restore();
      expect(
        await h().db.oneFirst(
          sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM work`,
        ),
      ).toBe(0);
    } finally {
      await db.end();
      await proxy.close();
    }
  });
});
