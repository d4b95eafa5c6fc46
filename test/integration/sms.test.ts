import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EVENT_DATA } from '../../domain/event-catalogue.js';
import { outboundSmsQueue } from '../../queues/outbound-sms.js';
import { createHmac } from 'node:crypto';
import { Writable } from 'node:stream';
import { createLogger } from '../../lib/logger.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { createOutboundSmsProcessor } from '../../workers/processors/outbound-sms.js';
import { createReceiptProcessor } from '../../workers/processors/receipts.js';
import { createWebhookProcessor } from '../../workers/processors/webhooks.js';
import { headerValues, startRawReceiver, type RawRequest } from '../helpers/raw-receiver.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startKannel } from '../helpers/kannel.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';

const TENANT = 'sms-tenant';
const NUMBER = '+18005550100';

async function setup(h: Harness, outbound = false) {
  const api = await h.serve();
  const admin = { Authorization: `Bearer ${h.config.adminToken}` };
  await request(api.url)
    .post('/nexus/v3/provisioning/tenants')
    .set(admin)
    .send({ id: TENANT, name: TENANT })
    .expect(201);
  const key = (
    await request(api.url)
      .post('/nexus/v3/apikeys')
      .set(admin)
      .send({ tenant: TENANT, name: 'aggregator', permissions: ['nexus:sms:webhook'] })
      .expect(201)
  ).body.key as string;
  await request(api.url)
    .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Main`)
    .set(admin)
    .send({ channelId: NUMBER, endpoint: 'SmsDesk', provider: 'mGage' })
    .expect(201);
  await request(api.url)
    .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Campaigns`)
    .set(admin)
    .send({ channelId: '12345', endpoint: 'SmsDesk', provider: 'mGage', cxcOnly: true })
    .expect(201);
  const agent = (
    await request(api.url)
      .post('/nexus/v3/agents')
      .set({ ...admin, 'x-ccid': TENANT })
      .send({ username: 'sam', name: 'Sam' })
      .expect(201)
  ).body.data.id as string;
  // The channel's endpoint, as a routing endpoint a queue serves.
  await request(api.url)
    .put(`/nexus/v3/provisioning/endpoints/${TENANT}/SmsDesk`)
    .set(admin)
    .send({})
    .expect(201);
  await request(api.url)
    .put(`/nexus/v3/provisioning/queues/${TENANT}/Sms`)
    .set(admin)
    .send({ endpoints: ['SmsDesk'], agents: [agent] })
    .expect(201);
  const agentToken = (
    await request(api.url)
      .post(`/nexus/v3/agents/${agent}/tokens`)
      .set({ ...admin, 'x-ccid': TENANT })
      .expect(201)
  ).body.data.token as string;
  // Workers see the API at its public URL (Kannel's report callbacks).
  const config = { ...h.config, http: { ...h.config.http, publicUrl: api.url } };
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
    select: outbound
      ? ['inbound', 'outbound-sms', 'receipts', 'webhooks', 'maintenance']
      : ['inbound', 'maintenance'],
  });
  const mo = (fields: Record<string, string>, auth: [string, string] = [TENANT, key]) =>
    request(api.url)
      .post('/nexus/v3/sms/message')
      .auth(...auth)
      .type('form')
      .send(fields);
  const reply = (interactionId: string, text: string) =>
    request(api.url)
      .post(`/nexus/v3/agent/interactions/${interactionId}/messages`)
      .set('Authorization', `Bearer ${agentToken}`)
      .send({ text });
  const receipt = (fields: Record<string, string>) =>
    request(api.url).post('/nexus/v3/sms/receipt').auth(TENANT, key).send(fields);
  return { api, admin, key, mo, reply, receipt, agentToken };
}

const messageRow = (h: Harness, id: string) =>
  h.db.one(sql.type(
    z.object({
      delivery_status: z.string().nullable(),
      provider: z.string().nullable(),
      provider_message_id: z.string().nullable(),
      encoding: z.string().nullable(),
      segments: z.number().nullable(),
    }),
  )`SELECT delivery_status, provider, provider_message_id, encoding, segments
    FROM messages WHERE id = ${id}`);

const eventsOf = (h: Harness, interactionId: string) =>
  h.db.any(sql.type(
    z.object({ type: z.string(), seq: z.number(), payload: z.record(z.unknown()) }),
  )`
    SELECT type, seq, payload FROM events WHERE interaction_id = ${interactionId} ORDER BY seq`);

const counts = (h: Harness) =>
  h.db.one(sql.type(z.object({ interactions: z.number(), messages: z.number(), work: z.number() }))`
    SELECT (SELECT count(*) FROM interactions)::int AS interactions,
           (SELECT count(*) FROM messages)::int AS messages,
           (SELECT count(*) FROM work WHERE queue = 'inbound')::int AS work`);

describe('inbound SMS', () => {
  const h = useHarness();

  it('threads a customer’s texts into one interaction, routed like a chat; retries are stored once', async () => {
    const { mo } = await setup(h());
    const first = await mo({
      device_address: '+1 (555) 123-4567',
      inbound_address: NUMBER,
      message: 'Hi, is my order shipped?',
      message_id: 'mo-1',
    }).expect(202);
    const { interactionId } = first.body.data as { interactionId: string };
    expect(first.body.data.duplicate).toBe(false);
    // The aggregator retries the same MO: nothing new.
    const retry = await mo({
      device_address: '+15551234567',
      inbound_address: NUMBER,
      message: 'Hi, is my order shipped?',
      message_id: 'mo-1',
    }).expect(202);
    expect(retry.body.data).toMatchObject({ interactionId, duplicate: true });
    // The same customer writes again (to the number without "+"): the same interaction.
    const second = await mo({
      device_address: '+1 555 123 4567',
      inbound_address: '18005550100',
      message: 'Order 42',
      message_id: 'mo-2',
    }).expect(202);
    expect(second.body.data.interactionId).toBe(interactionId);

    await eventually(
      async () =>
        (await eventsOf(h(), interactionId)).filter(e => e.type === 'message.created').length === 2,
      10_000,
      'both messages numbered',
    );
    // Queued for the routing queue that serves the channel's endpoint.
    const routing = await h().db.one(
      sql.type(
        z.object({ queue_name: z.string().nullable(), routing_state: z.string().nullable() }),
      )`SELECT queue_name, routing_state FROM interactions WHERE id = ${interactionId}`,
    );
    expect(routing).toEqual({ queue_name: 'Sms', routing_state: 'queued' });
    const events = await eventsOf(h(), interactionId);
    for (const event of events) {
      expect(
        EVENT_DATA[event.type as keyof typeof EVENT_DATA].safeParse(event.payload).success,
        event.type,
      ).toBe(true);
    }
    expect(events[0]).toMatchObject({
      type: 'interaction.started',
      payload: {
        interaction: { mediaType: 'chat', interactionSubtype: 'SMS', endpoint: 'SmsDesk' },
      },
    });
    expect(events[1]).toMatchObject({
      type: 'participant.joined',
      payload: { participant: { id: '+15551234567', type: 'customer' } },
    });
    const texts = events
      .filter(e => e.type === 'message.created')
      .map(e => (e.payload.message as { text: string }).text);
    expect(texts).toEqual(['Hi, is my order shipped?', 'Order 42']);
    expect(await counts(h())).toMatchObject({ interactions: 1, messages: 2, work: 2 });

    // Another number: its own interaction, its own contact.
    const other = await mo({
      device_address: '+15559990000',
      inbound_address: NUMBER,
      message: 'Hello',
      message_id: 'mo-3',
    }).expect(202);
    expect(other.body.data.interactionId).not.toBe(interactionId);
    await eventually(
      async () =>
        (await eventsOf(h(), other.body.data.interactionId as string)).some(
          e => e.type === 'interaction.started',
        ),
      10_000,
      'the second interaction started',
    );
    const contacts = await h().db.anyFirst(sql.type(z.object({ value: z.string() }))`
      SELECT value FROM contact_identifiers WHERE kind = 'phone' ORDER BY value`);
    expect(contacts).toEqual(['+15551234567', '+15559990000']);
  });

  it('refuses bad credentials, unknown numbers and malformed bodies, and stores nothing', async () => {
    const { mo, key } = await setup(h());
    const good = { device_address: '+15551234567', inbound_address: NUMBER, message: 'Hi' };
    const before = await counts(h());
    await mo(good, [TENANT, 'wrong-key']).expect(401);
    await mo(good, ['another-tenant', key]).expect(403);
    const unknown = await mo({ ...good, inbound_address: '+18009999999' }).expect(404);
    expect(unknown.body.status).toMatchObject({
      code: 'NEXUS_ERR_SMS_UNKNOWN_CHANNEL',
      field: 'body.inbound_address',
    });
    for (const [body, field] of [
      [{ inbound_address: NUMBER, message: 'x' }, 'body.device_address'],
      [{ ...good, device_address: 'not a number' }, 'body.device_address'],
      [{ ...good, inbound_address: '' }, 'body.inbound_address'],
      [{ ...good, message: '' }, 'body.message'],
      [{ ...good, message: 'x'.repeat(4_097) }, 'body.message'],
    ] as const) {
      const res = await mo(body as Record<string, string>).expect(400);
      expect(res.body.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field });
    }
    expect(await counts(h())).toEqual(before);
    const rejections = await h().db.any(
      sql.type(
        z.object({ reason: z.string(), to_address: z.string() }),
      )`SELECT reason, to_address FROM sms_rejections`,
    );
    expect(rejections).toEqual([{ reason: 'unknown channel', to_address: '+18009999999' }]);
  });

  it('a text to a cxcOnly channel creates no chat: it is a reply to the campaign, and STOP opts out', async () => {
    const { api, admin, mo } = await setup(h());
    // A campaign wrote to the number from the campaign channel (no worker sends it here).
    await request(api.url)
      .post(`/nexus/v3/sms/campaigns/${TENANT}/spring/records`)
      .set(admin)
      .send({ records: [{ id: 'r1', from: '12345', to: '+15551234567', text: 'Spring sale!' }] })
      .expect(202);
    const stop = {
      device_address: '+15551234567',
      inbound_address: '12345',
      message: 'STOP',
      message_id: 'mo-9',
    };
    const res = await mo(stop).expect(202);
    expect(res.body.data).toEqual({ messageId: null, interactionId: null, duplicate: false });
    expect((await mo(stop).expect(202)).body.data.duplicate).toBe(true);
    const replies = await request(api.url)
      .get(`/nexus/v3/sms/campaigns/${TENANT}/spring/replies`)
      .set(admin)
      .expect(200);
    expect(replies.body.data.items).toEqual([
      expect.objectContaining({
        from: '+15551234567',
        to: '12345',
        text: 'STOP',
        recordId: 'r1',
        keyword: 'opt-out',
      }),
    ]);
    const event = await h().db.one(sql.type(z.object({ payload: z.record(z.unknown()) }))`
      SELECT payload FROM events WHERE type = 'campaign.reply'`);
    expect(event.payload).toMatchObject({ campaign: 'spring', recordId: 'r1', keyword: 'opt-out' });
    const ledger = await request(api.url)
      .get(`/nexus/v3/sms/consent/${TENANT}`)
      .query({ address: '+15551234567' })
      .set(admin)
      .expect(200);
    expect(ledger.body.data.senders).toEqual([
      expect.objectContaining({ sender: '12345', optedOut: true }),
    ]);
    expect((await counts(h())).interactions).toBe(0);
  });
});

describe('outbound SMS through a third-party aggregator (Async)', () => {
  const h = useHarness({
    NEXUS_EGRESS_ALLOW: '127.0.0.1',
    NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: '20',
  });
  const WEBHOOK_SECRET = 'aggregator-webhook-secret';

  async function provisionAsync(
    s: Awaited<ReturnType<typeof setup>>,
    aggregator: Pick<Receiver, 'url'>,
    maxPerSecond?: number,
  ) {
    await request(s.api.url)
      .put(`/nexus/v3/provisioning/services/${TENANT}/Async`)
      .set(s.admin)
      .send({
        url: 'N/A',
        data: {
          channels: [{ channelId: NUMBER, webhook: { url: `${aggregator.url}/outbound` } }],
          'header:X-Aggregator-Account': 'acme-17',
          ...(maxPerSecond ? { maxPerSecond } : {}),
        },
        secret: {
          channels: [
            {
              channelId: NUMBER,
              webhook: { secret: WEBHOOK_SECRET },
              api: { secret: 'api-secret' },
            },
          ],
        },
      })
      .expect(201);
    await request(s.api.url)
      .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Main`)
      .set(s.admin)
      .send({ channelId: NUMBER, endpoint: 'SmsDesk', provider: 'Async' })
      .expect(200);
  }

  it('MO → interaction → agent reply → signed send → receipts → delivered, on the socket log and as a webhook', async () => {
    let sent = 0;
    const aggregator = await startReceiver(() => ({
      status: 200,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messageId: `agg-${++sent}` }),
    }));
    const hooks = await startReceiver();
    try {
      const s = await setup(h(), true);
      await provisionAsync(s, aggregator);
      await request(s.api.url)
        .put(`/nexus/v3/provisioning/services/${TENANT}/WebhookTransportTarget-crm`)
        .set(s.admin)
        .send({ url: hooks.url, data: { events: ['message.status'] } })
        .expect(201);
      const mo = await s
        .mo({
          device_address: '+15551234567',
          inbound_address: NUMBER,
          message: 'Hi',
          message_id: 'mo-1',
        })
        .expect(202);
      const interactionId = mo.body.data.interactionId as string;
      await eventually(
        async () => (await eventsOf(h(), interactionId)).some(e => e.type === 'message.created'),
        10_000,
        'the MO numbered',
      );
      const text = `Your order ships today. ${'x'.repeat(140)}`; // 164 GSM characters: 2 segments
      const replied = await s.reply(interactionId, text).expect(201);
      const messageId = replied.body.data.id as string;
      expect(await messageRow(h(), messageId)).toMatchObject({
        encoding: 'GSM-7',
        segments: 2,
      });

      await eventually(() => aggregator.requests.length === 1, 10_000, 'the send');
      const send = aggregator.requests[0] as (typeof aggregator.requests)[number];
      expect(send.path).toBe('/outbound');
      expect(send.headers['x-hub-signature']).toBe(
        `sha1=${createHmac('sha1', WEBHOOK_SECRET).update(send.body).digest('hex')}`,
      );
      expect(send.headers['x-b3-traceid']).toMatch(/^[0-9a-f]{32}$/);
      expect(send.headers['x-aggregator-account']).toBe('acme-17');
      expect(JSON.parse(send.body)).toEqual({
        messages: [
          {
            id: messageId,
            channelId: NUMBER,
            type: 'Text',
            from: NUMBER,
            to: '+15551234567',
            text,
          },
        ],
      });
      await eventually(
        async () => (await messageRow(h(), messageId)).delivery_status === 'sent',
        10_000,
        'sent',
      );
      expect(await messageRow(h(), messageId)).toMatchObject({
        provider: 'Async',
        provider_message_id: 'agg-1',
      });

      // Receipts out of order: delivered, then a late sent. Delivered stays.
      await s.receipt({ messageId: 'agg-1', status: 'delivered' }).expect(202);
      await eventually(
        async () => (await messageRow(h(), messageId)).delivery_status === 'delivered',
        10_000,
        'delivered',
      );
      await s.receipt({ messageId: 'agg-1', status: 'sent' }).expect(202);
      await eventually(
        async () =>
          (await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
            SELECT count(*)::int AS n FROM work WHERE queue = 'receipts' AND state = 'done'`)) ===
          2,
        10_000,
        'both receipts processed',
      );
      expect((await messageRow(h(), messageId)).delivery_status).toBe('delivered');

      // The agent's view (the interaction's events) and the webhook: sent, then delivered.
      const statuses = (await eventsOf(h(), interactionId))
        .filter(e => e.type === 'message.status')
        .map(e => e.payload.status);
      expect(statuses).toEqual(['sent', 'delivered']);
      await eventually(() => hooks.requests.length === 2, 10_000, 'two status webhooks');
      const hooked = hooks.requests
        .map(r => JSON.parse(r.body) as { data: { status: string; messageId: string } })
        .sort((a, b) => a.data.status.localeCompare(b.data.status));
      expect(hooked.map(b => [b.data.status, b.data.messageId])).toEqual([
        ['delivered', messageId],
        ['sent', messageId],
      ]);

      // The agent's view of the conversation carries each SMS's delivery state.
      const view = await request(s.api.url)
        .get(`/nexus/v3/agent/interactions/${interactionId}`)
        .set('Authorization', `Bearer ${s.agentToken}`)
        .expect(200);
      expect(view.body.data.smsDeliveries).toEqual([
        expect.objectContaining({
          messageId,
          status: 'delivered',
          encoding: 'GSM-7',
          segments: 2,
          provider: 'Async',
        }),
      ]);

      // A reply over the segment limit is refused and stores nothing.
      const long = await s.reply(interactionId, 'я'.repeat(67 * 10 + 1)).expect(400);
      expect(long.body.status).toMatchObject({
        code: 'NEXUS_ERR_SMS_TOO_LONG',
        field: 'body.text',
      });
      expect(aggregator.requests).toHaveLength(1);
    } finally {
      await aggregator.close();
      await hooks.close();
    }
  });

  it('STOP refuses agent replies and campaign sends to that number (recorded); START lets them out again; HELP answers with the tenant text', async () => {
    let sent = 0;
    const aggregator = await startReceiver(() => ({
      status: 200,
      body: JSON.stringify({ messageId: `agg-${++sent}` }),
    }));
    try {
      const s = await setup(h(), true);
      await provisionAsync(s, aggregator);
      await request(s.api.url)
        .put(`/nexus/v3/provisioning/services/${TENANT}/SmsKeywords`)
        .set(s.admin)
        .send({
          url: 'N/A',
          data: {
            languages: { en: { optOut: ['STOP', 'ENOUGH'], optIn: ['START'], help: ['HELP'] } },
            helpText: 'Acme support: reply STOP to opt out.',
          },
        })
        .expect(201);
      const text = (message: string, id: string) =>
        s
          .mo({ device_address: '+15551234567', inbound_address: NUMBER, message, message_id: id })
          .expect(202);
      const interactionId = (await text('Hi', 'mo-1')).body.data.interactionId as string;

      // HELP: the tenant's help text goes out at once, in the conversation.
      await text('help', 'mo-2');
      await eventually(() => aggregator.requests.length === 1, 10_000, 'the HELP answer');
      expect(
        JSON.parse((aggregator.requests[0] as { body: string }).body).messages[0],
      ).toMatchObject({
        to: '+15551234567',
        text: 'Acme support: reply STOP to opt out.',
      });

      // The tenant's own opt-out word: the next agent reply is refused, not sent.
      await text('Enough!', 'mo-3');
      const refused = (await s.reply(interactionId, 'One more offer?').expect(201)).body.data
        .id as string;
      await eventually(
        async () => (await messageRow(h(), refused)).delivery_status === 'failed',
        10_000,
        'the refused reply',
      );
      const reason = await h().db.oneFirst(sql.type(z.object({ r: z.string().nullable() }))`
        SELECT delivery_reason AS r FROM messages WHERE id = ${refused}`);
      expect(reason).toMatch(/^opted-out/);
      expect(aggregator.requests).toHaveLength(1);
      const undelivered = await request(s.api.url)
        .get('/nexus/v3/undelivered?queue=outbound-sms')
        .set(s.admin)
        .expect(200);
      expect(undelivered.body.data.items).toHaveLength(1);
      // The failure's catalogue code: on the record, the message and both events.
      expect(undelivered.body.data.items[0].code).toBe('NEXUS_ERR_SMS_OPTED_OUT');
      const refusedCode = await h().db.oneFirst(sql.type(z.object({ c: z.string().nullable() }))`
        SELECT delivery_code AS c FROM messages WHERE id = ${refused}`);
      expect(refusedCode).toBe('NEXUS_ERR_SMS_OPTED_OUT');
      const refusedEvents = (await eventsOf(h(), interactionId)).filter(
        e => e.payload.messageId === refused,
      );
      expect(refusedEvents.map(e => [e.type, e.payload.code])).toEqual([
        ['message.status', 'NEXUS_ERR_SMS_OPTED_OUT'],
        ['interaction.undelivered', 'NEXUS_ERR_SMS_OPTED_OUT'],
      ]);

      // A campaign send to that number is refused and recorded too.
      const campaign = (records: object[]) =>
        request(s.api.url)
          .post(`/nexus/v3/sms/campaigns/${TENANT}/spring/records`)
          .set(s.admin)
          .send({ records });
      const status = async (id: string) =>
        (
          (
            await request(s.api.url)
              .get(`/nexus/v3/sms/campaigns/${TENANT}/spring/records`)
              .set(s.admin)
              .expect(200)
          ).body.data.items as { id: string; status: string; reason: string | null }[]
        ).find(record => record.id === id);
      await campaign([{ id: 'r1', from: NUMBER, to: '+15551234567', text: 'Spring sale!' }]).expect(
        202,
      );
      await eventually(async () => (await status('r1'))?.status === 'failed', 10_000, 'r1 refused');
      expect((await status('r1'))?.reason).toMatch(/^opted-out/);
      expect(await status('r1')).toMatchObject({ code: 'NEXUS_ERR_SMS_OPTED_OUT' });
      expect(aggregator.requests).toHaveLength(1);

      // START: replies go out again.
      await text('START', 'mo-4');
      const allowed = (await s.reply(interactionId, 'Welcome back').expect(201)).body.data
        .id as string;
      await eventually(
        async () => (await messageRow(h(), allowed)).delivery_status === 'sent',
        10_000,
        'the reply after START',
      );
      expect(aggregator.requests).toHaveLength(2);
      const again = await campaign([
        { id: 'r1', from: NUMBER, to: '+15551234567', text: 'Spring sale!' },
        { id: 'r2', from: NUMBER, to: '+15551234567', text: 'Spring sale!' },
      ]).expect(202);
      expect(again.body.data).toEqual({ accepted: 1, duplicates: 1 });
      await eventually(async () => (await status('r2'))?.status === 'sent', 10_000, 'r2 sent');
      expect(aggregator.requests).toHaveLength(3);
      // Bad records are refused whole.
      const unknown = await campaign([
        { id: 'r3', from: '+19990000000', to: '+15551234567', text: 'x' },
      ]).expect(404);
      expect(unknown.body.status.field).toBe('body.records.0.from');
      await campaign([{ id: 'r4', from: NUMBER, to: 'nobody', text: 'x' }]).expect(400);

      // The ledger and its audit trail.
      const ledger = await request(s.api.url)
        .get(`/nexus/v3/sms/consent/${TENANT}`)
        .query({ address: '+1 555 123 4567' })
        .set(s.admin)
        .expect(200);
      expect(ledger.body.data.senders).toEqual([
        expect.objectContaining({ sender: NUMBER, optedOut: false }),
      ]);
      expect(
        ledger.body.data.changes.map((c: { action: string; keyword: string }) => [
          c.action,
          c.keyword,
        ]),
      ).toEqual([
        ['opt-in', 'START'],
        ['opt-out', 'Enough!'],
      ]);
    } finally {
      await aggregator.close();
    }
  });

  it('holds each sender to the provider rate (counted in Redis); a 429 waits without using an attempt', async () => {
    let count = 0;
    const aggregator = await startReceiver(() =>
      ++count === 1
        ? { status: 429, headers: { 'Retry-After': '1' }, body: 'slow down' }
        : { status: 200, body: JSON.stringify({ messageId: `agg-${count}` }) },
    );
    try {
      const s = await setup(h(), true);
      await provisionAsync(s, aggregator, 2);
      const mo = await s
        .mo({
          device_address: '+15551234567',
          inbound_address: NUMBER,
          message: 'Hi',
          message_id: 'mo-1',
        })
        .expect(202);
      const interactionId = mo.body.data.interactionId as string;
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        ids.push((await s.reply(interactionId, `Reply ${i}`).expect(201)).body.data.id as string);
      }
      await eventually(
        async () =>
          (await Promise.all(ids.map(id => messageRow(h(), id)))).every(
            row => row.delivery_status === 'sent',
          ),
        20_000,
        'all six sent',
      );
      // 7 requests (one 429). The five other messages, sent at most 2 a second, need three
      // 1-second windows: without the limit they would all leave within a few milliseconds.
      expect(aggregator.requests).toHaveLength(7);
      const idOf = (r: { body: string }) =>
        (JSON.parse(r.body) as { messages: { id: string }[] }).messages[0]?.id;
      const throttledId = idOf(aggregator.requests[0] as { body: string });
      const others = aggregator.requests.filter(r => idOf(r) !== throttledId).map(r => r.at);
      expect(others).toHaveLength(5);
      expect(Math.max(...others) - Math.min(...others)).toBeGreaterThanOrEqual(900);
      // The throttled message used one attempt, as if the 429 never happened.
      const job = await h()
        .queues.get('outbound-sms')
        .getJob(outboundSmsQueue.jobId({ tenantId: TENANT, messageId: throttledId ?? '' }));
      expect(job?.attemptsMade).toBe(1);
    } finally {
      await aggregator.close();
    }
  });

  it('the Third-Party Messaging API: signed inbound messages and receipts; bad signatures store nothing', async () => {
    const aggregator = await startReceiver(() => ({
      status: 200,
      body: JSON.stringify({ messageId: 'tp-1' }),
    }));
    try {
      const s = await setup(h(), true);
      await provisionAsync(s, aggregator);
      const signed = (path: string, body: object, secret = 'api-secret', ccid = TENANT) => {
        const raw = JSON.stringify(body);
        return request(s.api.url)
          .post(path)
          .set('x-ccid', ccid)
          .set('Content-Type', 'application/json')
          .set('X-Hub-Signature', `sha1=${createHmac('sha1', secret).update(raw).digest('hex')}`)
          .send(raw);
      };
      const path = `/nexus/v3/channels/${encodeURIComponent(NUMBER)}`;
      const inbound = {
        messages: [{ id: 'tp-in-1', from: '+15551234567', text: 'Hi via gateway' }],
      };
      const before = await counts(h());
      // Refused alike: a wrong secret, another tenant, no signature; malformed but signed: 400.
      await signed(`${path}/messages`, inbound, 'wrong-secret').expect(401);
      await signed(`${path}/messages`, inbound, 'api-secret', 'chat-tenant').expect(401);
      await request(s.api.url)
        .post(`${path}/messages`)
        .set('x-ccid', TENANT)
        .send(inbound)
        .expect(401);
      const bad = await signed(`${path}/messages`, {
        messages: [{ id: 'x', from: 'nope', text: '' }],
      }).expect(400);
      expect(bad.body.status.code).toBe('NEXUS_ERR_VALIDATION');
      expect(await counts(h())).toEqual(before);

      const first = await signed(`${path}/messages`, inbound).expect(202);
      const [result] = first.body.data.results as { interactionId: string; duplicate: boolean }[];
      expect(result?.duplicate).toBe(false);
      const again = await signed(`${path}/messages`, inbound).expect(202);
      expect(again.body.data.results[0]).toMatchObject({ duplicate: true });
      const interactionId = result?.interactionId as string;
      await eventually(
        async () => (await eventsOf(h(), interactionId)).some(e => e.type === 'message.created'),
        10_000,
        'the gateway message numbered',
      );

      // Media upload: a signed multipart body; the answer references it as genesys://nexus/<id>.
      const image = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4]);
      const boundary = 'hub-test-boundary';
      const multipart = (type: string) =>
        Buffer.concat([
          Buffer.from(
            `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="receipt.png"\r\nContent-Type: ${type}\r\n\r\n`,
          ),
          image,
          Buffer.from(`\r\n--${boundary}--\r\n`),
        ]);
      const upload = (body: Buffer, secret = 'api-secret') =>
        request(s.api.url)
          .post(`${path}/media`)
          .set('x-ccid', TENANT)
          .set('Content-Type', `multipart/form-data; boundary=${boundary}`)
          .set('X-Hub-Signature', `sha1=${createHmac('sha1', secret).update(body).digest('hex')}`)
          .send(body);
      await upload(multipart('image/png'), 'wrong-secret').expect(401);
      const uploaded = await upload(multipart('image/png')).expect(200);
      const mediaId = uploaded.body.data.mediaId as string;
      expect(uploaded.body.data).toMatchObject({
        url: `genesys://nexus/${mediaId}`,
        filename: 'receipt.png',
        mimetype: 'image/png',
        length: image.length,
      });
      const stored = await h().db.oneFirst(sql.type(z.object({ content: z.instanceof(Buffer) }))`
        SELECT content FROM media WHERE id = ${mediaId}`);
      expect(stored.equals(image)).toBe(true);
      const refusedType = await upload(multipart('application/x-msdownload')).expect(400);
      expect(refusedType.body.status.field).toBe('body.file');

      const replied = (await s.reply(interactionId, 'Hello back').expect(201)).body.data
        .id as string;
      await eventually(
        async () => (await messageRow(h(), replied)).provider_message_id === 'tp-1',
        10_000,
        'sent through the gateway',
      );
      await signed(`${path}/receipts`, {
        receipts: [{ messageId: 'tp-1', status: 'delivered' }],
      }).expect(202);
      await eventually(
        async () => (await messageRow(h(), replied)).delivery_status === 'delivered',
        10_000,
        'delivered by the gateway receipt',
      );
    } finally {
      await aggregator.close();
    }
  });

  it('an aggregator refusing the message fails it and flags the conversation undelivered', async () => {
    const aggregator = await startReceiver(() => ({ status: 400, body: 'unknown recipient' }));
    try {
      const s = await setup(h(), true);
      await provisionAsync(s, aggregator);
      const mo = await s
        .mo({
          device_address: '+15551234567',
          inbound_address: NUMBER,
          message: 'Hi',
          message_id: 'mo-1',
        })
        .expect(202);
      const interactionId = mo.body.data.interactionId as string;
      const replied = await s.reply(interactionId, 'Привет').expect(201);
      const messageId = replied.body.data.id as string;
      expect(await messageRow(h(), messageId)).toMatchObject({ encoding: 'UCS-2', segments: 1 });
      await eventually(
        async () => (await messageRow(h(), messageId)).delivery_status === 'failed',
        10_000,
        'failed',
      );
      expect(aggregator.requests).toHaveLength(1);
      const events = await eventsOf(h(), interactionId);
      expect(events.find(e => e.type === 'message.status')?.payload).toMatchObject({
        messageId,
        status: 'failed',
      });
      expect(events.some(e => e.type === 'interaction.undelivered')).toBe(true);
    } finally {
      await aggregator.close();
    }
  });

  it('custom headers stored before the header rules (or past the API) that are reserved are not sent, whatever their case', async () => {
    let sent = 0;
    const aggregator = await startRawReceiver(() => JSON.stringify({ messageId: `agg-${++sent}` }));
    try {
      const s = await setup(h(), true);
      await provisionAsync(s, aggregator);
      // As a row stored before the API refused them would be.
      await h().db.query(sql.unsafe`
        UPDATE services SET data = data || ${sql.jsonb({
          'header:Transfer-Encoding': 'chunked',
          'header:content-type': 'text/plain',
          'header:X-Custom': 'kept',
        })}
        WHERE tenant_id = ${TENANT} AND name = 'Async'`);
      const mo = await s
        .mo({
          device_address: '+15551234567',
          inbound_address: NUMBER,
          message: 'Hi',
          message_id: 'mo-1',
        })
        .expect(202);
      const interactionId = mo.body.data.interactionId as string;
      const replied = await s.reply(interactionId, 'On its way').expect(201);
      const messageId = replied.body.data.id as string;
      await eventually(
        async () => (await messageRow(h(), messageId)).delivery_status === 'sent',
        10_000,
        'sent',
      );
      expect(aggregator.requests).toHaveLength(1);
      const [received] = aggregator.requests as [RawRequest];
      expect(headerValues(received, 'x-custom')).toEqual(['kept']);
      expect(headerValues(received, 'x-aggregator-account')).toEqual(['acme-17']);
      expect(headerValues(received, 'transfer-encoding')).toEqual([]);
      expect(headerValues(received, 'content-type')).toEqual(['application/json']);
      expect(JSON.parse(received.body)).toMatchObject({ messages: [{ id: messageId }] });
    } finally {
      await aggregator.close();
    }
  });
});

describe('SMS through a real Kannel (bearerbox + smsbox, fake SMSC)', () => {
  const h = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1' });

  it('an MO through Kannel reaches the agent; the reply goes out through Kannel and its delivery reports mark it delivered', async () => {
    const s = await setup(h(), true);
    const port = new URL(s.api.url).port;
    // An upstream behind Kannel's HTTP SMSC that rejects every message.
    const upstream = await startReceiver(() => ({
      status: 200,
      body: 'Rejected: unknown subscriber',
    }));
    const kannel = await startKannel({
      moUrl: `http://${TENANT}:${encodeURIComponent(s.key)}@127.0.0.1:${port}/nexus/v3/sms/message?via=kannel`,
      httpSmscUrl: `${upstream.url}/mt`,
    });
    try {
      await request(s.api.url)
        .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Main`)
        .set(s.admin)
        .send({ channelId: NUMBER, endpoint: 'SmsDesk', provider: 'Kannel' })
        .expect(200);
      await request(s.api.url)
        .put(`/nexus/v3/provisioning/services/${TENANT}/KannelSMS`)
        .set(s.admin)
        .send({
          url: kannel.sendsmsUrl,
          secret: { username: kannel.username, password: kannel.password },
        })
        .expect(201);

      // Inbound: the phone → the SMSC → Kannel → the hub.
      kannel.receive('+15551234567', NUMBER, 'Hello from the phone');
      const interactionId = (await eventually(
        async () =>
          h().db.maybeOneFirst(sql.type(z.object({ id: z.string() }))`
            SELECT id FROM interactions WHERE customer_address = '+15551234567'`),
        15_000,
        'the MO through Kannel',
      )) as string;
      await eventually(
        async () =>
          (await eventsOf(h(), interactionId)).some(
            e =>
              e.type === 'message.created' &&
              (e.payload.message as { text: string }).text === 'Hello from the phone',
          ),
        10_000,
        'the MO numbered',
      );

      // Outbound: the agent → the hub → Kannel → the SMSC, then the reports back.
      const replied = await s
        .reply(interactionId, 'Thanks! A €5 refund is on its way.')
        .expect(201);
      const messageId = replied.body.data.id as string;
      await eventually(
        () => kannel.outbound.some(line => line.includes('A €5 refund is on its way.')),
        15_000,
        'the MT at the SMSC',
      );
      expect(kannel.outbound.find(line => line.includes('refund'))).toMatch(
        new RegExp(`^\\${NUMBER} \\+15551234567 text `),
      );
      await eventually(
        async () => (await messageRow(h(), messageId)).delivery_status === 'delivered',
        15_000,
        'the delivery report',
      );
      expect(await messageRow(h(), messageId)).toMatchObject({
        provider: 'Kannel',
        provider_message_id: messageId,
      });
      const statuses = (await eventsOf(h(), interactionId))
        .filter(e => e.type === 'message.status')
        .map(e => e.payload.status);
      expect(statuses).toEqual(['sent', 'delivered']);

      // A report with a forged signature is refused and changes nothing.
      await request(s.api.url)
        .get('/nexus/v3/sms/receipt/kannel')
        .query({ ccid: TENANT, id: messageId, sig: '0'.repeat(32), type: 2 })
        .expect(401);
      expect((await messageRow(h(), messageId)).delivery_status).toBe('delivered');

      // A failure report through Kannel's HTTP SMSC: the upstream rejects, Kannel reports 16.
      await request(s.api.url)
        .put(`/nexus/v3/provisioning/services/${TENANT}/KannelSMS`)
        .set(s.admin)
        .send({
          url: kannel.sendsmsUrl,
          data: { smsc: 'web' },
          secret: { username: kannel.username, password: kannel.password },
        })
        .expect(200);
      const second = await s.reply(interactionId, 'Are you still there?').expect(201);
      const failedId = second.body.data.id as string;
      await eventually(
        async () => (await messageRow(h(), failedId)).delivery_status === 'failed',
        15_000,
        'the failure report',
      );
      expect(
        upstream.requests.map(r => new URL(r.path, 'http://x').searchParams.get('text')),
      ).toEqual(['Are you still there?']);
      const reason = await h().db.oneFirst(sql.type(z.object({ r: z.string().nullable() }))`
        SELECT delivery_reason AS r FROM messages WHERE id = ${failedId}`);
      expect(reason).toMatch(/rejected.*unknown subscriber/);
      const events = await eventsOf(h(), interactionId);
      expect(events.filter(e => e.type === 'message.status').map(e => e.payload.status)).toEqual([
        'sent',
        'delivered',
        'sent',
        'failed',
      ]);
      expect(events.at(-1)?.type).toBe('interaction.undelivered');
      // A failure the provider reports is coded as such, on the status and the flag.
      expect(events.at(-1)?.payload.code).toBe('NEXUS_ERR_SMS_REPORTED_FAILED');
      expect(events.findLast(e => e.type === 'message.status')?.payload.code).toBe(
        'NEXUS_ERR_SMS_REPORTED_FAILED',
      );
    } finally {
      await kannel.stop();
      await upstream.close();
    }
  });
});

describe('outbound SMS through Kaleyra/mGage DirectTEXT', () => {
  const h = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1' });

  it('sends with Basic auth and the form DirectTEXT expects; code 100 is sent, a receipt delivers; another code fails', async () => {
    let refuse = false;
    const directText = await startReceiver(() => ({
      status: 200,
      headers: { 'Content-Type': 'text/xml' },
      body: refuse
        ? '<httpApiResponse><code>201</code><description>invalid recipient</description></httpApiResponse>'
        : '<?xml version="1.0"?><httpApiResponse><code>100</code><description>OK</description><recipients><recipient><mobileNumber>15551234567</mobileNumber><messageId>dt-77</messageId></recipient></recipients></httpApiResponse>',
    }));
    try {
      const s = await setup(h(), true);
      await request(s.api.url)
        .put(`/nexus/v3/provisioning/services/${TENANT}/mGageSMS`)
        .set(s.admin)
        .send({ url: directText.url, secret: { username: 'acme', password: 'dt-password' } })
        .expect(201);
      const mo = await s
        .mo({
          device_address: '15551234567',
          inbound_address: NUMBER,
          message: 'Hi',
          message_id: 'mo-1',
        })
        .expect(202);
      const interactionId = mo.body.data.interactionId as string;
      const first = (await s.reply(interactionId, 'Hello from Acme').expect(201)).body.data
        .id as string;
      await eventually(
        async () => (await messageRow(h(), first)).delivery_status === 'sent',
        10_000,
        'sent',
      );
      const send = directText.requests[0] as (typeof directText.requests)[number];
      expect(send.path).toBe('/a2w_preRouter/httpApiRouter');
      expect(send.headers.authorization).toBe(
        `Basic ${Buffer.from('acme:dt-password').toString('base64')}`,
      );
      expect(Object.fromEntries(new URLSearchParams(send.body))).toEqual({
        reply_to: NUMBER,
        recipient: '15551234567',
        body: 'Hello from Acme',
      });
      expect(await messageRow(h(), first)).toMatchObject({
        provider: 'mGage',
        provider_message_id: 'dt-77',
      });
      await s.receipt({ messageId: 'dt-77', status: 'delivered' }).expect(202);
      await eventually(
        async () => (await messageRow(h(), first)).delivery_status === 'delivered',
        10_000,
        'delivered',
      );
      // What the agent's desktop sees: the statuses on the conversation's log.
      expect(
        (await eventsOf(h(), interactionId))
          .filter(e => e.type === 'message.status')
          .map(e => e.payload.status),
      ).toEqual(['sent', 'delivered']);

      refuse = true;
      const second = (await s.reply(interactionId, 'And again').expect(201)).body.data.id as string;
      await eventually(
        async () => (await messageRow(h(), second)).delivery_status === 'failed',
        10_000,
        'refused by DirectTEXT',
      );
    } finally {
      await directText.close();
    }
  });
});

describe('receipts for messages the hub does not know', () => {
  const h = useHarness(
    {},
    { jobOptions: { receipts: { attempts: 2, backoff: { type: 'fixed', delay: 100 } } } },
  );

  it('are retried (a receipt may overtake the send) and end as undelivered records', async () => {
    const s = await setup(h(), true);
    await s.receipt({ messageId: 'never-sent', status: 'delivered' }).expect(202);
    const undelivered = await eventually(
      async () =>
        (
          await request(s.api.url)
            .get('/nexus/v3/undelivered?queue=receipts')
            .set(s.admin)
            .expect(200)
        ).body.data.items[0] as { reason: string; attempts: number } | undefined,
      10_000,
      'the undelivered receipt',
    );
    expect(undelivered).toMatchObject({ attempts: 2 });
    expect(undelivered?.reason).toMatch(/no outbound SMS with aggregator id never-sent/);
    expect(undelivered).toMatchObject({ code: 'NEXUS_ERR_RECEIPT_NO_MESSAGE' });
  });
});

describe('outbound SMS through Genesys Cloud SMS aggregation (Portico)', () => {
  const h = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1' });

  it('gets a client-credentials token, sends through the agentless API, and is delivered by receipt', async () => {
    let tokens = 0;
    const genesysCloud = await startReceiver(request => {
      if (request.path === '/oauth/token') {
        const expected = `Basic ${Buffer.from('client-1:client-secret').toString('base64')}`;
        if (
          request.headers.authorization !== expected ||
          request.body !== 'grant_type=client_credentials'
        ) {
          return { status: 401, body: '{}' };
        }
        tokens++;
        return {
          status: 200,
          body: JSON.stringify({ access_token: `token-${tokens}`, expires_in: 86_400 }),
        };
      }
      if (request.headers.authorization !== 'Bearer token-1') return { status: 401, body: '{}' };
      return { status: 202, body: JSON.stringify({ id: `gc-${tokens}-${Date.now()}` }) };
    });
    try {
      const s = await setup(h(), true);
      for (const [name, body] of [
        ['PorticoSMS', { url: `${genesysCloud.url}/` }],
        [
          'PurecloudIDP',
          {
            url: genesysCloud.url,
            secret: { clientId: 'client-1', clientSecret: 'client-secret' },
          },
        ],
      ] as const) {
        await request(s.api.url)
          .put(`/nexus/v3/provisioning/services/${TENANT}/${name}`)
          .set(s.admin)
          .send(body)
          .expect(201);
      }
      await request(s.api.url)
        .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Main`)
        .set(s.admin)
        .send({ channelId: NUMBER, endpoint: 'SmsDesk', provider: 'Portico' })
        .expect(200);
      const mo = await s
        .mo({
          device_address: '+15551234567',
          inbound_address: NUMBER,
          message: 'Hi',
          message_id: 'mo-1',
        })
        .expect(202);
      const interactionId = mo.body.data.interactionId as string;
      const ids: string[] = [];
      for (const text of ['First', 'Second']) {
        ids.push((await s.reply(interactionId, text).expect(201)).body.data.id as string);
        await eventually(
          async () => (await messageRow(h(), ids.at(-1) as string)).delivery_status === 'sent',
          10_000,
          `${text} sent`,
        );
      }
      // One token for both sends.
      expect(genesysCloud.requests.filter(r => r.path === '/oauth/token')).toHaveLength(1);
      const sends = genesysCloud.requests.filter(r => r.path.endsWith('/agentless'));
      expect(sends.map(r => JSON.parse(r.body) as unknown)).toEqual([
        {
          fromAddress: NUMBER,
          toAddress: '+15551234567',
          toAddressMessengerType: 'sms',
          textBody: 'First',
        },
        {
          fromAddress: NUMBER,
          toAddress: '+15551234567',
          toAddressMessengerType: 'sms',
          textBody: 'Second',
        },
      ]);
      const first = await messageRow(h(), ids[0] as string);
      expect(first.provider).toBe('Portico');
      await s
        .receipt({ messageId: first.provider_message_id as string, status: 'delivered' })
        .expect(202);
      await eventually(
        async () => (await messageRow(h(), ids[0] as string)).delivery_status === 'delivered',
        10_000,
        'delivered',
      );
      expect(
        (await eventsOf(h(), interactionId))
          .filter(e => e.type === 'message.status' && e.payload.messageId === ids[0])
          .map(e => e.payload.status),
      ).toEqual(['sent', 'delivered']);
    } finally {
      await genesysCloud.close();
    }
  });
});

describe('inbound SMS: refusals are logged without secrets', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const h = useHarness({}, { log: createLogger('debug', sink) });

  it('bad Basic credentials, bad signatures and unknown numbers leave no key, password or secret in the logs', async () => {
    const s = await setup(h());
    await request(s.api.url)
      .put(`/nexus/v3/provisioning/services/${TENANT}/Async`)
      .set(s.admin)
      .send({
        url: 'N/A',
        data: {
          channels: [{ channelId: NUMBER, webhook: { url: 'https://gateway.example/hook' } }],
        },
        secret: {
          channels: [
            {
              channelId: NUMBER,
              webhook: { secret: 'webhook-secret-XYZ' },
              api: { secret: 'api-secret-XYZ' },
            },
          ],
        },
      })
      .expect(201);
    const good = { device_address: '+15551234567', inbound_address: NUMBER, message: 'Hi' };
    await s.mo(good, [TENANT, 'wrong-password-XYZ']).expect(401);
    await s.mo({ ...good, inbound_address: '+18009999999' }).expect(404);
    const raw = JSON.stringify({ messages: [{ id: 'a', from: '+15551234567', text: 'x' }] });
    await request(s.api.url)
      .post(`/nexus/v3/channels/${encodeURIComponent(NUMBER)}/messages`)
      .set('x-ccid', TENANT)
      .set('Content-Type', 'application/json')
      .set(
        'X-Hub-Signature',
        `sha1=${createHmac('sha1', 'not-the-secret').update(raw).digest('hex')}`,
      )
      .send(raw)
      .expect(401);
    const logs = lines.join('');
    expect(logs).toMatch(/refused/);
    for (const secret of [s.key, 'wrong-password-XYZ', 'api-secret-XYZ', 'webhook-secret-XYZ']) {
      expect(logs.includes(secret), secret).toBe(false);
    }
    expect(logs).not.toMatch(/Basic [A-Za-z0-9+/=]{8,}/);
  });
});
