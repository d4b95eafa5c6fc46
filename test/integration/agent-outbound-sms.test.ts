import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EVENT_DATA } from '../../domain/event-catalogue.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { createOutboundSmsProcessor } from '../../workers/processors/outbound-sms.js';
import { createReceiptProcessor } from '../../workers/processors/receipts.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';

const TENANT = 'sms-tenant';
const NUMBER = '+18005550100';
const CUSTOMER = '+15551234567';

/**
 * A tenant with one SMS number (`chat.SMS_Main`, sent through the `Async` provider to the local
 * `aggregator`), a campaign number, the number's endpoint served by a queue, an agent, and the
 * real inbound, outbound-sms and receipts workers (as test/integration/sms.test.ts sets them up).
 */
async function setup(h: Harness, aggregator: Receiver) {
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
    .put(`/nexus/v3/provisioning/services/${TENANT}/Async`)
    .set(admin)
    .send({
      url: 'N/A',
      data: { channels: [{ channelId: NUMBER, webhook: { url: `${aggregator.url}/outbound` } }] },
      secret: {
        channels: [
          { channelId: NUMBER, webhook: { secret: 'webhook-secret' }, api: { secret: 'api' } },
        ],
      },
    })
    .expect(201);
  await request(api.url)
    .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Main`)
    .set(admin)
    .send({ channelId: NUMBER, endpoint: 'SmsDesk', provider: 'Async' })
    .expect(201);
  // A campaign number is no sender for conversations: the tenant still has one SMS sender.
  await request(api.url)
    .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Campaigns`)
    .set(admin)
    .send({ channelId: '12345', endpoint: 'SmsDesk', provider: 'Async', cxcOnly: true })
    .expect(201);
  const agent = (
    await request(api.url)
      .post('/nexus/v3/agents')
      .set({ ...admin, 'x-ccid': TENANT })
      .send({ username: 'sam', name: 'Sam' })
      .expect(201)
  ).body.data.id as string;
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
  const token = (
    await request(api.url)
      .post(`/nexus/v3/agents/${agent}/tokens`)
      .set({ ...admin, 'x-ccid': TENANT })
      .expect(201)
  ).body.data.token as string;
  await h.startWorkers({
    processors: {
      inbound: createInboundProcessor({
        db: h.db,
        publisher: h.publisher,
        queues: h.queues,
        log: h.log,
      }),
      'outbound-sms': createOutboundSmsProcessor({
        db: h.db,
        log: h.log,
        bus: h.bus,
        config: h.config,
        publisher: h.publisher,
        redis: h.redis,
      }),
      receipts: createReceiptProcessor({ db: h.db, publisher: h.publisher }),
    },
    select: ['inbound', 'outbound-sms', 'receipts', 'maintenance'],
  });
  const asAgent = { Authorization: `Bearer ${token}` };
  const start = (body: Record<string, unknown>, auth: Record<string, string> = asAgent) =>
    request(api.url).post('/nexus/v3/agent/outbound/sms').set(auth).send(body);
  const consent = (query: Record<string, string>) =>
    request(api.url).get('/nexus/v3/agent/consent/sms').set(asAgent).query(query);
  const mo = (from: string, message: string, id: string) =>
    request(api.url)
      .post('/nexus/v3/sms/message')
      .auth(TENANT, key)
      .type('form')
      .send({ device_address: from, inbound_address: NUMBER, message, message_id: id })
      .expect(202);
  return { api, admin, agent, asAgent, key, start, consent, mo };
}

const eventsOf = (h: Harness, interactionId: string) =>
  h.db.any(sql.type(
    z.object({ type: z.string(), seq: z.number(), payload: z.record(z.unknown()) }),
  )`
    SELECT type, seq, payload FROM events WHERE interaction_id = ${interactionId} ORDER BY seq`);

const deliveryOf = (h: Harness, messageId: string) =>
  h.db.oneFirst(sql.type(z.object({ delivery_status: z.string().nullable() }))`
    SELECT delivery_status FROM messages WHERE id = ${messageId}`);

/** Rows a start stores, across the tables it writes. */
const counts = (h: Harness) =>
  h.db.one(sql.type(
    z.object({
      interactions: z.number(),
      contacts: z.number(),
      identifiers: z.number(),
      messages: z.number(),
      events: z.number(),
      work: z.number(),
      agents: z.number(),
    }),
  )`
    SELECT (SELECT count(*) FROM interactions)::int AS interactions,
           (SELECT count(*) FROM contacts)::int AS contacts,
           (SELECT count(*) FROM contact_identifiers)::int AS identifiers,
           (SELECT count(*) FROM messages)::int AS messages,
           (SELECT count(*) FROM events)::int AS events,
           (SELECT count(*) FROM work)::int AS work,
           (SELECT count(*) FROM interaction_agents)::int AS agents`);

/** The aggregator takes every text and answers its id `agg-<n>`. */
const startAggregator = () => {
  let sent = 0;
  return startReceiver(() => ({
    status: 200,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messageId: `agg-${++sent}` }),
  }));
};

describe('an agent starts an outbound SMS conversation', () => {
  const h = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1' });

  it('texts the number through the provider, the reply threads into the conversation, and a retry stores nothing', async () => {
    const aggregator = await startAggregator();
    try {
      const s = await setup(h(), aggregator);
      const started = await s
        .start({ to: '+1 (555) 123-4567', text: 'Your order is ready.', clientMessageId: 'c-1' })
        .expect(201);
      const { interactionId, messageId } = started.body.data as {
        interactionId: string;
        messageId: string;
      };
      expect(started.body.data.duplicate).toBe(false);

      // The provider gets the text, from the tenant's only SMS number, to the normalised number.
      await eventually(() => aggregator.requests.length === 1, 10_000, 'the send');
      expect(JSON.parse((aggregator.requests[0] as { body: string }).body)).toEqual({
        messages: [
          {
            id: messageId,
            channelId: NUMBER,
            type: 'Text',
            from: NUMBER,
            to: CUSTOMER,
            text: 'Your order is ready.',
          },
        ],
      });
      await eventually(async () => (await deliveryOf(h(), messageId)) === 'sent', 10_000, 'sent');

      // An SMS interaction like an inbound one, started, the agent joined and assigned.
      const row = await h().db.one(sql.type(
        z.object({
          media: z.string(),
          subtype: z.string(),
          endpoint: z.string().nullable(),
          channel: z.string().nullable(),
          customer_address: z.string().nullable(),
          routing_state: z.string().nullable(),
          assigned_agent_id: z.string().nullable(),
          queue_name: z.string().nullable(),
          contact_id: z.string().nullable(),
        }),
      )`SELECT media, subtype, endpoint, channel, customer_address, routing_state,
               assigned_agent_id, queue_name, contact_id
        FROM interactions WHERE id = ${interactionId}`);
      expect(row).toMatchObject({
        media: 'chat',
        subtype: 'SMS',
        endpoint: 'SmsDesk',
        channel: 'chat.SMS_Main',
        customer_address: CUSTOMER,
        routing_state: 'assigned',
        assigned_agent_id: s.agent,
        queue_name: 'Sms',
      });
      const phones = await h().db.any(
        sql.type(
          z.object({ value: z.string(), contact_id: z.string() }),
        )`SELECT value, contact_id FROM contact_identifiers WHERE kind = 'phone'`,
      );
      expect(phones).toEqual([{ value: CUSTOMER, contact_id: row.contact_id }]);

      const events = await eventsOf(h(), interactionId);
      for (const event of events) {
        expect(
          EVENT_DATA[event.type as keyof typeof EVENT_DATA].safeParse(event.payload).success,
          event.type,
        ).toBe(true);
      }
      expect(events.map(e => e.type)).toEqual([
        'interaction.started',
        'participant.joined',
        'participant.joined',
        'interaction.assigned',
        'message.created',
        'message.status',
      ]);
      expect(events[0]?.payload).toEqual({
        interaction: {
          id: interactionId,
          mediaType: 'chat',
          interactionSubtype: 'SMS',
          endpoint: 'SmsDesk',
          contactId: row.contact_id,
          returningContact: false,
        },
      });
      expect(events[2]?.payload).toEqual({
        participant: { id: s.agent, type: 'agent', nickname: 'Sam' },
      });
      expect(events[4]?.payload).toMatchObject({
        message: { id: messageId, text: 'Your order is ready.', clientMessageId: 'c-1' },
        from: { id: s.agent, type: 'agent' },
      });

      // The agent's conversations list it as joined.
      const mine = await request(s.api.url)
        .get('/nexus/v3/agent/interactions')
        .set(s.asAgent)
        .expect(200);
      expect(mine.body.data.items).toEqual([
        expect.objectContaining({ id: interactionId, joined: true }),
      ]);

      // A receipt moves the status forward, as for any agent reply.
      await request(s.api.url)
        .post('/nexus/v3/sms/receipt')
        .auth(TENANT, s.key)
        .send({ messageId: 'agg-1', status: 'delivered' })
        .expect(202);
      await eventually(
        async () => (await deliveryOf(h(), messageId)) === 'delivered',
        10_000,
        'delivered',
      );

      // The customer answers (the number written another way): into the same conversation,
      // still the agent's.
      const answer = await s.mo('15551234567', 'Thanks, coming at 5.', 'mo-1');
      expect(answer.body.data.interactionId).toBe(interactionId);
      await eventually(
        async () =>
          (await eventsOf(h(), interactionId)).some(
            e =>
              e.type === 'message.created' &&
              (e.payload.from as { type: string }).type === 'customer',
          ),
        10_000,
        'the reply numbered',
      );
      const after = await eventsOf(h(), interactionId);
      expect(after.filter(e => e.type === 'interaction.started')).toHaveLength(1);
      expect(after.filter(e => e.type === 'interaction.queued')).toEqual([]);
      expect(after.at(-1)).toMatchObject({
        type: 'message.created',
        payload: { message: { text: 'Thanks, coming at 5.' }, from: { id: CUSTOMER } },
      });
      const routing = await h().db.one(
        sql.type(
          z.object({
            routing_state: z.string().nullable(),
            assigned_agent_id: z.string().nullable(),
          }),
        )`SELECT routing_state, assigned_agent_id FROM interactions WHERE id = ${interactionId}`,
      );
      expect(routing).toEqual({ routing_state: 'assigned', assigned_agent_id: s.agent });

      // A retry with the same client message id: the same ids, nothing stored, nothing sent.
      const before = await counts(h());
      const retry = await s
        .start({ to: CUSTOMER, text: 'Your order is ready.', clientMessageId: 'c-1' })
        .expect(201);
      expect(retry.body.data).toEqual({ interactionId, messageId, duplicate: true });
      expect(await counts(h())).toEqual(before);

      // Even once the conversation is Done; a start without the id then opens a new one.
      await request(s.api.url)
        .post(`/nexus/v3/agent/interactions/${interactionId}/done`)
        .set(s.asAgent)
        .expect(200);
      const late = await s
        .start({ to: CUSTOMER, text: 'Your order is ready.', clientMessageId: 'c-1' })
        .expect(201);
      expect(late.body.data).toEqual({ interactionId, messageId, duplicate: true });
      const next = await s.start({ to: CUSTOMER, text: 'One more thing.' }).expect(201);
      expect(next.body.data.interactionId).not.toBe(interactionId);
      const nextStarted = (await eventsOf(h(), next.body.data.interactionId as string))[0];
      expect(nextStarted?.payload).toMatchObject({
        interaction: { contactId: row.contact_id, returningContact: true },
      });
      await eventually(() => aggregator.requests.length === 2, 10_000, 'the second send');
      expect(
        aggregator.requests.map(
          r => (JSON.parse(r.body) as { messages: { text: string }[] }).messages[0]?.text,
        ),
      ).toEqual(['Your order is ready.', 'One more thing.']);
    } finally {
      await aggregator.close();
    }
  });

  it('refuses an opted-out number up front with the reason, and stores nothing', async () => {
    const aggregator = await startAggregator();
    try {
      const s = await setup(h(), aggregator);
      // Before: the number may be texted.
      const open = await s.consent({ address: '+1 555 123 4567' }).expect(200);
      expect(open.body.data).toEqual({
        address: CUSTOMER,
        sender: NUMBER,
        optedOut: false,
        reason: null,
        updated: null,
      });

      // The customer texts STOP (which opens its own conversation, as any text does).
      const stop = await s.mo(CUSTOMER, 'Stop', 'mo-1');
      await eventually(
        async () =>
          (await eventsOf(h(), stop.body.data.interactionId as string)).some(
            e => e.type === 'message.created',
          ),
        10_000,
        'the STOP numbered',
      );
      const closed = await s.consent({ address: CUSTOMER, from: '18005550100' }).expect(200);
      expect(closed.body.data).toMatchObject({ address: CUSTOMER, sender: NUMBER, optedOut: true });
      expect(closed.body.data.reason).toMatch(/^replied Stop on \d{4}-\d\d-\d\dT/);
      expect(closed.body.data.updated).toEqual(expect.any(String));

      const before = await counts(h());
      const refused = await s
        .start({ to: '15551234567', text: 'A special offer', clientMessageId: 'c-9' })
        .expect(409);
      expect(refused.body.status).toEqual({
        code: 'NEXUS_ERR_SMS_OPTED_OUT',
        message: `${CUSTOMER} opted out of texts from ${NUMBER}: ${closed.body.data.reason}`,
        field: 'body.to',
      });
      expect(await counts(h())).toEqual(before);
      // Nothing reaches the provider (the STOP itself is not answered).
      await new Promise(resolve => setTimeout(resolve, 300));
      expect(aggregator.requests).toEqual([]);

      // START: the agent may text the number again.
      await s.mo(CUSTOMER, 'START', 'mo-2');
      expect((await s.consent({ address: CUSTOMER }).expect(200)).body.data).toMatchObject({
        optedOut: false,
        reason: null,
      });
      const allowed = await s
        .start({ to: CUSTOMER, text: 'A special offer', clientMessageId: 'c-9' })
        .expect(201);
      // The customer's open conversation on the number takes it (one per number and channel).
      expect(allowed.body.data.interactionId).toBe(stop.body.data.interactionId);
      await eventually(() => aggregator.requests.length === 1, 10_000, 'the send after START');
    } finally {
      await aggregator.close();
    }
  });

  it('names the field of a bad number, sender or text, and keeps to the tenant’s own senders', async () => {
    const aggregator = await startAggregator();
    try {
      const s = await setup(h(), aggregator);
      // Another tenant, with its own number and agent.
      await request(s.api.url)
        .post('/nexus/v3/provisioning/tenants')
        .set(s.admin)
        .send({ id: 'other-tenant', name: 'other' })
        .expect(201);
      await request(s.api.url)
        .put('/nexus/v3/provisioning/channels/other-tenant/chat.Other')
        .set(s.admin)
        .send({ channelId: '+18005550199', endpoint: 'Desk', provider: 'Async' })
        .expect(201);
      const before = await counts(h());

      const refusals: [Record<string, unknown>, string, string, RegExp][] = [
        [{ to: '07700900123', text: 'x' }, 'NEXUS_ERR_VALIDATION', 'body.to', /international/],
        [{ to: 'nobody', text: 'x' }, 'NEXUS_ERR_VALIDATION', 'body.to', /phone number/],
        [{ text: 'x' }, 'NEXUS_ERR_VALIDATION', 'body.to', /./],
        [{ to: CUSTOMER, text: '' }, 'NEXUS_ERR_VALIDATION', 'body.text', /empty/],
        [{ to: CUSTOMER, text: '   ' }, 'NEXUS_ERR_VALIDATION', 'body.text', /empty/],
        [
          { to: CUSTOMER, text: 'x', from: '+18009999999' },
          'NEXUS_ERR_VALIDATION',
          'body.from',
          /no SMS channel of the tenant has channelId \+18009999999/,
        ],
        // Another tenant's number reads like any unknown one.
        [
          { to: CUSTOMER, text: 'x', from: '+18005550199' },
          'NEXUS_ERR_VALIDATION',
          'body.from',
          /no SMS channel of the tenant has channelId \+18005550199/,
        ],
        [
          { to: CUSTOMER, text: 'x', from: '12345' },
          'NEXUS_ERR_VALIDATION',
          'body.from',
          /campaign number/,
        ],
        [
          { to: CUSTOMER, text: 'я'.repeat(67 * 10 + 1) },
          'NEXUS_ERR_SMS_TOO_LONG',
          'body.text',
          /11 SMS segments/,
        ],
        [
          { to: CUSTOMER, text: 'x', sender: NUMBER },
          'NEXUS_ERR_VALIDATION',
          'body.sender',
          /sender/,
        ],
      ];
      for (const [body, code, field, message] of refusals) {
        const res = await s.start(body).expect(400);
        expect(res.body.status, JSON.stringify(body)).toMatchObject({ code, field });
        expect(res.body.status.message).toMatch(message);
        expect(JSON.stringify(res.body)).not.toMatch(/other-tenant|chat\.Other/);
      }
      const bad = await s.consent({ address: 'nobody' }).expect(400);
      expect(bad.body.status).toMatchObject({
        code: 'NEXUS_ERR_VALIDATION',
        field: 'query.address',
      });
      const elsewhere = await s.consent({ address: CUSTOMER, from: '+18005550199' }).expect(400);
      expect(elsewhere.body.status.field).toBe('query.from');
      // Only an agent starts a conversation.
      const operator = await s
        .start({ to: CUSTOMER, text: 'x' }, { Authorization: `Bearer ${h().config.adminToken}` })
        .expect(403);
      expect(operator.body.status.code).toBe('NEXUS_ERR_AGENT_REQUIRED');
      expect(await counts(h())).toEqual(before);

      // A second SMS number: the agent must say which one sends.
      await request(s.api.url)
        .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Sales`)
        .set(s.admin)
        .send({ channelId: '+18005550111', endpoint: 'SmsDesk', provider: 'Async' })
        .expect(201);
      const ambiguous = await s.start({ to: CUSTOMER, text: 'x' }).expect(400);
      expect(ambiguous.body.status).toMatchObject({
        code: 'NEXUS_ERR_VALIDATION',
        field: 'body.from',
      });
      expect(ambiguous.body.status.message).toMatch(/2 SMS numbers .*\+18005550100.*\+18005550111/);
      expect((await s.consent({ address: CUSTOMER }).expect(400)).body.status.field).toBe(
        'query.from',
      );
      expect(await counts(h())).toEqual(before);
      const chosen = await s
        .start({ to: CUSTOMER, text: 'From sales', from: '1 800 555 0111' })
        .expect(201);
      const channel = await h().db.oneFirst(sql.type(z.object({ channel: z.string() }))`
        SELECT channel FROM interactions WHERE id = ${chosen.body.data.interactionId as string}`);
      expect(channel).toBe('chat.SMS_Sales');

      // A tenant without SMS numbers has no sender to default to.
      const otherAgent = (
        await request(s.api.url)
          .post('/nexus/v3/agents')
          .set({ ...s.admin, 'x-ccid': 'other-tenant' })
          .send({ username: 'olga', name: 'Olga' })
          .expect(201)
      ).body.data.id as string;
      const otherToken = (
        await request(s.api.url)
          .post(`/nexus/v3/agents/${otherAgent}/tokens`)
          .set({ ...s.admin, 'x-ccid': 'other-tenant' })
          .expect(201)
      ).body.data.token as string;
      await request(s.api.url)
        .delete('/nexus/v3/provisioning/channels/other-tenant/chat.Other')
        .set(s.admin)
        .expect(200);
      const none = await s
        .start({ to: CUSTOMER, text: 'x' }, { Authorization: `Bearer ${otherToken}` })
        .expect(400);
      expect(none.body.status).toMatchObject({
        field: 'body.from',
        message: 'body.from: the tenant has no SMS channel to send from',
      });
    } finally {
      await aggregator.close();
    }
  });
});
