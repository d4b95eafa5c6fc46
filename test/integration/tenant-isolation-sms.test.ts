import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { createOutboundSmsProcessor } from '../../workers/processors/outbound-sms.js';
import { createReceiptProcessor } from '../../workers/processors/receipts.js';
import { createWebhookProcessor } from '../../workers/processors/webhooks.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';

/**
 * Tenants share providers and the phone network, never each other's data: receipts keyed per
 * tenant (issue 16, defect 1), a sender id owned by one tenant (defect 2), and one phone read
 * one way however it was written (defect 11).
 */

const admin = (h: Harness) => ({ Authorization: `Bearer ${h.config.adminToken}` });

/** A tenant with an SMS number, an aggregator key, an agent who serves the number's queue. */
async function provisionTenant(
  h: Harness,
  url: string,
  tenant: string,
  number: string,
  aggregator?: Receiver,
) {
  const as = admin(h);
  await request(url)
    .post('/nexus/v3/provisioning/tenants')
    .set(as)
    .send({ id: tenant, name: tenant })
    .expect(201);
  const key = (
    await request(url)
      .post('/nexus/v3/apikeys')
      .set(as)
      .send({ tenant, name: 'aggregator', permissions: ['nexus:sms:webhook'] })
      .expect(201)
  ).body.key as string;
  if (aggregator) {
    await request(url)
      .put(`/nexus/v3/provisioning/services/${tenant}/Async`)
      .set(as)
      .send({
        url: 'N/A',
        data: { channels: [{ channelId: number, webhook: { url: `${aggregator.url}/outbound` } }] },
        secret: {
          channels: [
            { channelId: number, webhook: { secret: 'webhook-secret' }, api: { secret: 'api' } },
          ],
        },
      })
      .expect(201);
  }
  await request(url)
    .put(`/nexus/v3/provisioning/channels/${tenant}/chat.SMS_Main`)
    .set(as)
    .send({ channelId: number, endpoint: 'SmsDesk', provider: aggregator ? 'Async' : 'mGage' })
    .expect(201);
  const agent = (
    await request(url)
      .post('/nexus/v3/agents')
      .set({ ...as, 'x-ccid': tenant })
      .send({ username: 'sam', name: 'Sam' })
      .expect(201)
  ).body.data.id as string;
  await request(url)
    .put(`/nexus/v3/provisioning/endpoints/${tenant}/SmsDesk`)
    .set(as)
    .send({})
    .expect(res => expect([200, 201]).toContain(res.status)); // 201 on create, since issue 16
  await request(url)
    .put(`/nexus/v3/provisioning/queues/${tenant}/Sms`)
    .set(as)
    .send({ endpoints: ['SmsDesk'], agents: [agent] })
    .expect(201);
  const agentToken = (
    await request(url)
      .post(`/nexus/v3/agents/${agent}/tokens`)
      .set({ ...as, 'x-ccid': tenant })
      .expect(201)
  ).body.data.token as string;
  const mo = (fields: Record<string, string> | string) =>
    request(url).post('/nexus/v3/sms/message').auth(tenant, key).type('form').send(fields);
  const reply = (interactionId: string, text: string) =>
    request(url)
      .post(`/nexus/v3/agent/interactions/${interactionId}/messages`)
      .set('Authorization', `Bearer ${agentToken}`)
      .send({ text });
  const receipt = (fields: Record<string, string>) =>
    request(url).post('/nexus/v3/sms/receipt').auth(tenant, key).send(fields);
  return { tenant, number, key, mo, reply, receipt };
}
type Tenant = Awaited<ReturnType<typeof provisionTenant>>;

async function startSmsWorkers(h: Harness, url: string) {
  const config = { ...h.config, http: { ...h.config.http, publicUrl: url } };
  const deps = { db: h.db, log: h.log, bus: h.bus, config, publisher: h.publisher, redis: h.redis };
  await h.startWorkers({
    processors: {
      inbound: createInboundProcessor({
        db: h.db,
        publisher: h.publisher,
        queues: h.queues,
        log: h.log,
      }),
      'outbound-sms': createOutboundSmsProcessor(deps),
      receipts: createReceiptProcessor(deps),
      webhooks: createWebhookProcessor({ ...deps, queues: h.queues }),
    },
    select: ['inbound', 'outbound-sms', 'receipts', 'webhooks', 'maintenance'],
  });
}

const deliveryOf = (h: Harness, id: string) =>
  h.db.one(
    sql.type(
      z.object({
        tenant_id: z.string(),
        delivery_status: z.string().nullable(),
        provider_message_id: z.string().nullable(),
      }),
    )`SELECT tenant_id, delivery_status, provider_message_id FROM messages WHERE id = ${id}`,
  );

const receiptWork = (h: Harness) =>
  h.db.any(
    sql.type(
      z.object({ tenant_id: z.string().nullable(), state: z.string(), attempts: z.number() }),
    )`SELECT tenant_id, state, attempts FROM work WHERE queue = 'receipts' ORDER BY id`,
  );

/** A customer texts the tenant; its agent answers; the answer is sent (the aggregator's id). */
async function sentReply(h: Harness, t: Tenant, customer: string): Promise<string> {
  const mo = await t
    .mo({ device_address: customer, inbound_address: t.number, message: 'Hi', message_id: 'mo-1' })
    .expect(202);
  const interactionId = mo.body.data.interactionId as string;
  await eventually(
    async () =>
      (await h.db.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM events
        WHERE interaction_id = ${interactionId} AND type = 'message.created'`)) > 0,
    15_000,
    `${t.tenant}'s MO numbered`,
  );
  const id = (await t.reply(interactionId, 'Hello').expect(201)).body.data.id as string;
  await eventually(
    async () => (await deliveryOf(h, id)).delivery_status === 'sent',
    15_000,
    `${t.tenant}'s reply sent`,
  );
  return id;
}

describe('receipts of two tenants', () => {
  const h = useHarness(
    { NEXUS_EGRESS_ALLOW: '127.0.0.1', NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: '20' },
    // A receipt for a message the tenant does not have gives up quickly here.
    { jobOptions: { receipts: { attempts: 2, backoff: { type: 'fixed', delay: 100 } } } },
  );

  it('the same provider message id in two tenants: both receipts are processed, both messages delivered', async () => {
    const aggregatorA = await startReceiver(() => ({
      status: 200,
      body: JSON.stringify({ messageId: 'agg-1' }),
    }));
    const aggregatorB = await startReceiver(() => ({
      status: 200,
      body: JSON.stringify({ messageId: 'agg-1' }),
    }));
    try {
      const api = await h().serve();
      const a = await provisionTenant(h(), api.url, 'tenant-a', '+18005550101', aggregatorA);
      const b = await provisionTenant(h(), api.url, 'tenant-b', '+18005550102', aggregatorB);
      await startSmsWorkers(h(), api.url);
      const messageA = await sentReply(h(), a, '+15551230001');
      const messageB = await sentReply(h(), b, '+15551230002');
      expect((await deliveryOf(h(), messageA)).provider_message_id).toBe('agg-1');
      expect((await deliveryOf(h(), messageB)).provider_message_id).toBe('agg-1');

      const first = await a.receipt({ messageId: 'agg-1', status: 'delivered' }).expect(202);
      expect(first.body.data.duplicate).toBe(false);
      await eventually(
        async () => (await deliveryOf(h(), messageA)).delivery_status === 'delivered',
        15_000,
        "A's message delivered",
      );
      // A's receipt changed A's message only.
      expect((await deliveryOf(h(), messageB)).delivery_status).toBe('sent');

      const second = await b.receipt({ messageId: 'agg-1', status: 'delivered' }).expect(202);
      expect(second.body.data.duplicate).toBe(false);
      await eventually(
        async () => (await deliveryOf(h(), messageB)).delivery_status === 'delivered',
        15_000,
        "B's message delivered",
      );
      expect(await receiptWork(h())).toEqual([
        expect.objectContaining({ tenant_id: 'tenant-a', state: 'done' }),
        expect.objectContaining({ tenant_id: 'tenant-b', state: 'done' }),
      ]);
      // A retried receipt is still a duplicate within its tenant.
      const retry = await b.receipt({ messageId: 'agg-1', status: 'delivered' }).expect(202);
      expect(retry.body.data.duplicate).toBe(true);
    } finally {
      await aggregatorA.close();
      await aggregatorB.close();
    }
  });

  it("a tenant posting another's provider id first neither swallows nor touches the other's receipt", async () => {
    const aggregatorA = await startReceiver(() => ({
      status: 200,
      body: JSON.stringify({ messageId: 'a-1' }),
    }));
    const aggregatorB = await startReceiver(() => ({
      status: 200,
      body: JSON.stringify({ messageId: 'b-1' }),
    }));
    try {
      const api = await h().serve();
      const a = await provisionTenant(h(), api.url, 'tenant-a', '+18005550101', aggregatorA);
      const b = await provisionTenant(h(), api.url, 'tenant-b', '+18005550102', aggregatorB);
      await startSmsWorkers(h(), api.url);
      const messageA = await sentReply(h(), a, '+15551230001');
      const messageB = await sentReply(h(), b, '+15551230002');

      // A posts B's id and B's status first: A has no such message, so its receipt ends
      // undelivered in A.
      await a.receipt({ messageId: 'b-1', status: 'delivered' }).expect(202);
      await eventually(
        async () => (await receiptWork(h()))[0]?.state === 'failed',
        15_000,
        "A's stray receipt given up",
      );
      expect((await deliveryOf(h(), messageB)).delivery_status).toBe('sent');

      const genuine = await b.receipt({ messageId: 'b-1', status: 'delivered' }).expect(202);
      expect(genuine.body.data.duplicate).toBe(false);
      await eventually(
        async () => (await deliveryOf(h(), messageB)).delivery_status === 'delivered',
        15_000,
        "B's message delivered",
      );
      expect((await deliveryOf(h(), messageA)).delivery_status).toBe('sent');
      const undelivered = await h().db.any(
        sql.type(
          z.object({ queue: z.string(), tenant_id: z.string().nullable() }),
        )`SELECT queue, tenant_id FROM undelivered`,
      );
      expect(undelivered).toEqual([{ queue: 'receipts', tenant_id: 'tenant-a' }]);
    } finally {
      await aggregatorA.close();
      await aggregatorB.close();
    }
  });
});

describe('a sender id belongs to one tenant', () => {
  const h = useHarness();

  const claim = (url: string, h: Harness, tenant: string, name: string, channelId: string) =>
    request(url)
      .put(`/nexus/v3/provisioning/channels/${tenant}/${name}`)
      .set(admin(h))
      .send({ channelId, endpoint: 'SmsDesk' });

  const channelsOf = async (url: string, h: Harness, tenant: string) =>
    (
      (
        await request(url)
          .get(`/nexus/v3/provisioning/channels/${tenant}`)
          .set(admin(h))
          .expect(200)
      ).body.data.items as { name: string; channelId: string }[]
    ).map(channel => [channel.name, channel.channelId]);

  it("refuses B's claim of A's number (409, nothing stored), however written; MO stays A's; B claims it once A releases it", async () => {
    const api = await h().serve();
    const a = await provisionTenant(h(), api.url, 'tenant-a', '+18005550100');
    const b = await provisionTenant(h(), api.url, 'tenant-b', '+18005550199');

    for (const written of ['+18005550100', '18005550100', '+1 (800) 555-0100', '0018005550100']) {
      const refused = await claim(api.url, h(), 'tenant-b', 'chat.Taken', written).expect(409);
      expect(refused.body.status, written).toMatchObject({
        code: 'NEXUS_ERR_SENDER_TAKEN',
        field: 'body.channelId',
      });
      expect(JSON.stringify(refused.body)).not.toContain('tenant-a');
    }
    // Nor can B take it over by re-pointing a channel it has.
    await claim(api.url, h(), 'tenant-b', 'chat.SMS_Main', '18005550100').expect(409);
    expect(await channelsOf(api.url, h(), 'tenant-b')).toEqual([['chat.SMS_Main', '+18005550199']]);

    // MO to the number: A's; B's credentials find no channel of B's there.
    const text = { device_address: '+15551234567', inbound_address: '18005550100', message: 'Hi' };
    const toA = await a.mo({ ...text, message_id: 'mo-a' }).expect(202);
    const owner = await h().db.oneFirst(sql.type(z.object({ tenant_id: z.string() }))`
      SELECT tenant_id FROM interactions WHERE id = ${toA.body.data.interactionId as string}`);
    expect(owner).toBe('tenant-a');
    const toB = await b.mo({ ...text, message_id: 'mo-b' }).expect(404);
    expect(toB.body.status.code).toBe('NEXUS_ERR_SMS_UNKNOWN_CHANNEL');

    // In A, re-claiming the number is an update; another of A's channels cannot have it too.
    const update = await request(api.url)
      .put('/nexus/v3/provisioning/channels/tenant-a/chat.SMS_Main')
      .set(admin(h()))
      .send({ channelId: '+18005550100', endpoint: 'SmsDesk', provider: 'Kannel' })
      .expect(200);
    expect(update.body.data).toMatchObject({ channelId: '+18005550100', provider: 'Kannel' });
    const twice = await claim(api.url, h(), 'tenant-a', 'chat.Other', '+18005550100').expect(409);
    expect(twice.body.status).toMatchObject({
      code: 'NEXUS_ERR_CHANNEL_ID_TAKEN',
      field: 'body.channelId',
    });

    // Email domains: one tenant's, whatever the case.
    await request(api.url)
      .put('/nexus/v3/provisioning/channels/tenant-a/cxc.Mail')
      .set(admin(h()))
      .send({ channelId: 'mail.example.com' })
      .expect(201);
    const domain = await request(api.url)
      .put('/nexus/v3/provisioning/channels/tenant-b/cxc.Mail')
      .set(admin(h()))
      .send({ channelId: 'Mail.Example.com' })
      .expect(409);
    expect(domain.body.status.code).toBe('NEXUS_ERR_SENDER_TAKEN');

    // The move: A releases the number, B claims it; its texts are B's from then on.
    await request(api.url)
      .delete('/nexus/v3/provisioning/channels/tenant-a/chat.SMS_Main')
      .set(admin(h()))
      .expect(200);
    await claim(api.url, h(), 'tenant-b', 'chat.Taken', '+18005550100').expect(201);
    await a.mo({ ...text, message_id: 'mo-a2' }).expect(404);
    const moved = await b.mo({ ...text, message_id: 'mo-b2' }).expect(202);
    expect(
      await h().db.oneFirst(sql.type(z.object({ tenant_id: z.string() }))`
        SELECT tenant_id FROM interactions WHERE id = ${moved.body.data.interactionId as string}`),
    ).toBe('tenant-b');
  });

  it('two tenants claiming one number at once: exactly one wins', async () => {
    const api = await h().serve();
    await provisionTenant(h(), api.url, 'tenant-a', '+18005550101');
    await provisionTenant(h(), api.url, 'tenant-b', '+18005550102');
    for (let round = 0; round < 5; round++) {
      const number = `+1800555020${round}`;
      const answers = await Promise.all([
        claim(api.url, h(), 'tenant-a', `chat.Race${round}`, number),
        claim(api.url, h(), 'tenant-b', `chat.Race${round}`, number.slice(1)),
      ]);
      expect(answers.map(res => res.status).sort()).toEqual([201, 409]);
      const owners = await h().db.anyFirst(sql.type(z.object({ tenant_id: z.string() }))`
        SELECT tenant_id FROM channels WHERE name = ${`chat.Race${round}`}`);
      expect(owners).toHaveLength(1);
    }
  });
});

describe('phone numbers on input', () => {
  const h = useHarness();

  it('a "+" lost to form encoding is the same phone: one interaction, one contact', async () => {
    const api = await h().serve();
    const t = await provisionTenant(h(), api.url, 'tenant-a', '+18005550100');
    await startSmsWorkers(h(), api.url);
    // As the README's first example once sent it: "+" not encoded, so it arrives as a space.
    const raw = await t
      .mo('device_address=+15551234567&inbound_address=+18005550100&message=Hi&message_id=m-1')
      .expect(202);
    const encoded = await t
      .mo({
        device_address: '+15551234567',
        inbound_address: '+18005550100',
        message: 'Again',
        message_id: 'm-2',
      })
      .expect(202);
    const interactionId = raw.body.data.interactionId as string;
    expect(encoded.body.data.interactionId).toBe(interactionId);
    await eventually(
      async () =>
        (await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
          SELECT count(*)::int AS n FROM events
          WHERE interaction_id = ${interactionId} AND type = 'message.created'`)) === 2,
      15_000,
      'both messages numbered',
    );
    const phones = await h().db.anyFirst(sql.type(z.object({ value: z.string() }))`
      SELECT value FROM contact_identifiers WHERE kind = 'phone'`);
    expect(phones).toEqual(['+15551234567']);
    const senders = await h().db.anyFirst(sql.type(z.object({ sender_id: z.string() }))`
      SELECT DISTINCT sender_id FROM messages WHERE direction = 'inbound'`);
    expect(senders).toEqual(['+15551234567']);
  });

  it('refuses what cannot be a phone number with a coded 400 naming the field, storing nothing', async () => {
    const api = await h().serve();
    const t = await provisionTenant(h(), api.url, 'tenant-a', '+18005550100');
    for (const device of ['+1555CALLNOW', '+1234567890123456', '07700900123']) {
      const res = await t
        .mo({ device_address: device, inbound_address: t.number, message: 'Hi' })
        .expect(400);
      expect(res.body.status, device).toMatchObject({
        code: 'NEXUS_ERR_VALIDATION',
        field: 'body.device_address',
      });
    }
    expect(
      await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM messages`),
    ).toBe(0);
  });
});
