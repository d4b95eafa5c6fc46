import { createHmac } from 'node:crypto';
import { sql } from 'slonik';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  acceptOffers,
  connect,
  createAgent,
  startCustomerChat,
  type Received,
} from '../helpers/chat.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';
import { startHubProcess, type HubProcess } from '../helpers/processes.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';

/**
 * The AI connector end to end, every part its own process as deployed: the hub's API and worker,
 * the connector's API and worker (`npm run athena -- --role=…`). The hub delivers customer
 * messages to the connector's webhook (signed, the guide's target); the connector asks its NLU
 * provider and answers through the hub's API: suggestions to agents, or a bot's turns and its
 * handoff.
 */

const TENANT = 'athena-e2e';
const NUMBER = '+18005550177';
const ASYNC_SECRET = 'aggregator-webhook-secret';

const TRAINING = {
  language: 'en',
  intents: [
    {
      name: 'track-order',
      examples: [
        'where is my parcel',
        'track my order',
        'my package has not arrived',
        'when will my order be delivered',
      ],
    },
    {
      name: 'opening-hours',
      examples: ['when are you open', 'what are your opening hours', 'are you open on sunday'],
    },
    { name: 'greeting', examples: ['hello', 'hi there', 'good morning'] },
    { name: 'thanks', examples: ['thank you', 'thanks a lot', 'cheers for the help'] },
  ],
};
const REPLIES = {
  'track-order': ['Your parcel left our depot this morning.'],
  'opening-hours': ['We are open 8:00 to 20:00, every day.'],
  greeting: ['Hello! How can I help?'],
  thanks: ['You are welcome.'],
};

const count = (h: Harness, query: ReturnType<typeof sql.unsafe>) =>
  h.db.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM (${query}) q`);

interface Deployment {
  hub: HubProcess;
  athena: HubProcess;
  admin: Record<string, string>;
  chatKey: string;
  agent: { id: string; token: string };
  cluster: string;
}

describe('the AI connector, end to end across processes', () => {
  const h = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1' });
  const processes: HubProcess[] = [];
  const receivers: Receiver[] = [];
  afterEach(async () => {
    for (const p of processes.splice(0)) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await Promise.all(receivers.splice(0).map(r => r.close()));
  });

  const start = async (
    entry: Parameters<typeof startHubProcess>[1],
    env: Record<string, string> = {},
  ) => {
    const started = await startHubProcess(h(), entry, { NEXUS_EGRESS_ALLOW: '127.0.0.1', ...env });
    processes.push(started);
    return started;
  };

  /**
   * The hub (API and worker), a tenant with a chat endpoint, a queue `Main` its agent serves
   * (`queue` settings added), the connector (API and worker) registered with the guide's request,
   * and the tenant's NLU provider (`provider`, the built-in one by default).
   */
  async function deploy(
    queue: Record<string, unknown>,
    provider: Record<string, unknown> = {
      provider: 'builtin',
      training: TRAINING,
      data: { replies: REPLIES },
    },
  ): Promise<Deployment> {
    const hub = await start('api');
    await start('worker');
    const url = hub.url as string;
    const admin = { Authorization: `Bearer ${h().config.adminToken}` };
    const created = await request(url)
      .post('/nexus/v3/provisioning/tenants')
      .set(admin)
      .send({ id: TENANT, name: TENANT })
      .expect(201);
    await request(url)
      .put(`/nexus/v3/provisioning/endpoints/${TENANT}/GlobalChatSwitchboard`)
      .set(admin)
      .send({})
      .expect(201);
    const agent = await createAgent(h(), url, TENANT, 'alice', 'Alice');
    await request(url)
      .put(`/nexus/v3/provisioning/queues/${TENANT}/Main`)
      .set(admin)
      .send({ endpoints: ['GlobalChatSwitchboard'], agents: [agent.id], ...queue })
      .expect(201);
    await request(url)
      .post('/nexus/v3/agent/presence')
      .set('Authorization', `Bearer ${agent.token}`)
      .send({ ready: true, capacity: 5 })
      .expect(200);
    // The connector's cluster key, with room for its calls (docs/ai-connector.md).
    const cluster = (
      await request(url)
        .post('/nexus/v3/apikeys')
        .set(admin)
        .send({ tenant: '*', name: 'athena', permissions: ['nexus:cluster:*'], capacity: 10_000 })
        .expect(201)
    ).body.key as string;
    const athenaEnv = {
      ATHENA_NEXUS_URL: url,
      ATHENA_NEXUS_API_KEY: cluster,
      ATHENA_NEXUS_TIMEOUT_MS: '1500',
    };
    const athena = await start('athena:api', athenaEnv);
    await start('athena:worker', athenaEnv);
    // The guide's registration, verbatim.
    await request(url)
      .post(`/nexus/v3/provisioning/services/${TENANT}/WebhookTransportTarget-ai-connector`)
      .set(admin)
      .send({ url: `${athena.url}/nexus/v3/agent-assist-chat/messages` })
      .expect(201);
    await request(athena.url as string)
      .put(`/nexus/v3/ai/${TENANT}/providers/default`)
      .set(admin)
      .send(provider)
      .expect(200);
    return {
      hub,
      athena,
      admin,
      chatKey: created.body.data.xapikey as string,
      agent,
      cluster,
    };
  }

  const customerSays = (url: string, chat: { sessionId: string; token: string }, text: string) =>
    request(url)
      .post(`/nexus/v3/chat/sessions/${chat.sessionId}/messages`)
      .set('x-nexus-client-key', chat.token)
      .send({ data: { text } })
      .expect(202)
      .then(res => res.body.data.id as string);

  const eventTypes = async (interactionId: string) =>
    h().db.anyFirst(sql.type(z.object({ type: z.string() }))`
      SELECT type FROM events WHERE interaction_id = ${interactionId} ORDER BY seq`);

  it('agent assist: a chat message and a text reach the connector signed, the built-in NLU answers, the agent sees the suggestion; a replayed delivery is stored once', async () => {
    const aggregator = await startReceiver(() => ({
      status: 200,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messageId: 'agg-1' }),
    }));
    receivers.push(aggregator);
    const d = await deploy({});
    const url = d.hub.url as string;
    await request(d.athena.url as string)
      .put(`/nexus/v3/ai/${TENANT}/articles`)
      .set(d.admin)
      .send({
        articles: [
          {
            id: 'delivery-times',
            title: 'Delivery times',
            body: 'A parcel arrives within three working days of its order.',
          },
        ],
      })
      .expect(200);
    const agent = connect(url, '/agent', { token: d.agent.token });
    await agent.connected;
    acceptOffers(url, [{ socket: agent.socket, token: d.agent.token }]);

    // A chat.
    const chat = await startCustomerChat(url, d.chatKey, 'Dana');
    const messageId = await customerSays(
      url,
      chat,
      'Where is my parcel? Write to dana@example.com',
    );
    const suggestion = (await eventually(
      () =>
        agent.received.find(e => e.name === 'suggestion' && e.interactionId === chat.interactionId),
      20_000,
      'the suggestion for the chat',
    )) as Received;
    expect(suggestion.data).toMatchObject({
      messageId,
      connector: 'ai-connector',
      provider: 'builtin',
      intent: { name: 'track-order', confidence: expect.any(Number) },
      entities: expect.arrayContaining([
        expect.objectContaining({ kind: 'email', value: 'dana@example.com' }),
      ]),
      sentiment: expect.objectContaining({ label: expect.any(String) }),
      suggestions: [
        {
          type: 'reply',
          text: 'Your parcel left our depot this morning.',
          confidence: expect.any(Number),
        },
        expect.objectContaining({ type: 'article', title: 'Delivery times' }),
      ],
    });
    expect((suggestion.data?.intent as { confidence: number }).confidence).toBeGreaterThan(0.5);

    // A text, through the Async aggregator.
    await request(url)
      .put(`/nexus/v3/provisioning/services/${TENANT}/Async`)
      .set(d.admin)
      .send({
        url: 'N/A',
        data: { channels: [{ channelId: NUMBER, webhook: { url: `${aggregator.url}/out` } }] },
        secret: {
          channels: [
            { channelId: NUMBER, webhook: { secret: ASYNC_SECRET }, api: { secret: 'api' } },
          ],
        },
      })
      .expect(201);
    await request(url)
      .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Main`)
      .set(d.admin)
      .send({ channelId: NUMBER, endpoint: 'GlobalChatSwitchboard', provider: 'Async' })
      .expect(201);
    const smsKey = (
      await request(url)
        .post('/nexus/v3/apikeys')
        .set(d.admin)
        .send({ tenant: TENANT, name: 'aggregator', permissions: ['nexus:sms:webhook'] })
        .expect(201)
    ).body.key as string;
    const mo = await request(url)
      .post('/nexus/v3/sms/message')
      .auth(TENANT, smsKey)
      .type('form')
      .send({
        device_address: '+15551234567',
        inbound_address: NUMBER,
        message: 'When are you open on Sunday?',
        message_id: 'mo-1',
      })
      .expect(202);
    const sms = mo.body.data as { interactionId: string; messageId: string };
    const smsSuggestion = (await eventually(
      () =>
        agent.received.find(e => e.name === 'suggestion' && e.interactionId === sms.interactionId),
      20_000,
      'the suggestion for the text',
    )) as Received;
    expect(smsSuggestion.data).toMatchObject({
      messageId: sms.messageId,
      intent: { name: 'opening-hours' },
      suggestions: [expect.objectContaining({ text: 'We are open 8:00 to 20:00, every day.' })],
    });

    // The same delivery again (a replay, or the hub's retry after a lost answer): accepted as a
    // duplicate, nothing stored or suggested twice.
    const secret = (
      await request(url)
        .get(`/nexus/v3/provisioning/services/${TENANT}/WebhookTransportTarget-ai-connector/secret`)
        .set('x-api-key', d.cluster)
        .set('x-ccid', TENANT)
        .expect(200)
    ).body.data.secret as string;
    const raw = JSON.stringify({
      id: 'replayed-event',
      type: 'message.created',
      tenant: TENANT,
      interactionId: chat.interactionId,
      seq: 4,
      occurredAt: new Date().toISOString(),
      data: {
        message: { id: messageId, text: 'Where is my parcel?', type: 'Text' },
        from: { type: 'customer' },
      },
    });
    const replayed = await request(d.athena.url as string)
      .post('/nexus/v3/agent-assist-chat/messages')
      .set('Content-Type', 'application/json')
      .set('X-Hub-Signature', `sha1=${createHmac('sha1', secret).update(raw).digest('hex')}`)
      .send(raw)
      .expect(200);
    expect(replayed.body.data).toMatchObject({ accepted: true, duplicate: true });
    await new Promise(resolve => setTimeout(resolve, 500));
    expect(await count(h(), sql.unsafe`SELECT 1 FROM athena_messages`)).toBe(2);
    expect(
      await count(h(), sql.unsafe`SELECT 1 FROM events WHERE type = 'assist.suggestion'`),
    ).toBe(2);
    expect(agent.received.filter(e => e.name === 'suggestion')).toHaveLength(2);
    agent.socket.close();
  });

  it('a bot-first queue: the bot answers three turns; asked for a person, it hands the chat to an agent who reads its turns', async () => {
    const d = await deploy({ botFirst: true, botName: 'Ava' });
    const url = d.hub.url as string;
    const agent = connect(url, '/agent', { token: d.agent.token });
    await agent.connected;
    const chat = await startCustomerChat(url, d.chatKey, 'Dana');
    const customer = connect(url, '/chat', { token: chat.token });
    await customer.connected;
    const botSaid = () =>
      customer.received
        .filter(e => e.name === 'message' && (e.data?.from as { type?: string }).type === 'bot')
        .map(e => (e.data?.message as { text: string }).text);
    const turns = [
      ['hello', 'Hello! How can I help?'],
      ['where is my parcel', 'Your parcel left our depot this morning.'],
      ['are you open on sunday', 'We are open 8:00 to 20:00, every day.'],
    ] as const;
    for (const [index, [said, answer]] of turns.entries()) {
      await customerSays(url, chat, said);
      await eventually(() => botSaid().length === index + 1, 20_000, `the bot's turn ${index + 1}`);
      expect(botSaid()[index]).toBe(answer);
    }
    expect(agent.received.filter(e => e.name === 'offer')).toEqual([]);

    await customerSays(url, chat, 'Can I talk to an agent please?');
    const offer = await eventually(
      () => agent.received.find(e => e.name === 'offer'),
      20_000,
      'the offer after the handoff',
    );
    expect(offer).toMatchObject({ interactionId: chat.interactionId });
    await request(url)
      .post(`/nexus/v3/agent/interactions/${chat.interactionId}/accept`)
      .set('Authorization', `Bearer ${d.agent.token}`)
      .expect(200);
    const transcript = await request(url)
      .get(`/nexus/v3/agent/interactions/${chat.interactionId}`)
      .set('Authorization', `Bearer ${d.agent.token}`)
      .expect(200);
    const botTurns = (transcript.body.data.events as Received[]).filter(
      e => e.type === 'message.created' && (e.data?.from as { type: string }).type === 'bot',
    );
    expect(botTurns.map(e => (e.data?.message as { text: string }).text)).toEqual(
      turns.map(([, answer]) => answer),
    );
    const handoff = await h().db.one(sql.type(z.object({ payload: z.record(z.unknown()) }))`
      SELECT payload FROM events
      WHERE interaction_id = ${chat.interactionId} AND type = 'interaction.handoff'`);
    expect(handoff.payload).toMatchObject({ reason: 'keyword' });
    // The agent's own messages are not the bot's: nothing more is answered by it.
    await customerSays(url, chat, 'hello again');
    await eventually(
      async () =>
        (await count(h(), sql.unsafe`SELECT 1 FROM athena_messages WHERE outcome IS NOT NULL`)) ===
        5,
      20_000,
      'the connector handled every message',
    );
    expect(botSaid()).toHaveLength(3);
    agent.socket.close();
    customer.socket.close();
  });

  it('a provider that stops answering hands off within its time limit (the job undelivered); a deadline hands off by itself; assist retries a 503 and fails a 401', async () => {
    const hanging = await startReceiver(() => new Promise(() => undefined));
    receivers.push(hanging);
    const d = await deploy(
      { botFirst: true, botHandoffAfterMs: 6_000 },
      { provider: 'rasa', url: hanging.url, data: { timeoutMs: 1_000 } },
    );
    const url = d.hub.url as string;
    const agent = connect(url, '/agent', { token: d.agent.token });
    await agent.connected;

    const chat = await startCustomerChat(url, d.chatKey, 'Dana');
    await eventually(
      async () => (await eventTypes(chat.interactionId)).includes('interaction.bot'),
      20_000,
      'the chat given to the bot',
    );
    const sentAt = Date.now();
    await customerSays(url, chat, 'where is my parcel');
    await eventually(
      () => agent.received.find(e => e.name === 'offer' && e.interactionId === chat.interactionId),
      20_000,
      'the offer after the provider failed',
    );
    const tookMs = Date.now() - sentAt;
    // The time limit (1 s) and the hops: well before the queue's 6 s deadline.
    expect(tookMs).toBeLessThan(5_000);
    expect(hanging.requests.length).toBeGreaterThanOrEqual(1);
    const handoff = await h().db.one(sql.type(z.object({ payload: z.record(z.unknown()) }))`
      SELECT payload FROM events
      WHERE interaction_id = ${chat.interactionId} AND type = 'interaction.handoff'`);
    expect(handoff.payload).toMatchObject({ reason: 'provider-unavailable' });
    // The job failed for good: an undelivered record an operator sees, with the provider's code.
    const undelivered = async (code: string) => {
      const res = await request(url)
        .get(`/nexus/v3/undelivered?tenant=${TENANT}&queue=ai-connector`)
        .set(d.admin)
        .expect(200);
      return (res.body.data.items as object[]).filter(item => JSON.stringify(item).includes(code))
        .length;
    };
    await eventually(
      async () => (await undelivered('NEXUS_ERR_NLU_PROVIDER_UNAVAILABLE')) === 1,
      20_000,
      'the undelivered ai-connector job',
    );

    // A chat whose customer never writes: the queue's deadline hands it to the agent.
    const quiet = await startCustomerChat(url, d.chatKey, 'Eve');
    const startedAt = Date.now();
    await eventually(
      () => agent.received.find(e => e.name === 'offer' && e.interactionId === quiet.interactionId),
      20_000,
      'the offer at the deadline',
    );
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(5_500);
    expect(await eventTypes(quiet.interactionId)).toContain('interaction.handoff');
    const deadline = await h().db.one(sql.type(z.object({ payload: z.record(z.unknown()) }))`
      SELECT payload FROM events
      WHERE interaction_id = ${quiet.interactionId} AND type = 'interaction.handoff'`);
    expect(deadline.payload).toMatchObject({ reason: 'deadline' });

    // Agent assist on the first chat, now offered to the agent: a provider answering 503 is
    // retried (the queue's attempts), then undelivered; one refusing the credentials (401)
    // fails at once.
    hanging.answer(() => ({ status: 503 }));
    let before = hanging.requests.length;
    await customerSays(url, chat, 'are you open on sunday');
    await eventually(
      async () => (await undelivered('NEXUS_ERR_NLU_PROVIDER_UNAVAILABLE')) === 2,
      40_000,
      'the assist job undelivered after its attempts',
    );
    expect(hanging.requests.length - before).toBe(5);
    hanging.answer(() => ({ status: 401 }));
    before = hanging.requests.length;
    await customerSays(url, chat, 'thanks');
    await eventually(
      async () => (await undelivered('NEXUS_ERR_NLU_PROVIDER_REFUSED')) === 1,
      20_000,
      'the refused assist job undelivered',
    );
    expect(hanging.requests.length - before).toBe(1);
    expect(agent.received.filter(e => e.name === 'suggestion')).toEqual([]);
    agent.socket.close();
  });
});
