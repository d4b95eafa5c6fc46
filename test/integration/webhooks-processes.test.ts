import { sql } from 'slonik';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createWebhookProcessor } from '../../workers/processors/webhooks.js';
import { writeReadEvents } from '../helpers/events.js';
import { createHarness, eventually, useHarness, type Harness } from '../helpers/harness.js';
import { startHubProcess, type HubProcess } from '../helpers/processes.js';
import { startReceiver } from '../helpers/receiver.js';
import { startPrivateRedis } from '../helpers/redis-server.js';

const TOTAL = 5_000;

/** A tenant with one target, and `count` events of one interaction written in one statement. */
async function provisionAndWrite(h: Harness, url: string, count: number, data: object = {}) {
  const app = h.app();
  const admin = `Bearer ${h.config.adminToken}`;
  await request(app)
    .post('/nexus/v3/provisioning/tenants')
    .set('Authorization', admin)
    .send({ id: 'crash', name: 'crash' })
    .expect(201);
  await request(app)
    .put('/nexus/v3/provisioning/services/crash/WebhookTransportTarget-crm')
    .set('Authorization', admin)
    .send({ url, data, secret: 'crash-test-secret' })
    .expect(201);
  await writeReadEvents(h.db, 'crash', count);
}

const deliveredCount = (h: Harness) =>
  h.db.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM webhook_deliveries WHERE state = 'delivered'`);

/** Every webhook-id arrived, and every duplicate is the same delivery (same bytes). */
function checkArrivals(
  requests: { headers: Record<string, unknown>; body: string }[],
  total: number,
) {
  const byId = new Map<string, Set<string>>();
  for (const r of requests) {
    const id = r.headers['webhook-id'] as string;
    byId.set(id, (byId.get(id) ?? new Set()).add(r.body));
  }
  expect(byId.size).toBe(total);
  expect([...byId.values()].every(bodies => bodies.size === 1)).toBe(true);
  return requests.length - total;
}

describe('webhooks across a worker crash', () => {
  const h = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1' });
  const processes: HubProcess[] = [];
  afterEach(() => {
    for (const p of processes.splice(0)) {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  });

  it('killing the worker with 5,000 deliveries pending: every delivery arrives, duplicates keep their webhook-id', async () => {
    // A receiver that takes a few milliseconds, as a real one does.
    const receiver = await startReceiver(
      () => new Promise(resolve => setTimeout(() => resolve({ status: 200 }), 3)),
    );
    try {
      // 5,000 events of one interaction in one statement: the trigger fans them out at once.
      await provisionAndWrite(h(), receiver.url, TOTAL);
      // The maintenance queue runs too, as in any deployment: under a loaded machine a job of the
      // second worker may miss its lock renewals twice and stall out, and the sweeper re-drives
      // it (soon, with these settings) instead of leaving it to an operator's replay.
      const env = {
        NEXUS_WORKER_QUEUES: 'webhooks,maintenance',
        NEXUS_EGRESS_ALLOW: '127.0.0.1',
        NEXUS_WORKER_LOCK_MS: '3000',
        NEXUS_SWEEP_INTERVAL_MS: '2000',
        NEXUS_SWEEP_AFTER_MS: '10000',
        NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: '50',
        NEXUS_WEBHOOK_CONCURRENCY: '50',
      };
      const first = await startHubProcess(h(), 'worker', env);
      processes.push(first);
      await eventually(() => receiver.requests.length >= 1_000, 60_000, '1,000 deliveries');
      first.child.kill('SIGKILL');
      await first.exited;
      const beforeRestart = receiver.requests.length;

      const second = await startHubProcess(h(), 'worker', env);
      processes.push(second);
      await eventually(
        async () => {
          const delivered = await deliveredCount(h());
          if (delivered === TOTAL) return true;
          throw new Error(`${delivered} delivered, ${receiver.requests.length} requests received`);
        },
        90_000,
        'every delivery',
      );
      const duplicates = checkArrivals(receiver.requests, TOTAL);
      // An attempt keeps its place until it is recorded: only attempts in flight are sent again.
      expect(duplicates).toBeLessThanOrEqual(50);
      const workRows = () =>
        h().db.one(sql.type(z.object({ done: z.number(), other: z.number() }))`
          SELECT count(*) FILTER (WHERE state = 'done')::int AS done,
                 count(*) FILTER (WHERE state <> 'done')::int AS other
          FROM work WHERE queue = 'webhooks'`);
      // The first attempts went in batches: each batch's work ends, and none is left open. A job
      // of the killed worker's that stalled out may still be re-run (it finds its deliveries
      // delivered and ends its work) just after the last delivery is recorded.
      const work = (await eventually(
        async () => {
          const rows = await workRows();
          return rows.other === 0 && rows;
        },
        30_000,
        'every webhooks work row done',
      )) as { done: number; other: number };
      expect(work.other).toBe(0);
      expect(work.done).toBeGreaterThanOrEqual(TOTAL / h().config.webhooks.batchSize);
      console.info(
        `webhooks crash test: ${beforeRestart} received before the kill, ${duplicates} duplicates after the restart`,
      );
      await second.stop();
    } finally {
      await receiver.close();
    }
  }, 180_000);
});

describe('webhooks across a Redis loss', () => {
  it('FLUSHALL while deliveries are queued, in flight and waiting to retry: every one arrives', async () => {
    const redis = await startPrivateRedis();
    let h: Harness | undefined;
    // Every 7th request fails once: some deliveries wait in Redis's delayed set for their retry.
    const failedOnce = new Set<string>();
    const receiver = await startReceiver(
      request =>
        new Promise(resolve =>
          setTimeout(() => {
            const id = request.headers['webhook-id'] as string;
            const fail = !failedOnce.has(id) && request.body.length % 7 === 0;
            if (fail) failedOnce.add(id);
            resolve({ status: fail ? 503 : 200 });
          }, 2),
        ),
    );
    try {
      h = await createHarness({
        REDIS_URL: redis.url,
        NEXUS_EGRESS_ALLOW: '127.0.0.1',
        NEXUS_SWEEP_INTERVAL_MS: '250',
        NEXUS_SWEEP_AFTER_MS: '300',
        NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: '20',
      });
      const total = 2_000;
      await provisionAndWrite(h, receiver.url, total, { retrySchedule: [2] });
      const harness = h;
      await harness.startWorkers({
        processors: {
          webhooks: createWebhookProcessor({
            db: harness.db,
            queues: harness.queues,
            log: harness.log,
            bus: harness.bus,
            config: harness.config,
          }),
        },
        select: ['webhooks', 'maintenance'],
      });
      const counts = () => harness.queues.get('webhooks').getJobCounts('delayed', 'waiting');
      await eventually(
        async () => receiver.requests.length >= 400 && ((await counts()).delayed ?? 0) > 0,
        30_000,
        '400 requests and retries waiting',
      );
      const before = await counts();
      expect(before.delayed).toBeGreaterThan(0);
      await redis.client.flushall();
      await eventually(
        async () => (await deliveredCount(harness)) === total,
        60_000,
        'all delivered',
      );
      const duplicates = checkArrivals(receiver.requests, total);
      expect(failedOnce.size).toBeGreaterThan(0);
      console.info(
        `webhooks redis-loss test: flushed with ${before.delayed} delayed and ${before.waiting} waiting jobs; ${failedOnce.size} retried, ${duplicates - failedOnce.size} duplicates besides the retries`,
      );
    } finally {
      await h?.close();
      await receiver.close();
      await redis.stop();
    }
  }, 120_000);
});
