import { createHmac } from 'node:crypto';
import { Writable } from 'node:stream';
import { verify as verifySha256 } from '@octokit/webhooks-methods';
import { sql } from 'slonik';
import { Webhook } from 'standardwebhooks';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EVENT_DATA } from '../../domain/event-catalogue.js';
import { createLogger } from '../../lib/logger.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { createWebhookProcessor } from '../../workers/processors/webhooks.js';
import {
  connect,
  provisionChatTenant,
  sendCustomerMessage,
  startCustomerChat,
  type ChatTenant,
  type CustomerChat,
  type Received,
} from '../helpers/chat.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';

/**
 * The hub's side of the AI connector: the ai-connector target's secret (drawn by the hub, signing
 * every delivery, read back by the connector with its cluster key) and the agent-assist
 * suggestions the connector posts (`assist.suggestion` events: agents' sockets, webhooks, never
 * the connector's own target).
 */

const TARGET = 'WebhookTransportTarget-ai-connector';

interface Setup {
  url: string;
  t: ChatTenant;
  admin: Record<string, string>;
  /** A cluster key (`tenant: "*"`, `nexus:cluster:*`), as the connector runs with. */
  cluster: Record<string, string>;
  /** A key of the tenant with every tenant permission but the cluster's. */
  tenantKey: Record<string, string>;
}

async function setup(h: Harness): Promise<Setup> {
  const api = await h.serve();
  const t = await provisionChatTenant(h, api.app);
  const admin = { Authorization: `Bearer ${h.config.adminToken}` };
  await h.startWorkers({
    processors: {
      inbound: createInboundProcessor({ db: h.db, publisher: h.publisher }),
      webhooks: createWebhookProcessor({
        db: h.db,
        queues: h.queues,
        log: h.log,
        bus: h.bus,
        config: h.config,
      }),
    },
    select: ['inbound', 'webhooks', 'maintenance'],
  });
  const key = async (tenant: string, permissions: string[]) => {
    const created = await request(api.url)
      .post('/nexus/v3/apikeys')
      .set(admin)
      .send({ enabled: true, tenant, name: `key-${tenant}`, permissions, capacity: 10_000 })
      .expect(201);
    return created.body.key as string;
  };
  const clusterKey = await key('*', ['nexus:cluster:*']);
  const tenantKey = await key(t.tenant, [
    'nexus:provisioning:*',
    'nexus:agent:*',
    'nexus:designer:chat',
  ]);
  return {
    url: api.url,
    t,
    admin,
    cluster: { 'x-api-key': clusterKey, 'x-ccid': t.tenant },
    tenantKey: { 'x-api-key': tenantKey, 'x-ccid': t.tenant },
  };
}

/** Saves a webhook target of the tenant with the admin token (201 or 200). */
const saveTarget = (s: Setup, name: string, body: object, method: 'post' | 'put' = 'post') => {
  const path = `/nexus/v3/provisioning/services/${s.t.tenant}/${name}`;
  const agent = request(s.url);
  return (method === 'post' ? agent.post(path) : agent.put(path)).set(s.admin).send(body);
};

const readSecret = (s: Setup, headers: Record<string, string>, tenant = s.t.tenant) =>
  request(s.url).get(`/nexus/v3/provisioning/services/${tenant}/${TARGET}/secret`).set(headers);

const postSuggestion = (
  s: Setup,
  interactionId: string,
  body: object,
  headers: Record<string, string> = s.cluster,
  tenant = s.t.tenant,
) =>
  request(s.url)
    .post(`/nexus/v3/ai/${tenant}/interactions/${interactionId}/suggestions`)
    .set(headers)
    .send(body);

/** A chat with one customer message, numbered by the inbound worker: its chat and message id. */
async function chatWithMessage(
  s: Setup,
  h: Harness,
): Promise<CustomerChat & { messageId: string }> {
  const chat = await startCustomerChat(s.url, s.t.chatKey, 'Ann');
  const sent = await sendCustomerMessage(s.url, chat, 'c-1');
  expect(sent.response.status).toBe(202);
  const messageId = await eventually(
    () =>
      h.db.maybeOneFirst(sql.type(z.object({ id: z.string() }))`
        SELECT id FROM messages
        WHERE interaction_id = ${chat.interactionId} AND sender_type = 'customer'
          AND seq IS NOT NULL`),
    10_000,
    'the customer message numbered',
  );
  return { ...chat, messageId: messageId as string };
}

const suggestionOf = (messageId: string, connector = 'ai-connector') => ({
  messageId,
  connector,
  provider: 'builtin',
  intent: { name: 'order.status', confidence: 0.87 },
  entities: [{ kind: 'number', value: '12345', text: '12345', start: 17, end: 22 }],
  sentiment: { score: -0.4, label: 'negative' },
  suggestions: [
    { type: 'reply', text: 'Let me look up order 12345 for you.', confidence: 0.87 },
    {
      type: 'article',
      text: 'Orders ship within two days.',
      confidence: 0.66,
      title: 'Shipping times',
      url: 'https://help.example.com/shipping',
    },
  ],
});

const assistEvents = (h: Harness) =>
  h.db.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM events WHERE type = 'assist.suggestion'`);

const json = (body: string) => JSON.parse(body) as { type: string; seq: number; data: unknown };

describe('AI connector on the hub', () => {
  const logLines: string[] = [];
  const h = useHarness(
    {
      NEXUS_EGRESS_ALLOW: '127.0.0.1',
      NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: '20',
      // The rotation test reads the previous secret while it still signs.
      NEXUS_WEBHOOK_SECRET_GRACE_MS: '3600000',
    },
    {
      log: createLogger(
        'debug',
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            logLines.push(chunk.toString());
            done();
          },
        }),
      ),
    },
  );

  it('draws the guide target’s secret, signs with it, and hands it to the cluster key only', async () => {
    const s = await setup(h());
    const athena = await startReceiver();
    try {
      // The guide's registration: no secret in the body.
      const url = `${athena.url}/nexus/v3/agent-assist-chat/messages`;
      const saved = await saveTarget(s, TARGET, { url }).expect(201);
      expect(saved.body.data.secret).toEqual({ secret: true });

      const read = await readSecret(s, s.cluster).expect(200);
      expect(read.headers['cache-control']).toBe('no-store');
      const secret = read.body.data.secret as string;
      expect(read.body.data).toEqual({ secret });
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(Buffer.from(secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
      expect(logLines.join('')).not.toContain(secret.slice('whsec_'.length));

      // Every delivery verifies with it: X-Hub-Signature (the guide's), -256 and Standard Webhooks.
      const chat = await chatWithMessage(s, h());
      await eventually(
        () => athena.requests.some(r => json(r.body).type === 'message.created'),
        10_000,
        'message.created at the connector',
      );
      expect(athena.requests.length).toBeGreaterThanOrEqual(3);
      for (const r of athena.requests) {
        const headers = r.headers as Record<string, string>;
        expect(headers['x-hub-signature']).toBe(
          `sha1=${createHmac('sha1', secret).update(r.body).digest('hex')}`,
        );
        expect(await verifySha256(secret, r.body, headers['x-hub-signature-256'] ?? '')).toBe(true);
        expect(new Webhook(secret).verify(r.body, headers)).toEqual(JSON.parse(r.body));
      }
      const created = athena.requests.find(r => json(r.body).type === 'message.created');
      expect(json(created?.body ?? '{}').data).toMatchObject({
        message: { id: chat.messageId, text: 'text c-1' },
      });

      // A tenant's key, even with provisioning rights, and an agent are refused.
      const refused = await readSecret(s, s.tenantKey).expect(403);
      expect(refused.body.status.code).toBe('NEXUS_ERR_FORBIDDEN');
      expect(JSON.stringify(refused.body)).not.toContain(secret);
      await readSecret(s, { Authorization: `Bearer ${s.t.agent.token}` }).expect(403);
      // The admin (a cluster operator) may read it too.
      expect((await readSecret(s, s.admin).expect(200)).body.data.secret).toBe(secret);

      // Replacing the target without a secret keeps it: no rotation, no previous secret.
      await saveTarget(s, TARGET, { url, data: { signatures: ['x-hub-signature'] } }, 'put').expect(
        200,
      );
      expect((await readSecret(s, s.cluster).expect(200)).body.data).toEqual({ secret });
      const previous = await h().db.oneFirst(
        sql.type(
          z.object({ sealed: z.string().nullable() }),
        )`SELECT previous_secret_sealed AS sealed FROM webhook_targets WHERE name = ${TARGET}`,
      );
      expect(previous).toBeNull();

      // A given secret is used, and rotates as any target's: the drawn one signs a while longer.
      const given = `whsec_${Buffer.alloc(24, 7).toString('base64')}`;
      await saveTarget(s, TARGET, { url, secret: given }, 'put').expect(200);
      const rotated = (await readSecret(s, s.cluster).expect(200)).body.data as {
        secret: string;
        previousSecret: string;
        previousSecretUntil: string;
      };
      expect(rotated.secret).toBe(given);
      expect(rotated.previousSecret).toBe(secret);
      expect(Date.parse(rotated.previousSecretUntil) - Date.now()).toBeGreaterThan(3_500_000);

      // Other targets without a secret stay unsigned.
      await saveTarget(s, 'WebhookTransportTarget-crm', { url: `${athena.url}/crm` }).expect(201);
      expect(
        (
          await request(s.url)
            .get(`/nexus/v3/provisioning/services/${s.t.tenant}/WebhookTransportTarget-crm`)
            .set(s.admin)
            .expect(200)
        ).body.data.secret,
      ).toEqual({});

      // No such tenant, or a tenant without the target: 404 with a code.
      const unknown = await readSecret(s, { ...s.cluster, 'x-ccid': 'nobody' }, 'nobody');
      expect([unknown.status, unknown.body.status.code]).toEqual([404, 'NEXUS_ERR_NOT_FOUND']);
      await request(s.url)
        .post('/nexus/v3/provisioning/tenants')
        .set(s.admin)
        .send({ id: 'tenant-b', name: 'tenant-b' })
        .expect(201);
      const none = await readSecret(s, { ...s.cluster, 'x-ccid': 'tenant-b' }, 'tenant-b');
      expect([none.status, none.body.status.code]).toEqual([404, 'NEXUS_ERR_NOT_FOUND']);
      // x-ccid naming another tenant than the path is refused.
      const mismatch = await readSecret(s, { ...s.cluster, 'x-ccid': 'tenant-b' });
      expect([mismatch.status, mismatch.body.status.field]).toEqual([400, 'header.x-ccid']);
      // The API logged the reads (at debug), never the secrets they answered.
      const logs = logLines.join('');
      expect(logs).toContain(`/${TARGET}/secret`);
      expect(logs).not.toContain(secret.slice('whsec_'.length));
      expect(logs).not.toContain(given.slice('whsec_'.length));
    } finally {
      await athena.close();
    }
  });

  it('hands a suggestion to the agent’s socket with its seq, once; customers never see it', async () => {
    const s = await setup(h());
    const agent = connect(s.url, '/agent', { token: s.t.agent.token });
    await agent.connected;
    const chat = await chatWithMessage(s, h());
    await request(s.url)
      .post(`/nexus/v3/agent/interactions/${chat.interactionId}/join`)
      .set('Authorization', `Bearer ${s.t.agent.token}`)
      .expect(200);
    const customer = connect(s.url, '/chat', { token: chat.token });
    await customer.connected;

    const body = suggestionOf(chat.messageId);
    const first = await postSuggestion(s, chat.interactionId, body).expect(201);
    const { eventId, seq } = first.body.data as { eventId: string; seq: number };
    expect(first.body.status).toEqual({ code: 0 });
    const head = await h().db.oneFirst(sql.type(z.object({ last_seq: z.number() }))`
      SELECT last_seq FROM interactions WHERE id = ${chat.interactionId}`);
    expect(seq).toBe(head);

    const shown = (await eventually(
      () => agent.received.find(event => event.name === 'suggestion'),
      10_000,
      'the suggestion on the agent socket',
    )) as Received;
    // The event's data is the body as sent: nothing added, nothing dropped.
    expect(shown).toEqual({
      name: 'suggestion',
      id: eventId,
      seq,
      type: 'assist.suggestion',
      interactionId: chat.interactionId,
      occurredAt: expect.any(String) as string,
      data: body,
    });
    expect(EVENT_DATA['assist.suggestion'].safeParse(shown.data).success).toBe(true);

    // The connector's retry answers the same event and appends nothing.
    const again = await postSuggestion(s, chat.interactionId, body).expect(200);
    expect(again.body.data).toEqual({ eventId, seq });
    expect(await assistEvents(h())).toBe(1);

    // Optional fields absent: stored as null and [] (one shape for consumers).
    const minimal = await postSuggestion(s, chat.interactionId, {
      messageId: chat.messageId,
      connector: 'other-connector',
      provider: 'rasa',
      suggestions: [],
    }).expect(201);
    expect(minimal.body.data.seq).toBe(seq + 1);
    const second = (await eventually(
      () => agent.received.filter(event => event.name === 'suggestion')[1],
      10_000,
      'the second suggestion',
    )) as Received;
    expect(second.data).toEqual({
      messageId: chat.messageId,
      connector: 'other-connector',
      provider: 'rasa',
      intent: null,
      entities: [],
      sentiment: null,
      suggestions: [],
    });
    expect(EVENT_DATA['assist.suggestion'].safeParse(second.data).success).toBe(true);
    expect(await assistEvents(h())).toBe(2);

    // The customer gets the agent's next message (a later seq), never the suggestions.
    await request(s.url)
      .post(`/nexus/v3/agent/interactions/${chat.interactionId}/messages`)
      .set('Authorization', `Bearer ${s.t.agent.token}`)
      .send({ text: 'Let me look up order 12345 for you.' })
      .expect(201);
    await eventually(
      () => customer.received.some(event => event.name === 'message' && event.seq === seq + 2),
      10_000,
      "the agent's message at the customer",
    );
    expect(customer.received.filter(event => event.name === 'suggestion')).toEqual([]);
    expect(customer.received.filter(event => event.type === 'assist.suggestion')).toEqual([]);
    const transcript = await request(s.url)
      .get(`/nexus/v3/chat/sessions/${chat.sessionId}/messages`)
      .set('x-nexus-client-key', chat.token)
      .expect(200);
    expect(JSON.stringify(transcript.body)).not.toContain('assist.suggestion');
    expect(JSON.stringify(transcript.body)).not.toContain('order.status');
    agent.socket.disconnect();
    customer.socket.disconnect();
  });

  it('refuses bad suggestions field by field, other messages, other tenants and ended chats, storing nothing', async () => {
    const s = await setup(h());
    const chat = await chatWithMessage(s, h());
    const other = await chatWithMessage(s, h());
    const good = suggestionOf(chat.messageId);
    const long = 'x'.repeat(4_001);
    const reply = good.suggestions[0]!;
    const article = good.suggestions[1]!;
    const entity = good.entities[0]!;
    const cases: [string, object][] = [
      ['body.messageId', { ...good, messageId: 'not-a-uuid' }],
      ['body.messageId', { ...good, messageId: undefined }],
      ['body.connector', { ...good, connector: '' }],
      ['body.connector', { ...good, connector: 'ai connector' }],
      ['body.provider', { ...good, provider: undefined }],
      ['body.intent.confidence', { ...good, intent: { name: 'x', confidence: 1.5 } }],
      ['body.intent.name', { ...good, intent: { name: '', confidence: 0.5 } }],
      ['body.intent.slots', { ...good, intent: { name: 'x', confidence: 0.5, slots: {} } }],
      ['body.entities', { ...good, entities: Array.from({ length: 51 }, () => entity) }],
      ['body.entities.0.kind', { ...good, entities: [{ ...entity, kind: undefined }] }],
      ['body.entities.0.end', { ...good, entities: [{ ...entity, start: 5, end: 2 }] }],
      ['body.entities.0.start', { ...good, entities: [{ ...entity, start: -1 }] }],
      ['body.sentiment.score', { ...good, sentiment: { score: -2, label: 'negative' } }],
      ['body.sentiment.label', { ...good, sentiment: { score: 0, label: 'angry' } }],
      ['body.suggestions', { ...good, suggestions: undefined }],
      ['body.suggestions', { ...good, suggestions: Array.from({ length: 11 }, () => reply) }],
      ['body.suggestions.0.type', { ...good, suggestions: [{ ...reply, type: 'macro' }] }],
      ['body.suggestions.0.text', { ...good, suggestions: [{ ...reply, text: long }] }],
      ['body.suggestions.0.text', { ...good, suggestions: [{ ...reply, text: '' }] }],
      ['body.suggestions.0.confidence', { ...good, suggestions: [{ ...reply, confidence: -0.1 }] }],
      ['body.suggestions.0.title', { ...good, suggestions: [{ ...reply, title: 'T' }] }],
      ['body.suggestions.1.url', { ...good, suggestions: [reply, { ...article, url: 'ftp://x' }] }],
      ['body.extra', { ...good, extra: true }],
      // The message must be a customer message of this interaction.
      ['body.messageId', { ...good, messageId: other.messageId }],
    ];
    for (const [field, body] of cases) {
      const res = await postSuggestion(s, chat.interactionId, body);
      expect([res.status, res.body.status?.code, res.body.status?.field], field).toEqual([
        400,
        'NEXUS_ERR_VALIDATION',
        field,
      ]);
    }
    const agentMessage = await request(s.url)
      .post(`/nexus/v3/agent/interactions/${chat.interactionId}/messages`)
      .set('Authorization', `Bearer ${s.t.agent.token}`)
      .send({ text: 'hello' })
      .expect(201);
    const ofAgent = await postSuggestion(s, chat.interactionId, {
      ...good,
      messageId: agentMessage.body.data.id as string,
    }).expect(400);
    expect(ofAgent.body.status.field).toBe('body.messageId');

    // Unknown interaction, or one of another tenant: 404.
    const unknown = await postSuggestion(s, '6f1c1f5e-4f5b-4d51-9a55-0d1f0c5b2a10', good);
    expect([unknown.status, unknown.body.status.code]).toEqual([404, 'NEXUS_ERR_NOT_FOUND']);
    await request(s.url)
      .post('/nexus/v3/provisioning/tenants')
      .set(s.admin)
      .send({ id: 'tenant-b', name: 'tenant-b' })
      .expect(201);
    const elsewhere = await postSuggestion(
      s,
      chat.interactionId,
      good,
      { ...s.cluster, 'x-ccid': 'tenant-b' },
      'tenant-b',
    );
    expect([elsewhere.status, elsewhere.body.status.code]).toEqual([404, 'NEXUS_ERR_NOT_FOUND']);

    // Only the cluster key: a tenant's key (with agent and provisioning rights) or an agent: 403.
    for (const headers of [s.tenantKey, { Authorization: `Bearer ${s.t.agent.token}` }]) {
      const res = await postSuggestion(s, chat.interactionId, good, headers);
      expect([res.status, res.body.status.code]).toEqual([403, 'NEXUS_ERR_FORBIDDEN']);
    }
    expect(await assistEvents(h())).toBe(0);
    expect(await h().db.oneFirst(sql.unsafe`SELECT count(*)::int FROM assist_suggestions`)).toBe(0);

    // A finished interaction: 409, nothing stored; a suggestion recorded before it ended still
    // answers its event (the connector's retry after the end).
    const recorded = await postSuggestion(s, other.interactionId, suggestionOf(other.messageId));
    expect(recorded.status).toBe(201);
    for (const ended of [chat, other]) {
      await request(s.url)
        .post(`/nexus/v3/chat/sessions/${ended.sessionId}/end`)
        .set('x-nexus-client-key', ended.token)
        .expect(200);
    }
    const finished = await postSuggestion(s, chat.interactionId, good);
    expect([finished.status, finished.body.status.code]).toEqual([409, 'NEXUS_ERR_CHAT_ENDED']);
    const retried = await postSuggestion(s, other.interactionId, suggestionOf(other.messageId));
    expect([retried.status, retried.body.data]).toEqual([200, recorded.body.data]);
    expect(await assistEvents(h())).toBe(1);
  });

  it('delivers suggestions to subscribed targets, never to the connector’s own, replays included', async () => {
    const s = await setup(h());
    const receivers: Receiver[] = [];
    try {
      const receiver = async (name: string, data: object) => {
        const r = await startReceiver();
        receivers.push(r);
        await saveTarget(s, `WebhookTransportTarget-${name}`, {
          url: `${r.url}/${name}`,
          data,
        }).expect(201);
        return r;
      };
      const since = new Date(Date.now() - 1_000).toISOString();
      // The connector's target subscribes to everything (the guide's registration), and so
      // does a CRM; another connector's target asks for suggestions by name.
      const athena = await receiver('ai-connector', {});
      const crm = await receiver('crm', {});
      const otherBot = await receiver('other-bot', { events: ['assist.suggestion'] });

      const chat = await chatWithMessage(s, h());
      const fromAthena = await postSuggestion(s, chat.interactionId, suggestionOf(chat.messageId));
      const fromOther = await postSuggestion(
        s,
        chat.interactionId,
        suggestionOf(chat.messageId, 'other-bot'),
      );
      expect([fromAthena.status, fromOther.status]).toEqual([201, 201]);
      const targetsOf = (eventId: string) =>
        h().db.anyFirst(sql.type(z.object({ target: z.string() }))`
          SELECT target FROM webhook_deliveries WHERE event_id = ${eventId} ORDER BY target`);
      // Fanned out in the event's transaction: each to every subscriber but its connector's.
      expect(await targetsOf(fromAthena.body.data.eventId as string)).toEqual([
        'WebhookTransportTarget-crm',
        'WebhookTransportTarget-other-bot',
      ]);
      expect(await targetsOf(fromOther.body.data.eventId as string)).toEqual([
        'WebhookTransportTarget-crm',
      ]);

      await request(s.url)
        .post(`/nexus/v3/chat/sessions/${chat.sessionId}/end`)
        .set('x-nexus-client-key', chat.token)
        .expect(200);
      const types = (r: Receiver) => r.requests.map(request => json(request.body).type);
      await eventually(() => types(athena).includes('interaction.finished'), 10_000, 'the end');
      await eventually(
        () => types(crm).filter(type => type === 'assist.suggestion').length === 2,
        10_000,
        'both suggestions at the crm',
      );
      await eventually(() => otherBot.requests.length === 1, 10_000, 'the other bot');
      expect(types(athena)).not.toContain('assist.suggestion');
      expect(types(otherBot)).toEqual(['assist.suggestion']);
      expect(json(otherBot.requests[0]!.body).data).toMatchObject({ connector: 'ai-connector' });
      for (const r of crm.requests.filter(r => json(r.body).type === 'assist.suggestion')) {
        const data = json(r.body).data;
        expect(EVENT_DATA['assist.suggestion'].safeParse(data).success).toBe(true);
        expect(data).toMatchObject({ messageId: chat.messageId, provider: 'builtin' });
      }

      // Replaying what a target missed since T applies the same rule: the connector's target
      // missed nothing; a target created after the events gets everything, suggestions too.
      const replay = (name: string) =>
        request(s.url)
          .post(`/nexus/v3/webhooks/${s.t.tenant}/targets/WebhookTransportTarget-${name}/replay`)
          .set(s.admin)
          .send({ since })
          .expect(202);
      expect((await replay('ai-connector')).body.data).toMatchObject({ replayed: 0, missed: 0 });
      expect((await replay('other-bot')).body.data).toMatchObject({ replayed: 0, missed: 0 });
      const late = await receiver('late', {});
      const events = await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM events WHERE interaction_id = ${chat.interactionId}`);
      expect((await replay('late')).body.data).toMatchObject({ missed: events });
      await eventually(
        () => types(late).filter(type => type === 'assist.suggestion').length === 2,
        10_000,
        'the suggestions replayed to a late target',
      );
      expect(await targetsOf(fromAthena.body.data.eventId as string)).toEqual([
        'WebhookTransportTarget-crm',
        'WebhookTransportTarget-late',
        'WebhookTransportTarget-other-bot',
      ]);
    } finally {
      await Promise.all(receivers.map(r => r.close()));
    }
  });
});
