import { createHmac } from 'node:crypto';
import { sql } from 'slonik';
import request from 'supertest';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { buildAthenaApp } from '../../athena/api/app.js';
import { NexusClient } from '../../athena/nexus-client.js';
import { loadAthenaConfig } from '../../lib/config.js';
import { ADMIN_TOKEN, useHarness, type Harness } from '../helpers/harness.js';

const CCID = 'athena-t1';

/** A hub replica with a tenant, a cluster key and a provisioning key; the connector's app on them. */
async function setup(h: Harness) {
  const hub = await h.serve();
  const admin = `Bearer ${ADMIN_TOKEN}`;
  await request(hub.url)
    .post('/nexus/v3/provisioning/tenants')
    .set('Authorization', admin)
    .send({ id: CCID, name: 'athena tenant', type: 'PureEngage' })
    .expect(201);
  const key = async (tenant: string, permissions: string[]) =>
    (
      await request(hub.url)
        .post('/nexus/v3/apikeys')
        .set('Authorization', admin)
        .send({ tenant, name: permissions.join(' '), permissions })
        .expect(201)
    ).body.key as string;
  const clusterKey = await key('*', ['nexus:cluster:*']);
  const provisioningKey = await key(CCID, ['nexus:provisioning:*']);
  const chatKey = await key(CCID, ['nexus:consumer:chat']);
  const config = loadAthenaConfig({
    DATABASE_URL: h.dbUrl,
    NEXUS_QUEUE_PREFIX: h.config.queues.prefix,
    LOG_LEVEL: 'silent',
    ATHENA_NEXUS_URL: hub.url,
    ATHENA_NEXUS_API_KEY: clusterKey,
    ATHENA_NEXUS_TIMEOUT_MS: '2000',
  });
  const app = buildAthenaApp({
    config,
    log: h.log,
    db: h.db,
    redis: h.redis,
    nexus: new NexusClient(config.nexus, h.log),
    enqueue: h.enqueue,
    startedAt: new Date(),
  });
  return { hub, app, config, provisioningKey, chatKey, clusterKey };
}

const storedMessages = (h: Harness) =>
  h.db.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM athena_messages`,
  );

describe('the AI connector API', () => {
  const harness = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1' });

  it('the guide verification: an unsigned delivery answers 200 PAYLOAD_SIGNATURE_CHECK_FAILED under each prefix and stores nothing', async () => {
    const { app } = await setup(harness());
    const body = {
      id: 'e1',
      type: 'message.created',
      tenant: CCID,
      interactionId: '4b1cbb5c-37e8-4b8f-a0b3-4d2f1c3ad001',
      seq: 3,
      occurredAt: new Date().toISOString(),
      data: {
        message: { id: '4b1cbb5c-37e8-4b8f-a0b3-4d2f1c3ad002', text: 'hello', type: 'Text' },
        from: { type: 'customer' },
      },
    };
    for (const prefix of ['/athena/v1', '/nexus/v3']) {
      const unsigned = await request(app)
        .post(`${prefix}/agent-assist-chat/messages`)
        .send(body)
        .expect(200);
      expect(unsigned.body.status.code).toBe('PAYLOAD_SIGNATURE_CHECK_FAILED');
      // Signed with a secret the hub does not hold for the tenant: the same answer.
      const raw = JSON.stringify(body);
      const forged = await request(app)
        .post(`${prefix}/agent-assist-chat/messages`)
        .set('Content-Type', 'application/json')
        .set('X-Hub-Signature', `sha1=${createHmac('sha1', 'guess').update(raw).digest('hex')}`)
        .send(raw)
        .expect(200);
      expect(forged.body.status.code).toBe('PAYLOAD_SIGNATURE_CHECK_FAILED');
    }
    // Unknown tenant, malformed bodies.
    const unknown = await request(app)
      .post('/nexus/v3/agent-assist-chat/messages')
      .send({ ...body, tenant: 'nobody' })
      .expect(200);
    expect(unknown.body.status.code).toBe('PAYLOAD_SIGNATURE_CHECK_FAILED');
    const notJson = await request(app)
      .post('/nexus/v3/agent-assist-chat/messages')
      .set('Content-Type', 'application/json')
      .send('{"tenant":')
      .expect(400);
    expect(notJson.body.status.code).toBe('NEXUS_ERR_BAD_JSON');
    const noTenant = await request(app)
      .post('/nexus/v3/agent-assist-chat/messages')
      .send({ ...body, tenant: 'bad tenant!' })
      .expect(400);
    expect(noTenant.body.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field: 'tenant' });
    // The route answers under the configured prefixes only.
    await request(app).post('/other/agent-assist-chat/messages').send(body).expect(404);
    expect(await storedMessages(harness())).toBe(0);
    expect(await harness().queues.get('ai-connector').count()).toBe(0);
  });

  it('deliveries that arrive together are stored together: each message once, one job each, one answered new', async () => {
    const { hub, app, clusterKey } = await setup(harness());
    await request(hub.url)
      .post(`/nexus/v3/provisioning/services/${CCID}/WebhookTransportTarget-ai-connector`)
      .set('Authorization', `Bearer ${ADMIN_TOKEN}`)
      .send({ url: 'http://127.0.0.1:9/nexus/v3/agent-assist-chat/messages' })
      .expect(201);
    const secret = (
      await request(hub.url)
        .get(`/nexus/v3/provisioning/services/${CCID}/WebhookTransportTarget-ai-connector/secret`)
        .set('x-api-key', clusterKey)
        .set('x-ccid', CCID)
        .expect(200)
    ).body.data.secret as string;
    const deliver = (i: number) => {
      const raw = JSON.stringify({
        id: `event-${i}`,
        type: 'message.created',
        tenant: CCID,
        interactionId: '4b1cbb5c-37e8-4b8f-a0b3-4d2f1c3ad001',
        seq: i + 3,
        occurredAt: new Date().toISOString(),
        data: {
          message: { id: `4b1cbb5c-37e8-4b8f-a0b3-${String(i).padStart(12, '0')}`, text: `m${i}` },
          from: { type: 'customer' },
        },
      });
      return request(app)
        .post('/nexus/v3/agent-assist-chat/messages')
        .set('Content-Type', 'application/json')
        .set('X-Hub-Signature', `sha1=${createHmac('sha1', secret).update(raw).digest('hex')}`)
        .send(raw)
        .expect(200);
    };
    // 40 messages, each delivered twice, all at once.
    const answers = await Promise.all(
      Array.from({ length: 80 }, (_, n) => deliver(n % 40).then(res => res.body.data)),
    );
    expect(answers.every(a => a.accepted === true)).toBe(true);
    expect(answers.filter(a => a.duplicate === false)).toHaveLength(40);
    expect(await storedMessages(harness())).toBe(40);
    const work = await harness().db.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM work WHERE queue = 'ai-connector'`);
    expect(work).toBe(40);
    expect(await harness().queues.get('ai-connector').count()).toBe(40);
    // Again later: duplicates, nothing more.
    const again = await deliver(7);
    expect(again.body.data).toEqual({ accepted: true, duplicate: true });
    expect(await storedMessages(harness())).toBe(40);
  });

  it('health detail in the guide athena shape; live and ready', async () => {
    const { app } = await setup(harness());
    const detail = await request(app).get('/health/detail').expect(200);
    expect(detail.body).toMatchObject({
      buildInfo: {
        version: expect.any(String),
        changeset: expect.any(String),
        timestamp: expect.any(String),
      },
      startTime: expect.any(String),
      upTime: expect.any(Number),
      os: {
        hostname: expect.any(String),
        upTime: expect.any(Number),
        freemem: expect.any(Number),
        loadavg: expect.any(Array),
        totalmem: expect.any(Number),
      },
      memoryUsage: { rss: expect.any(Number), heapUsed: expect.any(Number) },
      redis: { state: 'READY', latency: expect.any(Number), ready: true },
      db: { latency: expect.any(Number), ready: true },
      isReady: true,
      state: 'green',
    });
    await request(app).get('/health/live').expect(200, { state: 'green' });
    await request(app).get('/health/ready').expect(200);
  });

  it('provider settings: the hub decides who may set them; training data is checked and trained; secrets are never answered', async () => {
    const { app, provisioningKey, chatKey } = await setup(harness());
    const training = {
      language: 'en',
      intents: [
        { name: 'greeting', examples: ['hello', 'hi there', 'good morning'] },
        {
          name: 'refund',
          examples: ['I want my money back', 'refund my order', 'give me a refund'],
        },
      ],
    };
    const path = `/athena/v1/ai/${CCID}/providers/default`;
    await request(app).put(path).send({ provider: 'builtin', training }).expect(401);
    await request(app)
      .put(path)
      .set('x-api-key', chatKey)
      .send({ provider: 'builtin', training })
      .expect(403);
    await request(app)
      .put(path)
      .set('x-api-key', 'not-a-key')
      .send({ provider: 'builtin', training })
      .expect(401);
    const bad = await request(app)
      .put(path)
      .set('x-api-key', provisioningKey)
      .send({
        provider: 'builtin',
        training: { language: 'en', intents: [{ name: 'x', examples: [] }] },
      })
      .expect(400);
    expect(bad.body.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field: 'training' });
    expect(bad.body.status.message).toContain('intents[0].examples');
    const unknownProvider = await request(app)
      .put(path)
      .set('x-api-key', provisioningKey)
      .send({ provider: 'watson' })
      .expect(400);
    expect(unknownProvider.body.status.field).toBe('body.provider');
    // The keys every provider takes are checked; a provider's own keys pass through.
    for (const [data, field] of [
      [{ maxMisses: 0 }, 'body.data.maxMisses'],
      [{ timeoutMs: 10 }, 'body.data.timeoutMs'],
      [{ minConfidence: 2 }, 'body.data.minConfidence'],
      [{ handoffKeywords: 'agent' }, 'body.data.handoffKeywords'],
      [{ fallbackText: ' ' }, 'body.data.fallbackText'],
      [{ queues: 'Sales' }, 'body.data.queues'],
      [{ endpoints: [''] }, 'body.data.endpoints.0'],
    ] as const) {
      const refused = await request(app)
        .put(path)
        .set('x-api-key', provisioningKey)
        .send({ provider: 'builtin', training, data })
        .expect(400);
      expect(refused.body.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field });
    }
    const count = () =>
      harness().db.oneFirst(
        sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM athena_providers`,
      );
    expect(await count()).toBe(0);

    await request(app)
      .put(path)
      .set('x-api-key', provisioningKey)
      .send({ provider: 'builtin', training, data: { minConfidence: 0.3 } })
      .expect(200);
    await request(app)
      .put(`/athena/v1/ai/${CCID}/providers/rasa1`)
      .set('x-api-key', provisioningKey)
      .send({ provider: 'rasa', url: 'http://rasa.example:5005', secret: { token: 's3cret' } })
      .expect(200);
    const listed = await request(app)
      .get(`/nexus/v3/ai/${CCID}/providers`)
      .set('x-api-key', provisioningKey)
      .expect(200);
    expect(listed.body.data).toEqual([
      {
        name: 'default',
        provider: 'builtin',
        url: null,
        data: { minConfidence: 0.3 },
        trained: true,
        hasSecret: false,
      },
      {
        name: 'rasa1',
        provider: 'rasa',
        url: 'http://rasa.example:5005',
        data: {},
        trained: false,
        hasSecret: true,
      },
    ]);
    expect(JSON.stringify(listed.body)).not.toContain('s3cret');
    const sealed = await harness().db.oneFirst(
      sql.type(
        z.object({ s: z.string() }),
      )`SELECT secret_sealed AS s FROM athena_providers WHERE name = 'rasa1'`,
    );
    expect(sealed).not.toContain('s3cret');

    await request(app)
      .put(`/athena/v1/ai/${CCID}/articles`)
      .set('x-api-key', provisioningKey)
      .send({
        articles: [
          { id: 'a', title: 't', body: 'b' },
          { id: 'a', title: 't', body: 'b' },
        ],
      })
      .expect(400);
    await request(app)
      .put(`/athena/v1/ai/${CCID}/articles`)
      .set('x-api-key', provisioningKey)
      .send({
        articles: [
          {
            id: 'returns',
            title: 'Returns and refunds',
            body: 'You can return an order within 30 days for a full refund.',
          },
          {
            id: 'shipping',
            title: 'Shipping times',
            body: 'Orders ship within two business days.',
          },
        ],
      })
      .expect(200, { status: { code: 0 }, data: { articles: 2 } });
    await request(app)
      .delete(`/athena/v1/ai/${CCID}/providers/rasa1`)
      .set('x-api-key', provisioningKey)
      .expect(200);
    expect(await count()).toBe(1);
  });
});
