import { randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { eventually, useHarness } from '../helpers/harness.js';
import { startHubProcess, type HubProcess } from '../helpers/processes.js';
import { startReceiver } from '../helpers/receiver.js';

const TOTAL = 5_000;

describe('webhooks across a worker crash', () => {
  const h = useHarness();
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
      const app = h().app();
      const admin = `Bearer ${h().config.adminToken}`;
      await request(app)
        .post('/nexus/v3/provisioning/tenants')
        .set('Authorization', admin)
        .send({ id: 'crash', name: 'crash' })
        .expect(201);
      await request(app)
        .put('/nexus/v3/provisioning/services/crash/WebhookTransportTarget-crm')
        .set('Authorization', admin)
        .send({ url: receiver.url, secret: 'crash-test-secret' })
        .expect(201);
      // 5,000 events of one interaction in one statement: the trigger fans them out at once.
      const interaction = randomUUID();
      await h().db.transaction(async tx => {
        await tx.query(sql.unsafe`
          INSERT INTO interactions (id, tenant_id, media, subtype, last_seq)
          VALUES (${interaction}, 'crash', 'chat', 'InboundNew', ${TOTAL})`);
        await tx.query(sql.unsafe`
          INSERT INTO events (id, tenant_id, interaction_id, seq, type, payload)
          SELECT gen_random_uuid(), 'crash', ${interaction}, g, 'read',
                 jsonb_build_object('participant', jsonb_build_object('id', 'c', 'type', 'customer',
                   'nickname', NULL), 'seq', g)
          FROM generate_series(1, ${TOTAL}) g`);
      });
      const env = {
        NEXUS_WORKER_QUEUES: 'webhooks',
        NEXUS_EGRESS_ALLOW: '127.0.0.1',
        NEXUS_WORKER_LOCK_MS: '2000',
        NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: '50',
      };
      const first = await startHubProcess(h(), 'worker', env);
      processes.push(first);
      await eventually(() => receiver.requests.length >= 1_000, 60_000, '1,000 deliveries');
      first.child.kill('SIGKILL');
      await first.exited;
      const beforeRestart = receiver.requests.length;

      const second = await startHubProcess(h(), 'worker', env);
      processes.push(second);
      const delivered = () =>
        h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
          SELECT count(*)::int AS n FROM webhook_deliveries WHERE state = 'delivered'`);
      await eventually(async () => (await delivered()) === TOTAL, 90_000, 'every delivery');

      const byId = new Map<string, Set<string>>();
      for (const r of receiver.requests) {
        const id = r.headers['webhook-id'] as string;
        byId.set(id, (byId.get(id) ?? new Set()).add(r.body));
      }
      expect(byId.size).toBe(TOTAL);
      // A duplicate is the same delivery again: same id, same bytes.
      expect([...byId.values()].every(bodies => bodies.size === 1)).toBe(true);
      const duplicates = receiver.requests.length - TOTAL;
      const work = await h().db.one(sql.type(z.object({ done: z.number(), other: z.number() }))`
        SELECT count(*) FILTER (WHERE state = 'done')::int AS done,
               count(*) FILTER (WHERE state <> 'done')::int AS other
        FROM work WHERE queue = 'webhooks'`);
      expect(work).toEqual({ done: TOTAL, other: 0 });
      console.info(
        `webhooks crash test: ${beforeRestart} received before the kill, ${duplicates} duplicates after the restart`,
      );
      await second.stop();
    } finally {
      await receiver.close();
    }
  }, 180_000);
});
