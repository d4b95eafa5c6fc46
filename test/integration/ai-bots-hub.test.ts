import { createHmac } from 'node:crypto';
import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EVENT_DATA } from '../../domain/event-catalogue.js';
import { aiHandoffsTotal } from '../../lib/metrics.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { createOutboundSmsProcessor } from '../../workers/processors/outbound-sms.js';
import { connect, provisionChatTenant, startCustomerChat, type Received } from '../helpers/chat.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';

/**
 * The hub's side of bots (docs/ai-connector.md "Bots"): a botFirst queue gives new conversations
 * to the AI connector's bot, which answers through the hub with its cluster key and hands the
 * conversation to the queue's agents; the queue's deadline hands it off by itself. The connector
 * is played by the test (its calls to the hub) and by a webhook receiver (its registered target).
 */

const TENANT = 'bots-tenant';
const NUMBER = '+18005550100';
const ASYNC_SECRET = 'aggregator-webhook-secret';

const eventsOf = (h: Harness, interactionId: string) =>
  h.db.any(
    sql.type(
      z.object({ type: z.string(), seq: z.number(), payload: z.record(z.unknown()) }),
    )`SELECT type, seq, payload FROM events WHERE interaction_id = ${interactionId} ORDER BY seq`,
  );

const botMessages = (h: Harness) =>
  h.db.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM messages WHERE sender_type = 'bot'`);

const handoffs = async (reason: string) =>
  (await aiHandoffsTotal.get()).values.find(value => value.labels.reason === reason)?.value ?? 0;

/** Every stored event matches its catalogue schema. */
async function expectCatalogued(h: Harness, interactionId: string) {
  for (const event of await eventsOf(h, interactionId)) {
    const parsed = EVENT_DATA[event.type as keyof typeof EVENT_DATA].safeParse(event.payload);
    expect(parsed.success, `${event.type}: ${JSON.stringify(parsed.error?.issues[0])}`).toBe(true);
  }
}

interface Setup {
  api: { url: string };
  admin: Record<string, string>;
  cluster: string;
  tenantKey: string;
  agent: { id: string; token: string };
  chatKey: string;
}

/**
 * A tenant with a botFirst queue `Front` (its bot "Ava") behind the chat endpoint, a ready agent
 * who serves it, a cluster key for the connector and a tenant key; with `connector`, the
 * connector's target is registered (`WebhookTransportTarget-ai-connector`).
 */
async function setup(
  h: Harness,
  options: { connector?: Receiver; botHandoffAfterMs?: number; endpoints?: string[] },
): Promise<Setup> {
  const api = await h.serve();
  const t = await provisionChatTenant(h, api.app, TENANT, { queue: false });
  const admin = { Authorization: `Bearer ${h.config.adminToken}` };
  const key = async (tenant: string, permissions: string[]) =>
    (
      await request(api.url)
        .post('/nexus/v3/apikeys')
        .set(admin)
        .send({ tenant, name: permissions.join(' '), permissions })
        .expect(201)
    ).body.key as string;
  if (options.connector) {
    await request(api.url)
      .post(`/nexus/v3/provisioning/services/${TENANT}/WebhookTransportTarget-ai-connector`)
      .set(admin)
      .send({ url: `${options.connector.url}/nexus/v3/agent-assist-chat/messages` })
      .expect(201);
  }
  const queue = await request(api.url)
    .put(`/nexus/v3/provisioning/queues/${TENANT}/Front`)
    .set(admin)
    .send({
      endpoints: options.endpoints ?? ['GlobalChatSwitchboard'],
      agents: [t.agent.id],
      botFirst: true,
      botName: 'Ava',
      ...(options.botHandoffAfterMs ? { botHandoffAfterMs: options.botHandoffAfterMs } : {}),
    })
    .expect(201);
  expect(queue.body.data).toMatchObject({
    botFirst: true,
    botName: 'Ava',
    botHandoffAfterMs: options.botHandoffAfterMs ?? 300_000,
  });
  await request(api.url)
    .post('/nexus/v3/agent/presence')
    .set('Authorization', `Bearer ${t.agent.token}`)
    .send({ ready: true, capacity: 3 })
    .expect(200);
  return {
    api,
    admin,
    cluster: await key('*', ['nexus:cluster:*']),
    tenantKey: await key(TENANT, ['nexus:provisioning:*']),
    agent: t.agent,
    chatKey: t.chatKey,
  };
}

const startRouting = (h: Harness) =>
  h.startWorkers({
    processors: {
      inbound: createInboundProcessor({
        db: h.db,
        publisher: h.publisher,
        queues: h.queues,
        log: h.log,
      }),
    },
    select: ['inbound', 'maintenance'],
  });

describe('bots: the hub side', () => {
  const h = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1' });

  const state = (s: Setup, id: string, key = s.cluster) =>
    request(s.api.url).get(`/nexus/v3/ai/${TENANT}/interactions/${id}`).set('x-api-key', key);
  const post = (s: Setup, id: string, what: 'messages' | 'handoff', body: object, key?: string) =>
    request(s.api.url)
      .post(`/nexus/v3/ai/${TENANT}/interactions/${id}/bot/${what}`)
      .set('x-api-key', key ?? s.cluster)
      .send(body);

  it('a botFirst chat is the bot’s: its turns reach the customer in order, once; the handoff offers it to an agent, who reads them', async () => {
    const connector = await startReceiver();
    try {
      const s = await setup(h(), { connector });
      await startRouting(h());
      const agentSocket = connect(s.api.url, '/agent', { token: s.agent.token });
      await agentSocket.connected;
      const chat = await startCustomerChat(s.api.url, s.chatKey, 'Dana');
      const held = await eventually(
        async () => {
          const res = await state(s, chat.interactionId);
          return res.body.data?.state === 'bot' && res.body.data;
        },
        10_000,
        'the chat given to the bot',
      );
      expect(held).toMatchObject({
        id: chat.interactionId,
        state: 'bot',
        queue: 'Front',
        endpoint: 'GlobalChatSwitchboard',
        media: 'chat',
        bot: { since: expect.any(String), handoffAt: expect.any(String) },
      });
      expect(Date.parse(held.bot.handoffAt) - Date.parse(held.bot.since)).toBe(300_000);
      const started = await eventsOf(h(), chat.interactionId);
      expect(started.map(e => e.type)).toEqual([
        'interaction.started',
        'participant.joined',
        'interaction.bot',
        'participant.joined',
      ]);
      expect(started[2]?.payload).toEqual({ queue: 'Front', handoffAt: held.bot.handoffAt });
      expect(started[3]?.payload).toEqual({
        participant: { id: 'bot', type: 'bot', nickname: 'Ava' },
      });

      // The customer writes; the connector answers with three texts.
      const customer = connect(s.api.url, '/chat', { token: chat.token });
      await customer.connected;
      const sent = await request(s.api.url)
        .post(`/nexus/v3/chat/sessions/${chat.sessionId}/messages`)
        .set('x-nexus-client-key', chat.token)
        .send({ data: { text: 'Where is my parcel?' } })
        .expect(202);
      const replyTo = sent.body.data.id as string;
      await eventually(
        async () => (await eventsOf(h(), chat.interactionId)).length === 5,
        10_000,
        'the customer message numbered',
      );
      const turn = {
        replyTo,
        connector: 'ai-connector',
        texts: ['Hello Dana!', 'Your parcel left the depot.', 'Anything else?'],
      };
      const answered = await post(s, chat.interactionId, 'messages', turn).expect(200);
      const messageIds = answered.body.data.messageIds as string[];
      expect(answered.body.status).toEqual({ code: 0 });
      expect(messageIds).toHaveLength(3);
      const botSaid = (received: Received[]) =>
        received.filter(
          e => e.name === 'message' && (e.data?.from as { type?: string }).type === 'bot',
        );
      await eventually(() => botSaid(customer.received).length === 3, 10_000, 'the bot’s turns');
      const said = botSaid(customer.received);
      expect(said.map(e => (e.data?.message as { text: string }).text)).toEqual(turn.texts);
      expect(said.map(e => (e.data?.message as { id: string }).id)).toEqual(messageIds);
      expect(said.map(e => e.data?.from)).toEqual([
        { type: 'bot', nickname: 'Ava' },
        { type: 'bot', nickname: 'Ava' },
        { type: 'bot', nickname: 'Ava' },
      ]);
      expect(said.map(e => e.seq)).toEqual([6, 7, 8]);

      // A repeat (the connector retried) answers the same ids and stores nothing.
      const repeat = await post(s, chat.interactionId, 'messages', turn).expect(200);
      expect(repeat.body.data.messageIds).toEqual(messageIds);
      expect(await botMessages(h())).toBe(3);
      expect(await eventsOf(h(), chat.interactionId)).toHaveLength(8);
      // No agent was offered the chat meanwhile.
      expect(agentSocket.received.filter(e => e.name === 'offer')).toEqual([]);

      // The bot hands off: the chat is offered to the agent, who accepts and reads the bot's turns.
      const before = await handoffs('keyword');
      const handed = await post(s, chat.interactionId, 'handoff', {
        reason: 'keyword',
        detail: 'the customer asked for a person',
      }).expect(200);
      expect(handed.body.data).toEqual({ handedOff: true });
      expect(await handoffs('keyword')).toBe(before + 1);
      const after = (await eventsOf(h(), chat.interactionId)).slice(8, 10);
      expect(after).toEqual([
        {
          type: 'participant.left',
          seq: 9,
          payload: { participant: { id: 'bot', type: 'bot', nickname: 'Ava' } },
        },
        {
          type: 'interaction.handoff',
          seq: 10,
          payload: { reason: 'keyword', detail: 'the customer asked for a person' },
        },
      ]);
      await eventually(
        () => agentSocket.received.some(e => e.name === 'offer'),
        10_000,
        'the offer to the agent',
      );
      await request(s.api.url)
        .post(`/nexus/v3/agent/interactions/${chat.interactionId}/accept`)
        .set('Authorization', `Bearer ${s.agent.token}`)
        .expect(200);
      const transcript = await request(s.api.url)
        .get(`/nexus/v3/agent/interactions/${chat.interactionId}`)
        .set('Authorization', `Bearer ${s.agent.token}`)
        .expect(200);
      const botTurns = (transcript.body.data.events as Received[]).filter(
        e => e.type === 'message.created' && (e.data?.from as { type: string }).type === 'bot',
      );
      expect(botTurns.map(e => (e.data?.message as { text: string }).text)).toEqual(turn.texts);
      expect((await state(s, chat.interactionId).expect(200)).body.data).toMatchObject({
        state: 'assigned',
        bot: null,
      });

      // Athena may call twice: nothing changes. A turn after the handoff is refused.
      const again = await post(s, chat.interactionId, 'handoff', { reason: 'intent' }).expect(200);
      expect(again.body.data).toEqual({ handedOff: false, state: 'assigned' });
      const late = await post(s, chat.interactionId, 'messages', {
        ...turn,
        connector: 'another-connector',
      }).expect(409);
      expect(late.body.status.code).toBe('NEXUS_ERR_BOT_NOT_ENGAGED');
      expect(await botMessages(h())).toBe(3);
      expect(
        (await eventsOf(h(), chat.interactionId)).filter(e => e.type === 'interaction.handoff'),
      ).toHaveLength(1);
      await expectCatalogued(h(), chat.interactionId);
      // The connector's target received the conversation's events (the hub's webhook transport
      // is not running here: its deliveries wait in the log).
      const deliveries = await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM webhook_deliveries WHERE target = 'WebhookTransportTarget-ai-connector'`);
      expect(deliveries).toBeGreaterThan(0);
    } finally {
      await connector.close();
    }
  });

  it('the deadline hands the conversation to an agent by itself', async () => {
    const connector = await startReceiver();
    try {
      const s = await setup(h(), { connector, botHandoffAfterMs: 1_000 });
      await startRouting(h());
      const before = await handoffs('deadline');
      const chat = await startCustomerChat(s.api.url, s.chatKey, 'Eli');
      await eventually(
        async () => (await state(s, chat.interactionId)).body.data?.state === 'bot',
        10_000,
        'the chat given to the bot',
      );
      await eventually(
        async () => (await state(s, chat.interactionId)).body.data?.state === 'offered',
        10_000,
        'the deadline’s handoff and the offer',
      );
      const events = await eventsOf(h(), chat.interactionId);
      const bot = events.find(e => e.type === 'interaction.bot');
      const handoff = events.find(e => e.type === 'interaction.handoff');
      expect(handoff?.payload).toEqual({ reason: 'deadline', detail: null });
      expect(events.map(e => e.type).slice(-3)).toEqual([
        'participant.left',
        'interaction.handoff',
        'interaction.offered',
      ]);
      const times = await h().db.one(sql.type(z.object({ since: z.string(), handed: z.string() }))`
        SELECT bot_since AS since, (SELECT occurred_at FROM events WHERE interaction_id = i.id
                                    AND type = 'interaction.handoff') AS handed
        FROM interactions i WHERE id = ${chat.interactionId}`);
      expect(Date.parse(times.handed) - Date.parse(times.since)).toBeGreaterThanOrEqual(1_000);
      expect(bot).toBeDefined();
      expect(await handoffs('deadline')).toBe(before + 1);
      await expectCatalogued(h(), chat.interactionId);
    } finally {
      await connector.close();
    }
  });

  it('a botFirst queue whose tenant runs no connector routes to agents at once', async () => {
    const s = await setup(h(), {});
    await startRouting(h());
    const chat = await startCustomerChat(s.api.url, s.chatKey, 'Fay');
    await eventually(
      async () => (await state(s, chat.interactionId)).body.data?.state === 'offered',
      10_000,
      'the offer',
    );
    const types = (await eventsOf(h(), chat.interactionId)).map(e => e.type);
    expect(types).toEqual(['interaction.started', 'participant.joined', 'interaction.offered']);
    expect((await state(s, chat.interactionId)).body.data.bot).toBeNull();
    const refused = await post(s, chat.interactionId, 'handoff', { reason: 'intent' }).expect(200);
    expect(refused.body.data).toEqual({ handedOff: false, state: 'offered' });
  });

  it('an SMS conversation in a botFirst queue gets the bot’s answer as an outbound text', async () => {
    const connector = await startReceiver();
    // The Async aggregator: refuses a send whose signature is not the channel's secret.
    let sent = 0;
    const aggregator = await startReceiver(received => {
      const signature = `sha1=${createHmac('sha1', ASYNC_SECRET).update(received.body).digest('hex')}`;
      if (received.headers['x-hub-signature'] !== signature) return { status: 401 };
      return {
        status: 200,
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ messageId: `agg-${++sent}` }),
      };
    });
    try {
      const api = await h().serve();
      const admin = { Authorization: `Bearer ${h().config.adminToken}` };
      await request(api.url)
        .post('/nexus/v3/provisioning/tenants')
        .set(admin)
        .send({ id: TENANT, name: TENANT })
        .expect(201);
      await request(api.url)
        .put(`/nexus/v3/provisioning/services/${TENANT}/Async`)
        .set(admin)
        .send({
          url: 'N/A',
          data: {
            channels: [{ channelId: NUMBER, webhook: { url: `${aggregator.url}/outbound` } }],
          },
          secret: {
            channels: [
              { channelId: NUMBER, webhook: { secret: ASYNC_SECRET }, api: { secret: 'api' } },
            ],
          },
        })
        .expect(201);
      await request(api.url)
        .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Main`)
        .set(admin)
        .send({ channelId: NUMBER, endpoint: 'SmsDesk', provider: 'Async' })
        .expect(201);
      await request(api.url)
        .put(`/nexus/v3/provisioning/endpoints/${TENANT}/SmsDesk`)
        .set(admin)
        .send({})
        .expect(201);
      await request(api.url)
        .post(`/nexus/v3/provisioning/services/${TENANT}/WebhookTransportTarget-ai-connector`)
        .set(admin)
        .send({ url: connector.url })
        .expect(201);
      await request(api.url)
        .put(`/nexus/v3/provisioning/queues/${TENANT}/Sms`)
        .set(admin)
        .send({ endpoints: ['SmsDesk'], botFirst: true })
        .expect(201);
      const keyOf = async (tenant: string, permissions: string[]) =>
        (
          await request(api.url)
            .post('/nexus/v3/apikeys')
            .set(admin)
            .send({ tenant, name: permissions.join(' '), permissions })
            .expect(201)
        ).body.key as string;
      const aggregatorKey = await keyOf(TENANT, ['nexus:sms:webhook']);
      const cluster = await keyOf('*', ['nexus:cluster:*']);
      const deps = {
        db: h().db,
        log: h().log,
        bus: h().bus,
        // Workers see the API at its public URL (the aggregator's callbacks).
        config: { ...h().config, http: { ...h().config.http, publicUrl: api.url } },
        publisher: h().publisher,
        redis: h().redis,
      };
      await h().startWorkers({
        processors: {
          inbound: createInboundProcessor({
            db: h().db,
            publisher: h().publisher,
            queues: h().queues,
            log: h().log,
          }),
          'outbound-sms': createOutboundSmsProcessor(deps),
        },
        select: ['inbound', 'outbound-sms', 'maintenance'],
      });
      const mo = await request(api.url)
        .post('/nexus/v3/sms/message')
        .auth(TENANT, aggregatorKey)
        .type('form')
        .send({
          device_address: '+15551234567',
          inbound_address: NUMBER,
          message: 'Is my order shipped?',
          message_id: 'mo-1',
        })
        .expect(202);
      const { interactionId, messageId } = mo.body.data as {
        interactionId: string;
        messageId: string;
      };
      const ai = (path: string) =>
        request(api.url)
          .post(`/nexus/v3/ai/${TENANT}/interactions/${interactionId}/bot/${path}`)
          .set('x-api-key', cluster);
      await eventually(
        async () =>
          (
            await request(api.url)
              .get(`/nexus/v3/ai/${TENANT}/interactions/${interactionId}`)
              .set('x-api-key', cluster)
          ).body.data?.state === 'bot',
        10_000,
        'the SMS conversation given to the bot',
      );
      const answered = await ai('messages')
        .send({
          replyTo: messageId,
          connector: 'ai-connector',
          texts: ['It ships today.'],
        })
        .expect(200);
      const [botMessageId] = answered.body.data.messageIds as string[];
      await eventually(() => sent === 1, 10_000, 'the outbound SMS');
      const send = aggregator.requests.find(r => r.path === '/outbound');
      expect(JSON.parse(send?.body ?? '{}')).toEqual({
        messages: [
          {
            id: botMessageId,
            channelId: NUMBER,
            type: 'Text',
            from: NUMBER,
            to: '+15551234567',
            text: 'It ships today.',
          },
        ],
      });
      // Too long for an SMS: refused before anything is stored.
      const long = await ai('messages')
        .send({ replyTo: messageId, connector: 'other', texts: ['x'.repeat(1_700)] })
        .expect(400);
      expect(long.body.status).toMatchObject({
        code: 'NEXUS_ERR_SMS_TOO_LONG',
        field: 'body.texts.0',
      });
      expect(await botMessages(h())).toBe(1);
    } finally {
      await aggregator.close();
      await connector.close();
    }
  });

  it('bad bodies answer 400 naming the field and store nothing; a tenant key is refused; unknown interactions are 404', async () => {
    const connector = await startReceiver();
    try {
      const s = await setup(h(), { connector });
      await startRouting(h());
      const chat = await startCustomerChat(s.api.url, s.chatKey, 'Gus');
      await eventually(
        async () => (await state(s, chat.interactionId)).body.data?.state === 'bot',
        10_000,
        'the chat given to the bot',
      );
      const sent = await request(s.api.url)
        .post(`/nexus/v3/chat/sessions/${chat.sessionId}/messages`)
        .set('x-nexus-client-key', chat.token)
        .send({ data: { text: 'hi' } })
        .expect(202);
      const good = { replyTo: sent.body.data.id as string, connector: 'c', texts: ['ok'] };
      const cases: [object, string][] = [
        [{ connector: 'c', texts: ['ok'] }, 'body.replyTo'],
        [{ ...good, replyTo: 'not-a-uuid' }, 'body.replyTo'],
        [{ ...good, connector: '' }, 'body.connector'],
        [{ ...good, connector: 'c'.repeat(65) }, 'body.connector'],
        [{ ...good, texts: [] }, 'body.texts'],
        [{ ...good, texts: ['1', '2', '3', '4', '5', '6'] }, 'body.texts'],
        [{ ...good, texts: [''] }, 'body.texts.0'],
        [{ ...good, texts: ['ok', 'x'.repeat(4_001)] }, 'body.texts.1'],
        [{ ...good, texts: 'ok' }, 'body.texts'],
        [{ ...good, extra: 1 }, 'body.extra'],
        // A valid id, but not a customer message of this interaction.
        [{ ...good, replyTo: chat.interactionId }, 'body.replyTo'],
      ];
      for (const [body, field] of cases) {
        const res = await post(s, chat.interactionId, 'messages', body).expect(400);
        expect(res.body.status, JSON.stringify(body).slice(0, 80)).toMatchObject({
          code: 'NEXUS_ERR_VALIDATION',
          field,
        });
      }
      const handoffCases: [object, string][] = [
        [{}, 'body.reason'],
        [{ reason: 'deadline' }, 'body.reason'],
        [{ reason: 'intent', detail: 'd'.repeat(501) }, 'body.detail'],
        [{ reason: 'intent', other: true }, 'body.other'],
      ];
      for (const [body, field] of handoffCases) {
        const res = await post(s, chat.interactionId, 'handoff', body).expect(400);
        expect(res.body.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field });
      }
      expect(await botMessages(h())).toBe(0);
      expect((await state(s, chat.interactionId)).body.data.state).toBe('bot');

      // A tenant's key, even a provisioning one, is not the connector's.
      await state(s, chat.interactionId, s.tenantKey).expect(403);
      await post(s, chat.interactionId, 'messages', good, s.tenantKey).expect(403);
      await post(s, chat.interactionId, 'handoff', { reason: 'intent' }, s.tenantKey).expect(403);
      // Unknown, or another tenant's.
      const unknown = '00000000-0000-4000-8000-000000000000';
      expect((await state(s, unknown).expect(404)).body.status.code).toBe('NEXUS_ERR_NOT_FOUND');
      await post(s, unknown, 'messages', good).expect(404);
      await post(s, unknown, 'handoff', { reason: 'intent' }).expect(404);
      await request(s.api.url)
        .get(`/nexus/v3/ai/another-tenant/interactions/${chat.interactionId}`)
        .set('x-api-key', s.cluster)
        .expect(404);
      await request(s.api.url)
        .post(`/nexus/v3/ai/another-tenant/interactions/${chat.interactionId}/bot/handoff`)
        .set('x-api-key', s.cluster)
        .send({ reason: 'intent' })
        .expect(404);
      expect(await botMessages(h())).toBe(0);
      expect((await state(s, chat.interactionId)).body.data.state).toBe('bot');
    } finally {
      await connector.close();
    }
  });
});
