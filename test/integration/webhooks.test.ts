import { createHmac, randomBytes } from 'node:crypto';
import { lookup } from 'node:dns';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { verify as verifyGithubStyle } from '@octokit/webhooks-methods';
import { Worker } from 'bullmq';
import { sql } from 'slonik';
import { Webhook } from 'standardwebhooks';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ALL_EVENT_DATA } from '../../domain/event-catalogue.js';
import { EgressGuard } from '../../lib/egress.js';
import { closeRedis, createRedis } from '../../lib/redis.js';
import { registry } from '../../lib/metrics.js';
import { enqueueContext } from '../../queues/work.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { createWebhookProcessor } from '../../workers/processors/webhooks.js';
import { WebhookDispatcher } from '../../workers/webhook-dispatcher.js';
import { provisionChatTenant, type ChatTenant } from '../helpers/chat.js';
import { writeReadEvents } from '../helpers/events.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';
import { headerValues, startRawReceiver } from '../helpers/raw-receiver.js';
import { startReceiver } from '../helpers/receiver.js';

const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;
const PREFIX = 'WebhookTransportTarget-';

interface Setup {
  url: string;
  t: ChatTenant;
  admin: Record<string, string>;
  putTarget(name: string, body: object): request.Test;
  /** Starts a chat (interaction.started, participant events) and answers its session. */
  startChat(nickname?: string): Promise<{ id: string; clientToken: string }>;
}

async function setup(h: Harness, guard?: EgressGuard): Promise<Setup> {
  const api = await h.serve();
  const t = await provisionChatTenant(h, api.app);
  const admin = { Authorization: `Bearer ${h.config.adminToken}` };
  await h.startWorkers({
    processors: {
      inbound: createInboundProcessor({
        db: h.db,
        publisher: h.publisher,
        queues: h.queues,
        log: h.log,
      }),
      webhooks: createWebhookProcessor({
        db: h.db,
        queues: h.queues,
        log: h.log,
        bus: h.bus,
        config: h.config,
        guard,
      }),
    },
    select: ['inbound', 'webhooks', 'maintenance'],
  });
  return {
    url: api.url,
    t,
    admin,
    putTarget: (name, body) =>
      request(api.url)
        .put(`/nexus/v3/provisioning/services/${t.tenant}/${PREFIX}${name}`)
        .set(admin)
        .send(body),
    async startChat(nickname = 'Ann') {
      const started = await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname, endpoint: 'GlobalChatSwitchboard' } })
        .expect(201);
      return started.body.data as { id: string; clientToken: string };
    },
  };
}

const json = (body: string) => JSON.parse(body) as Record<string, unknown>;

async function deliveries(s: Setup, query = '') {
  const res = await request(s.url)
    .get(`/nexus/v3/webhooks/${s.t.tenant}/deliveries${query}`)
    .set(s.admin)
    .expect(200);
  return res.body.data.items as {
    id: number;
    webhookId: string;
    state: string;
    attempts: number;
    eventType: string;
    target: string;
  }[];
}

async function delivery(s: Setup, id: number) {
  const res = await request(s.url)
    .get(`/nexus/v3/webhooks/${s.t.tenant}/deliveries/${id}`)
    .set(s.admin)
    .expect(200);
  return res.body.data as {
    state: string;
    attempts: number;
    webhookId: string;
    attemptLog: { statusCode: number | null; outcome: string; error: string | null }[];
  };
}

async function targets(s: Setup) {
  const res = await request(s.url)
    .get(`/nexus/v3/webhooks/${s.t.tenant}/targets`)
    .set(s.admin)
    .expect(200);
  return res.body.data.items as {
    name: string;
    enabled: boolean;
    disabledReason: string | null;
    failingSince: string | null;
    previousSecretUntil: string | null;
  }[];
}

const metric = async (outcome: string) =>
  (await registry.getSingleMetric('nexus_webhook_deliveries_total')?.get())?.values.find(
    v => v.labels.outcome === outcome,
  )?.value ?? 0;

describe('webhooks', () => {
  const h = useHarness({
    NEXUS_EGRESS_ALLOW: '127.0.0.1',
    NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: '20',
    // Batches of 20, so the mixed batch test's 45 events make three.
    NEXUS_WEBHOOK_BATCH_SIZE: '20',
  });

  it('delivers signed events and Interactions Webhooks that verify with the public libraries', async () => {
    const crm = await startReceiver();
    const ix = await startReceiver();
    try {
      const s = await setup(h());
      const crmSecret = newSecret();
      await s
        .putTarget('crm', {
          url: `${crm.url}/hooks`,
          data: { 'header:X-Tenant-Key': 'k-1' },
          secret: crmSecret,
        })
        .expect(201);
      await s
        .putTarget('ix', {
          url: `${ix.url}/interactions`,
          data: { format: 'interactions', signatures: ['x-hub-signature'] },
          secret: { secret: 'guide-style-secret' },
        })
        .expect(201);
      const delivered = await metric('delivered');

      const chat = await s.startChat();
      await request(s.url)
        .post(`/nexus/v3/chat/sessions/${chat.id}/messages`)
        .set('x-nexus-client-key', chat.clientToken)
        .send({ data: { text: 'hello' } })
        .expect(202);
      await eventually(
        () => crm.requests.some(r => json(r.body).type === 'message.created'),
        10_000,
        'message.created at the crm',
      );
      await request(s.url)
        .post(`/nexus/v3/chat/sessions/${chat.id}/end`)
        .set('x-nexus-client-key', chat.clientToken)
        .expect(200);
      await eventually(() => ix.requests.length === 2, 10_000, 'STARTED and FINISHED');
      await eventually(
        () => crm.requests.some(r => json(r.body).type === 'interaction.finished'),
        10_000,
        'interaction.finished at the crm',
      );

      // Every crm request verifies three ways and carries the event as catalogued.
      const wh = new Webhook(crmSecret);
      for (const r of crm.requests) {
        const headers = r.headers as Record<string, string>;
        expect(wh.verify(r.body, headers)).toEqual(json(r.body));
        expect(
          await verifyGithubStyle(crmSecret, r.body, headers['x-hub-signature-256'] ?? ''),
        ).toBe(true);
        expect(headers['x-hub-signature']).toBe(
          `sha1=${createHmac('sha1', crmSecret).update(r.body).digest('hex')}`,
        );
        const event = json(r.body) as { id: string; type: string; seq: number; data: unknown };
        expect(headers['webhook-id']).toBe(`${event.id}_${PREFIX}crm`);
        expect(headers['x-b3-traceid']).toBe(event.id.replace(/-/g, ''));
        expect(headers['x-tenant-key']).toBe('k-1');
        expect(headers['content-type']).toBe('application/json');
        expect(r.path).toBe('/hooks');
        const schema = ALL_EVENT_DATA[event.type as keyof typeof ALL_EVENT_DATA];
        expect(schema.safeParse(event.data).success, event.type).toBe(true);
        expect(event.seq).toBeGreaterThan(0);
      }
      const seqs = crm.requests.map(r => json(r.body).seq as number).sort((a, b) => a - b);
      expect(new Set(seqs).size).toBe(seqs.length);

      // The Interactions Webhook: the guide's payload, the guide's sha1 signature only.
      const bodies = ix.requests.map(r => json(r.body));
      const entities = bodies.map(
        b =>
          (b.data as { entities: { event: string; entity: Record<string, unknown> }[] }).entities,
      );
      expect(entities.map(e => e[0]?.event).sort()).toEqual(['FINISHED', 'STARTED']);
      for (const [index, r] of ix.requests.entries()) {
        const entity = entities[index]?.[0]?.entity as Record<string, string>;
        expect(entity).toMatchObject({ mediaType: 'chat', interactionSubtype: expect.any(String) });
        expect(entity.selfUri).toMatch(new RegExp(`/nexus/v3/agent/interactions/${entity.id}$`));
        expect(typeof bodies[index]?.operationId).toBe('string');
        expect(r.headers['x-hub-signature']).toBe(
          `sha1=${createHmac('sha1', 'guide-style-secret').update(r.body).digest('hex')}`,
        );
        expect(r.headers['x-hub-signature-256']).toBeUndefined();
        expect(r.headers['webhook-signature']).toBeUndefined();
        expect(r.headers['webhook-id']).toBe(`${bodies[index]?.operationId as string}_${PREFIX}ix`);
      }

      // The delivery log: one attempt each, delivered (recorded just after the receiver answers).
      await eventually(
        async () =>
          (await deliveries(s, `?target=${PREFIX}crm`)).every(d => d.state === 'delivered'),
        5_000,
        'the attempts recorded',
      );
      const log = await deliveries(s, `?target=${PREFIX}crm`);
      expect(log.length).toBe(crm.requests.length);
      expect(log.every(d => d.state === 'delivered' && d.attempts === 1)).toBe(true);
      const first = await delivery(s, (log[0] as { id: number }).id);
      expect(first.attemptLog).toEqual([
        expect.objectContaining({ attempt: 1, statusCode: 200, outcome: 'delivered' }),
      ]);
      expect(await metric('delivered')).toBeGreaterThanOrEqual(delivered + log.length + 2);
    } finally {
      await crm.close();
      await ix.close();
    }
  });

  it('a receiver that fails twice then succeeds gets three attempts on the schedule and one success', async () => {
    const receiver = await startReceiver((_r, index) => ({
      status: index === 0 ? 503 : index === 1 ? 500 : 200,
    }));
    try {
      const s = await setup(h());
      await s
        .putTarget('flaky', {
          url: receiver.url,
          data: { events: ['interaction.started'], retrySchedule: [1, 2, 1] },
          secret: newSecret(),
        })
        .expect(201);
      await s.startChat();
      await eventually(
        async () => (await deliveries(s))[0]?.state === 'delivered',
        15_000,
        'the delivery to succeed',
      );
      await new Promise(resolve => setTimeout(resolve, 1_500));
      expect(receiver.requests.length).toBe(3);
      const [a, b, c] = receiver.requests as [
        (typeof receiver.requests)[0],
        (typeof receiver.requests)[0],
        (typeof receiver.requests)[0],
      ];
      // Same id and bytes every time; the gaps follow the schedule (1 s, 2 s, ±20 %).
      expect(new Set(receiver.requests.map(r => r.headers['webhook-id'])).size).toBe(1);
      expect(new Set(receiver.requests.map(r => r.body)).size).toBe(1);
      expect(b.at - a.at).toBeGreaterThanOrEqual(800);
      expect(c.at - b.at).toBeGreaterThanOrEqual(1_600);
      const [only] = await deliveries(s);
      const detail = await delivery(s, (only as { id: number }).id);
      expect(detail.attempts).toBe(3);
      expect(detail.attemptLog.map(x => [x.statusCode, x.outcome])).toEqual([
        [503, 'retry'],
        [500, 'retry'],
        [200, 'delivered'],
      ]);
      expect((await targets(s))[0]?.failingSince).toBeNull();
    } finally {
      await receiver.close();
    }
  });

  it('a 400 is one attempt and an undelivered record; replay delivers it once with the same webhook-id', async () => {
    const receiver = await startReceiver(() => ({ status: 400, body: 'unknown field' }));
    const ops = await startReceiver();
    try {
      const s = await setup(h());
      await s
        .putTarget('strict', {
          url: receiver.url,
          data: { events: ['interaction.started'] },
          secret: newSecret(),
        })
        .expect(201);
      await s
        .putTarget('ops', {
          url: ops.url,
          data: { events: ['delivery.exhausted', 'webhook.disabled'] },
          secret: newSecret(),
        })
        .expect(201);
      await s.startChat();
      await eventually(
        async () => (await deliveries(s, `?target=${PREFIX}strict`))[0]?.state === 'failed',
        10_000,
        'the delivery to fail',
      );
      const [failed] = await deliveries(s, `?target=${PREFIX}strict`);
      const id = (failed as { id: number }).id;
      expect((await delivery(s, id)).attemptLog).toEqual([
        expect.objectContaining({ statusCode: 400, outcome: 'failed', error: 'unknown field' }),
      ]);
      // The operator's undelivered list has it; the tenant's ops target heard about it.
      await eventually(
        async () => {
          const res = await request(s.url)
            .get('/nexus/v3/undelivered?queue=webhooks')
            .set(s.admin)
            .expect(200);
          return res.body.data.items.length === 1;
        },
        5_000,
        'the undelivered record',
      );
      await eventually(() => ops.requests.length === 1, 10_000, 'delivery.exhausted');
      const exhausted = json((ops.requests[0] as { body: string }).body) as {
        type: string;
        interactionId: unknown;
        data: Record<string, unknown>;
      };
      expect(exhausted).toMatchObject({ type: 'delivery.exhausted', interactionId: null });
      expect(exhausted.data).toMatchObject({
        target: `${PREFIX}strict`,
        deliveryId: id,
        eventType: 'interaction.started',
        attempts: 1,
      });
      // The receiver's 400 is a refusal, coded so on the event and the undelivered record.
      expect(exhausted.data.code).toBe('NEXUS_ERR_WEBHOOK_REFUSED');
      const records = await request(s.url)
        .get('/nexus/v3/undelivered?queue=webhooks')
        .set(s.admin)
        .expect(200);
      expect(records.body.data.items[0]).toMatchObject({ code: 'NEXUS_ERR_WEBHOOK_REFUSED' });
      expect(receiver.requests.length).toBe(1);

      // Replay: the receiver now accepts it.
      receiver.answer(() => ({ status: 204 }));
      const replay = await request(s.url)
        .post(`/nexus/v3/webhooks/${s.t.tenant}/deliveries/${id}/replay`)
        .set(s.admin)
        .expect(202);
      expect(replay.body.data.state).toBe('pending');
      await eventually(
        async () => (await delivery(s, id)).state === 'delivered',
        10_000,
        'replayed',
      );
      await new Promise(resolve => setTimeout(resolve, 500));
      expect(receiver.requests.length).toBe(2);
      const [first, second] = receiver.requests as [
        (typeof receiver.requests)[0],
        (typeof receiver.requests)[0],
      ];
      expect(second.headers['webhook-id']).toBe(first.headers['webhook-id']);
      expect(second.body).toBe(first.body);
      // A delivered delivery does not replay; an unknown one is not found.
      await request(s.url)
        .post(`/nexus/v3/webhooks/${s.t.tenant}/deliveries/${id}/replay`)
        .set(s.admin)
        .expect(409)
        .expect(res => expect(res.body.status.code).toBe('NEXUS_ERR_UNDELIVERED_NOT_REPLAYABLE'));
      await request(s.url)
        .get(`/nexus/v3/webhooks/${s.t.tenant}/deliveries/999999`)
        .set(s.admin)
        .expect(404);
      await request(s.url)
        .get('/nexus/v3/webhooks/no-such-tenant/targets')
        .set(s.admin)
        .expect(404);
      await request(s.url)
        .post(`/nexus/v3/webhooks/${s.t.tenant}/targets/${PREFIX}nothing/enable`)
        .set(s.admin)
        .expect(404);
      await request(s.url)
        .post(`/nexus/v3/webhooks/${s.t.tenant}/targets/${PREFIX}strict/replay`)
        .set(s.admin)
        .send({ since: 'yesterday' })
        .expect(400)
        .expect(res => expect(res.body.status.field ?? res.body.status.message).toMatch(/since/));
    } finally {
      await receiver.close();
      await ops.close();
    }
  });

  it('first attempts go in batches per target; the ones not delivered go on as jobs of their own', async () => {
    // By the event's seq: 3 and 7 answer 503 once, 5 answers 400; everything else 200.
    const failedOnce = new Set<number>();
    const receiver = await startReceiver(r => {
      const seq = (json(r.body) as { seq: number }).seq;
      if (seq === 5) return { status: 400, body: 'no' };
      if ((seq === 3 || seq === 7) && !failedOnce.has(seq)) {
        failedOnce.add(seq);
        return { status: 503 };
      }
      return { status: 200 };
    });
    try {
      const s = await setup(h());
      await s
        .putTarget('bulk', {
          url: receiver.url,
          data: { events: ['read'], retrySchedule: [1] },
          secret: newSecret(),
        })
        .expect(201);
      // 45 events in one statement: three batches of at most 20 for the one target.
      await writeReadEvents(h().db, s.t.tenant, 45);
      await eventually(
        async () => {
          const rows = await deliveries(s, '?limit=100');
          return rows.length === 45 && rows.every(d => d.state !== 'pending');
        },
        15_000,
        'every delivery settled',
      );
      const rows = await deliveries(s, '?limit=100');
      const bySeq = new Map<number, (typeof rows)[0]>();
      for (const r of receiver.requests) {
        const seq = (json(r.body) as { seq: number }).seq;
        const row = rows.find(d => d.webhookId === r.headers['webhook-id']);
        if (row) bySeq.set(seq, row);
      }
      expect(bySeq.size).toBe(45);
      for (const [seq, row] of bySeq) {
        const expected =
          seq === 5
            ? { state: 'failed', attempts: 1 }
            : seq === 3 || seq === 7
              ? { state: 'delivered', attempts: 2 }
              : { state: 'delivered', attempts: 1 };
        expect({ seq, state: row.state, attempts: row.attempts }).toEqual({ seq, ...expected });
      }
      // 44 delivered once each, plus the 400 and the two retried ones' first answers.
      expect(receiver.requests.length).toBe(47);
      // Work: three batch rows, done; the three deliveries that went on have rows of their own.
      const work = await h().db.any(
        sql.type(z.object({ job_id: z.string(), state: z.string() }))`
          SELECT job_id, state FROM work WHERE queue = 'webhooks' ORDER BY job_id`,
      );
      const batches = work.filter(w => w.job_id.startsWith('webhooks.batch.'));
      expect(batches.map(w => w.state)).toEqual(['done', 'done', 'done']);
      const own = work.filter(w => !w.job_id.startsWith('webhooks.batch.'));
      expect(own.map(w => w.state).sort()).toEqual(['done', 'done', 'failed']);
      // The refused one is an undelivered record under its own key, replayable as any other.
      const undelivered = await request(s.url)
        .get('/nexus/v3/undelivered?queue=webhooks')
        .set(s.admin)
        .expect(200);
      expect(undelivered.body.data.items).toEqual([
        expect.objectContaining({ jobId: own.find(w => w.state === 'failed')?.job_id }),
      ]);
    } finally {
      await receiver.close();
    }
  });

  it('an always failing receiver exhausts the schedule; 410 disables its target; enable and replay since T send what it missed', async () => {
    const failing = await startReceiver(() => ({ status: 500 }));
    const gone = await startReceiver(() => ({ status: 410 }));
    const ops = await startReceiver();
    try {
      const s = await setup(h());
      await s
        .putTarget('down', {
          url: failing.url,
          data: { events: ['interaction.started'], retrySchedule: [1] },
        })
        .expect(201);
      await s
        .putTarget('gone', {
          url: gone.url,
          data: { events: ['interaction.started', 'interaction.finished'] },
          secret: newSecret(),
        })
        .expect(201);
      await s
        .putTarget('ops', { url: ops.url, data: { events: ['webhook.disabled'] } })
        .expect(201);
      const since = new Date(Date.now() - 1_000).toISOString();
      await s.startChat();
      await eventually(
        async () => (await deliveries(s, `?target=${PREFIX}down`))[0]?.state === 'failed',
        10_000,
        'exhaustion',
      );
      expect(failing.requests.length).toBe(2);
      // Unsigned (no secret): the id and timestamp still go.
      expect(failing.requests[0]?.headers['webhook-id']).toMatch(/_WebhookTransportTarget-down$/);
      expect(failing.requests[0]?.headers['webhook-signature']).toBeUndefined();

      await eventually(
        async () => (await targets(s)).find(x => x.name === `${PREFIX}gone`)?.enabled === false,
        10_000,
        'the 410 target disabled',
      );
      expect(gone.requests.length).toBe(1);
      const goneTarget = (await targets(s)).find(x => x.name === `${PREFIX}gone`);
      expect(goneTarget?.disabledReason).toMatch(/410/);
      // Both failures are undelivered records, coded by how they failed.
      await eventually(
        async () => {
          const items = (
            await request(s.url)
              .get('/nexus/v3/undelivered?queue=webhooks')
              .set(s.admin)
              .expect(200)
          ).body.data.items as { code: string }[];
          const codes = items.map(item => item.code);
          return (
            codes.includes('NEXUS_ERR_WEBHOOK_EXHAUSTED') &&
            codes.includes('NEXUS_ERR_WEBHOOK_GONE')
          );
        },
        10_000,
        'the coded undelivered records',
      );
      await eventually(() => ops.requests.length === 1, 10_000, 'webhook.disabled');
      expect(json((ops.requests[0] as { body: string }).body)).toMatchObject({
        type: 'webhook.disabled',
        data: { target: `${PREFIX}gone` },
      });

      // While disabled it gets nothing new, and replaying is refused.
      await s.startChat('Bea');
      await eventually(
        async () => (await deliveries(s, `?target=${PREFIX}down`)).length === 2,
        10_000,
        'the second chat fanned out',
      );
      expect((await deliveries(s, `?target=${PREFIX}gone`)).length).toBe(1);
      await request(s.url)
        .post(`/nexus/v3/webhooks/${s.t.tenant}/targets/${PREFIX}gone/replay`)
        .set(s.admin)
        .send({ since })
        .expect(409)
        .expect(res => expect(res.body.status.code).toBe('NEXUS_ERR_WEBHOOK_TARGET_DISABLED'));

      // The receiver is back: enable, replay since T: the failed one and the missed one arrive.
      gone.answer(() => ({ status: 200 }));
      await request(s.url)
        .post(`/nexus/v3/webhooks/${s.t.tenant}/targets/${PREFIX}gone/enable`)
        .set(s.admin)
        .expect(200)
        .expect(res => expect(res.body.data.enabled).toBe(true));
      const replay = await request(s.url)
        .post(`/nexus/v3/webhooks/${s.t.tenant}/targets/${PREFIX}gone/replay`)
        .set(s.admin)
        .send({ since })
        .expect(202);
      expect(replay.body.data).toEqual({ replayed: 1, missed: 1, more: false });
      await eventually(
        async () =>
          (await deliveries(s, `?target=${PREFIX}gone`)).every(d => d.state === 'delivered'),
        10_000,
        'both delivered',
      );
      expect((await deliveries(s, `?target=${PREFIX}gone`)).length).toBe(2);
      expect(gone.requests.length).toBe(3);
    } finally {
      await failing.close();
      await gone.close();
      await ops.close();
    }
  });

  it('refuses bad target definitions and stores nothing', async () => {
    const s = await setup(h());
    const bad: [object, RegExp][] = [
      [{ url: 'ftp://example.com/x' }, /url/],
      [{ url: 'not a url' }, /url/],
      [{ url: 'https://example.com', data: { events: ['message.deleted'] } }, /data\.events/],
      [{ url: 'https://example.com', data: { events: [] } }, /data\.events/],
      [{ url: 'https://example.com', data: { format: 'xml' } }, /data\.format/],
      [{ url: 'https://example.com', data: { signatures: ['md5'] } }, /data\.signatures/],
      [{ url: 'https://example.com', data: { retrySchedule: [-1] } }, /data\.retrySchedule/],
      [{ url: 'https://example.com', data: { retrySchedule: [] } }, /data\.retrySchedule/],
      [{ url: 'https://example.com', data: { 'header:Webhook-Id': 'x' } }, /header:Webhook-Id/],
      [{ url: 'https://example.com', data: { 'header:X-A': 'a\r\nb' } }, /header:X-A/],
      [{ url: 'https://example.com', data: { colour: 'red' } }, /data\.colour/],
      [{ url: 'https://example.com', secret: '' }, /secret/],
    ];
    for (const [body, field] of bad) {
      const res = await s.putTarget('bad', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.status.code).toBe('NEXUS_ERR_VALIDATION');
      expect(`${res.body.status.field ?? ''} ${res.body.status.message}`).toMatch(field);
    }
    const count = await h().db.oneFirst(
      sql.type(z.object({ n: z.number() }))`
        SELECT (SELECT count(*) FROM webhook_targets)::int + (SELECT count(*) FROM services
          WHERE name LIKE 'WebhookTransportTarget-%')::int AS n`,
    );
    expect(count).toBe(0);
  });

  it('custom headers stored before the header rules (or past the API) that are reserved are not sent, whatever their case', async () => {
    const receiver = await startRawReceiver();
    try {
      const s = await setup(h());
      await s
        .putTarget('legacy', {
          url: `${receiver.url}/hooks`,
          data: { events: ['message.created'], 'header:X-Custom': 'kept' },
        })
        .expect(201);
      // As a row stored before the API refused them would be.
      await h().db.query(sql.unsafe`
        UPDATE services SET data = data || ${sql.jsonb({
          'header:Transfer-Encoding': 'chunked',
          'header:content-type': 'text/plain',
          'header:host': 'elsewhere.example',
        })}
        WHERE tenant_id = ${s.t.tenant} AND name = ${`${PREFIX}legacy`}`);
      const chat = await s.startChat();
      for (const text of ['one', 'two']) {
        await request(s.url)
          .post(`/nexus/v3/chat/sessions/${chat.id}/messages`)
          .set('x-nexus-client-key', chat.clientToken)
          .send({ data: { text } })
          .expect(202);
      }
      await eventually(() => receiver.requests.length === 2, 10_000, 'both deliveries');
      for (const received of receiver.requests) {
        expect(headerValues(received, 'x-custom')).toEqual(['kept']);
        expect(headerValues(received, 'transfer-encoding')).toEqual([]);
        expect(headerValues(received, 'content-type')).toEqual(['application/json']);
        expect(headerValues(received, 'host')).toEqual([new URL(receiver.url).host]);
        expect(json(received.body).type).toBe('message.created');
      }
    } finally {
      await receiver.close();
    }
  });
});

describe('webhooks: secret rotation and the failing window', () => {
  const h = useHarness({
    NEXUS_EGRESS_ALLOW: '127.0.0.1',
    NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: '20',
    NEXUS_WEBHOOK_SECRET_GRACE_MS: '2000',
    NEXUS_WEBHOOK_DISABLE_AFTER_MS: '1500',
  });

  it('signs with both secrets during the grace period, then with the new one only', async () => {
    const receiver = await startReceiver();
    try {
      const s = await setup(h());
      const oldSecret = newSecret();
      const nextSecret = newSecret();
      const target = (secret: string) =>
        s.putTarget('crm', {
          url: receiver.url,
          data: { events: ['interaction.started'] },
          secret,
        });
      await target(oldSecret).expect(201);
      await s.startChat('One');
      await eventually(() => receiver.requests.length === 1, 10_000, 'first delivery');
      await target(nextSecret).expect(200);
      expect((await targets(s))[0]?.previousSecretUntil).not.toBeNull();
      await s.startChat('Two');
      await eventually(() => receiver.requests.length === 2, 10_000, 'second delivery');
      const during = receiver.requests[1] as { headers: Record<string, string>; body: string };
      expect(during.headers['webhook-signature']?.split(' ')).toHaveLength(2);
      expect(new Webhook(nextSecret).verify(during.body, during.headers)).toBeTruthy();
      expect(new Webhook(oldSecret).verify(during.body, during.headers)).toBeTruthy();
      expect(
        await verifyGithubStyle(
          nextSecret,
          during.body,
          during.headers['x-hub-signature-256'] ?? '',
        ),
      ).toBe(true);

      await new Promise(resolve => setTimeout(resolve, 2_100));
      await s.startChat('Three');
      await eventually(() => receiver.requests.length === 3, 10_000, 'third delivery');
      const after = receiver.requests[2] as { headers: Record<string, string>; body: string };
      expect(after.headers['webhook-signature']?.split(' ')).toHaveLength(1);
      expect(new Webhook(nextSecret).verify(after.body, after.headers)).toBeTruthy();
      expect(() => new Webhook(oldSecret).verify(after.body, after.headers)).toThrow();
      expect((await targets(s))[0]?.previousSecretUntil).toBeNull();
    } finally {
      await receiver.close();
    }
  });

  it('a target failing every attempt for the window is disabled and the tenant told', async () => {
    const receiver = await startReceiver(() => ({ status: 503 }));
    const ops = await startReceiver();
    try {
      const s = await setup(h());
      await s
        .putTarget('down', {
          url: receiver.url,
          data: { events: ['interaction.started'], retrySchedule: [2, 2, 2] },
        })
        .expect(201);
      await s
        .putTarget('ops', { url: ops.url, data: { events: ['webhook.disabled'] } })
        .expect(201);
      await s.startChat();
      await eventually(
        async () => (await targets(s)).find(x => x.name === `${PREFIX}down`)?.enabled === false,
        15_000,
        'the failing target disabled',
      );
      const down = (await targets(s)).find(x => x.name === `${PREFIX}down`);
      expect(down?.disabledReason).toMatch(/every attempt failed/);
      await eventually(() => ops.requests.length === 1, 10_000, 'webhook.disabled');
      // Its pending delivery ends at its next attempt without being sent.
      await eventually(
        async () => (await deliveries(s, `?target=${PREFIX}down`))[0]?.state === 'failed',
        10_000,
        'the delivery failed',
      );
      const [only] = await deliveries(s, `?target=${PREFIX}down`);
      const detail = await delivery(s, (only as { id: number }).id);
      expect(detail.attemptLog.at(-1)?.error).toMatch(/target is disabled/);
      expect(receiver.requests.length).toBe(2);
    } finally {
      await receiver.close();
      await ops.close();
    }
  });
});

describe('webhooks: SSRF guard on the delivery path', () => {
  // The API's allow-list lets every target be saved (as if the rules or DNS changed after it
  // was; saving is checked in egress-on-save.test.ts): the workers' guard, which allows none of
  // them, must refuse each when it connects.
  const h = useHarness({
    NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: '20',
    NEXUS_EGRESS_ALLOW: '0.0.0.0/0,::/0',
  });

  it('refuses every non-public destination without an allow-list entry; no connection reaches the canary', async () => {
    let connections = 0;
    const canary: Server = createServer(socket => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>(resolve => canary.listen(0, '::', resolve));
    const port = (canary.address() as { port: number }).port;
    const redirector = await startReceiver(() => ({
      status: 302,
      headers: { Location: `http://127.0.0.1:${port}/` },
    }));
    // Names resolved by the test: one allow-listed redirector, one that points at loopback.
    const guard = new EgressGuard(['redirector.test'], (hostname, options, callback) => {
      if (hostname === 'redirector.test') {
        callback(null, [{ address: '127.0.0.1', family: 4 }]);
      } else if (hostname === 'internal.test') {
        callback(null, [{ address: '127.0.0.1', family: 4 }]);
      } else lookup(hostname, options, callback);
    });
    try {
      const s = await setup(h(), guard);
      const urls = [
        `http://127.0.0.1:${port}/`,
        `http://localhost:${port}/`,
        `http://[::1]:${port}/`,
        `http://[::ffff:127.0.0.1]:${port}/`,
        `http://10.0.0.1:${port}/`,
        `http://172.16.0.1:${port}/`,
        `http://192.168.1.1:${port}/`,
        `http://169.254.169.254/latest/meta-data/`,
        `http://100.64.0.1:${port}/`,
        `http://0.0.0.0:${port}/`,
        `http://2130706433:${port}/`,
        `http://0177.0.0.1:${port}/`,
        `http://internal.test:${port}/`,
        `http://redirector.test:${redirector.port}/`,
      ];
      for (const [index, url] of urls.entries()) {
        await s
          .putTarget(`t${index}`, { url, data: { events: ['interaction.started'] } })
          .expect(201);
      }
      await s.startChat();
      await eventually(
        async () => {
          const all = await deliveries(s);
          return all.length === urls.length && all.every(d => d.state === 'failed');
        },
        15_000,
        'every delivery refused',
      );
      for (const d of await deliveries(s)) {
        const detail = await delivery(s, d.id);
        expect(detail.attemptLog).toHaveLength(1);
        const [attempt] = detail.attemptLog;
        if (d.target.endsWith(`t${urls.length - 1}`)) {
          // The redirect is not followed: a 3xx is a permanent failure.
          expect(attempt).toMatchObject({ statusCode: 302, outcome: 'failed' });
        } else {
          expect(attempt?.statusCode, d.target).toBeNull();
          expect(attempt?.error, d.target).toMatch(/not public and not allow-listed/);
        }
      }
      expect(redirector.requests).toHaveLength(1);
      expect(connections).toBe(0);
    } finally {
      await redirector.close();
      await new Promise(resolve => canary.close(resolve));
    }
  });
});

describe('webhooks: fairness between targets', () => {
  // 20 attempts in flight per process: 10 for one target at most, 2 batches of 20 per target.
  const h = useHarness({
    NEXUS_EGRESS_ALLOW: '127.0.0.1',
    NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: '20',
    NEXUS_WEBHOOK_CONCURRENCY: '20',
    NEXUS_WEBHOOK_BATCH_SIZE: '20',
    NEXUS_WEBHOOK_TIMEOUT_MS: '1000',
  });

  it("a target that never answers, with a backlog, does not hold up another target's deliveries", async () => {
    // The silent receiver takes every request and never answers; it counts those still open.
    let open = 0;
    let mostOpen = 0;
    let silentRequests = 0;
    const silent = createHttpServer((req, res) => {
      silentRequests++;
      mostOpen = Math.max(mostOpen, ++open);
      req.resume();
      res.on('close', () => open--);
    });
    await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve));
    const crm = await startReceiver();
    try {
      const s = await setup(h());
      const { port } = silent.address() as { port: number };
      await s
        .putTarget('silent', {
          url: `http://127.0.0.1:${port}/hooks`,
          data: { events: ['read'], retrySchedule: [600] },
        })
        .expect(201);
      // 400 deliveries for the silent target: 40 s of its timeouts at 10 at once.
      await writeReadEvents(h().db, s.t.tenant, 400);
      await eventually(async () => silentRequests >= 10, 5_000, 'the silent backlog started');

      await s.putTarget('crm', { url: `${crm.url}/hooks`, data: { events: ['read'] } }).expect(201);
      const started = Date.now();
      await writeReadEvents(h().db, s.t.tenant, 40);
      // Without fairness the crm's batches would queue behind the 20 silent ones (20 s).
      await eventually(async () => crm.requests.length >= 40, 5_000, 'the crm got its 40');
      const tookMs = Date.now() - started;
      expect(tookMs).toBeLessThan(5_000);
      expect(crm.requests).toHaveLength(40);

      // The silent target kept its share, no more, and the rest of its backlog waits in PostgreSQL.
      expect(mostOpen).toBeLessThanOrEqual(10);
      expect(silentRequests).toBeGreaterThanOrEqual(10);
      const waiting = await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM webhook_dispatch_queue WHERE target = ${`${PREFIX}silent`}`);
      expect(waiting).toBeGreaterThan(300);
      // The gauges show the backlog held in PostgreSQL (the BullMQ queue does not have it).
      const gauge = async (name: string) =>
        (await registry.getSingleMetric(name)?.get())?.values[0]?.value ?? -1;
      expect(await gauge('nexus_webhook_undispatched')).toBeGreaterThan(300);
      expect(await gauge('nexus_webhook_undispatched_oldest_seconds')).toBeGreaterThan(0);
      const batches = await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM work
        WHERE queue = 'webhooks' AND state = 'pending' AND job_id LIKE 'webhooks.batch.%'
          AND payload->>'targetId' = ${`${PREFIX}silent`}`);
      expect(batches).toBeLessThanOrEqual(2);
    } finally {
      silent.closeAllConnections();
      await new Promise(resolve => silent.close(resolve));
      await crm.close();
    }
  });

  it("a target's retries falling due together do not hold up another target's deliveries", async () => {
    // First attempts get an immediate 503; the retries, due a second later, get no answer at all.
    const seen = new Set<string>();
    let retries = 0;
    const flaky = createHttpServer((req, res) => {
      req.resume();
      const id = String(req.headers['webhook-id']);
      if (seen.has(id)) {
        retries++;
        return;
      }
      seen.add(id);
      res.writeHead(503).end();
    });
    await new Promise<void>(resolve => flaky.listen(0, '127.0.0.1', resolve));
    const crm = await startReceiver();
    const deferred = async () =>
      (await registry.getSingleMetric('nexus_webhook_retries_deferred_total')?.get())?.values[0]
        ?.value ?? 0;
    const deferredBefore = await deferred();
    try {
      const s = await setup(h());
      const { port } = flaky.address() as { port: number };
      await s
        .putTarget('flaky', {
          url: `http://127.0.0.1:${port}/hooks`,
          data: { events: ['read'], retrySchedule: [1, 600] },
        })
        .expect(201);
      await writeReadEvents(h().db, s.t.tenant, 200);
      await eventually(async () => seen.size === 200, 10_000, 'every first attempt refused');
      // Every retry is due (a second after its first attempt, ±20 %) and queued ahead of what
      // comes next.
      await new Promise(resolve => setTimeout(resolve, 1_500));
      expect(retries).toBeGreaterThanOrEqual(10);

      await s.putTarget('crm', { url: `${crm.url}/hooks`, data: { events: ['read'] } }).expect(201);
      await writeReadEvents(h().db, s.t.tenant, 40);
      // Without deferral the crm's batches would wait behind the retries (a second per 10).
      await eventually(async () => crm.requests.length >= 40, 5_000, 'the crm got its 40');
      expect(crm.requests).toHaveLength(40);
      expect(await deferred()).toBeGreaterThan(deferredBefore);
    } finally {
      flaky.closeAllConnections();
      await new Promise(resolve => flaky.close(resolve));
      await crm.close();
    }
  });

  it('dispatchers of several workers passing at once keep each target within its allowance', async () => {
    const hh = h();
    const api = await hh.serve();
    const t = await provisionChatTenant(hh, api.app);
    const admin = { Authorization: `Bearer ${hh.config.adminToken}` };
    const receiver = await startReceiver();
    try {
      for (const name of ['a', 'b', 'c']) {
        await request(api.url)
          .put(`/nexus/v3/provisioning/services/${t.tenant}/${PREFIX}${name}`)
          .set(admin)
          .send({ url: receiver.url, data: { events: ['read'] } })
          .expect(201);
      }
      await writeReadEvents(hh.db, t.tenant, 300);
      // Three dispatchers, as three worker processes would run, passing at the same moments; no
      // worker runs the jobs, so every batch stays pending. Whichever passes first, no delivery
      // may be in two batches and no target may get more than its allowance.
      const enqueue = enqueueContext({ db: hh.db, queues: hh.queues, log: hh.log }, hh.config);
      const queue = hh.queues.get('webhooks');
      // The third cannot count the workers (as where Redis refuses CLIENT LIST): it counts one.
      const dispatchers = () =>
        [
          () => queue.getWorkersCount(),
          () => queue.getWorkersCount(),
          () => Promise.reject(new Error('ERR unknown command CLIENT')),
        ].map(count => new WebhookDispatcher(enqueue, hh.log, 60_000, hh.config.webhooks, count));
      const pending = async () => {
        const batches = await hh.db.any(
          sql.type(z.object({ target: z.string(), ids: z.array(z.number()) }))`
            SELECT payload->>'targetId' AS target,
                   ARRAY(SELECT jsonb_array_elements_text(payload->'deliveryIds')::int8) AS ids
            FROM work WHERE queue = 'webhooks' AND state = 'pending'`,
        );
        const perTarget = new Map<string, number>();
        for (const b of batches) perTarget.set(b.target, (perTarget.get(b.target) ?? 0) + 1);
        const ids = batches.flatMap(b => b.ids);
        // No delivery is in two batches.
        expect(new Set(ids).size).toBe(ids.length);
        const waiting = await hh.db.oneFirst(sql.type(z.object({ n: z.number() }))`
          SELECT count(*)::int AS n FROM webhook_dispatch_queue`);
        expect(waiting + ids.length).toBe(900);
        return { perTarget: Object.fromEntries(perTarget), deliveries: ids.length };
      };
      const each = (n: number) => ({ [`${PREFIX}a`]: n, [`${PREFIX}b`]: n, [`${PREFIX}c`]: n });

      // No webhooks worker is connected: the allowance of one, 2 batches of 20 per target (20
      // places, 10 per target), no more.
      const first = dispatchers();
      for (let pass = 0; pass < 5; pass++) await Promise.all(first.map(d => d.drain()));
      expect(await pending()).toEqual({ perTarget: each(2), deliveries: 120 });
      expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 6 });

      // Two webhooks workers connect (they run nothing here): each has its own places for a
      // target, so a target may have twice the batches pending.
      const connection = createRedis(hh.config.redis, 'worker', 'test-worker', hh.log);
      const workers = [1, 2].map(
        () =>
          new Worker(queue.name, async () => undefined, {
            connection,
            prefix: hh.config.queues.prefix,
            autorun: false,
          }),
      );
      try {
        await Promise.all(workers.map(w => w.waitUntilReady()));
        await eventually(async () => (await queue.getWorkersCount()) === 2, 5_000, '2 workers');
        const second = dispatchers();
        for (let pass = 0; pass < 5; pass++) await Promise.all(second.map(d => d.drain()));
        expect(await pending()).toEqual({ perTarget: each(4), deliveries: 240 });
      } finally {
        await Promise.all(workers.map(w => w.close()));
        await closeRedis(connection);
      }
    } finally {
      await receiver.close();
    }
  });
});

describe('webhook dispatch on notification', () => {
  // Passes 10 minutes apart: a delivery that arrives in seconds was woken by its commit.
  const h = useHarness({
    NEXUS_EGRESS_ALLOW: '127.0.0.1',
    NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: '600000',
  });

  it('a committed delivery wakes the dispatcher; after its connection is cut it listens again', async () => {
    const crm = await startReceiver();
    try {
      const s = await setup(h());
      await s.putTarget('crm', { url: `${crm.url}/hooks`, secret: newSecret() }).expect(201);
      // The dispatcher's first pass ran at start; everything after it comes by notification.
      await new Promise(resolve => setTimeout(resolve, 300));
      const chat = await s.startChat();
      const say = (text: string) =>
        request(s.url)
          .post(`/nexus/v3/chat/sessions/${chat.id}/messages`)
          .set('x-nexus-client-key', chat.clientToken)
          .send({ data: { text } })
          .expect(202);
      const received = (text: string) =>
        crm.requests.some(r => {
          const event = json(r.body) as { type: string; data: { message?: { text?: string } } };
          return event.type === 'message.created' && event.data.message?.text === text;
        });
      await say('first');
      await eventually(() => received('first'), 5_000, 'the first message at the crm');

      // The listening connection is cut (a PostgreSQL restart, a proxy): it is opened again,
      // and a delivery after that is woken as before.
      const cut = await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND query = 'LISTEN nexus_webhook_dispatch'`);
      expect(cut).toBe(1);
      await eventually(
        async () =>
          (await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
            SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND query = 'LISTEN nexus_webhook_dispatch'`)) === 1,
        5_000,
        'the dispatcher listening again',
      );
      await say('second');
      await eventually(() => received('second'), 5_000, 'the second message at the crm');
    } finally {
      await crm.close();
    }
  });
});
