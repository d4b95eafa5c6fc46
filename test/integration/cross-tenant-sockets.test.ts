import { readFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import { io, type Socket } from 'socket.io-client';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TokenService } from '../../api/auth/tokens.js';
import { SOCKET_PATH } from '../../api/realtime/index.js';
import { REALTIME } from '../../lib/realtime-publisher.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { createWebhookProcessor } from '../../workers/processors/webhooks.js';
import {
  connect,
  provisionChatTenant,
  startCustomerChat,
  type ChatTenant,
  type CustomerChat,
  type Received,
} from '../helpers/chat.js';
import { createHarness, eventually, type Harness } from '../helpers/harness.js';
import { startIdentityProvider, type IdentityProvider } from '../helpers/identity-provider.js';
import { startReceiver } from '../helpers/receiver.js';

/**
 * Tenant isolation on the sockets and on the ids the HTTP routes take besides interactions
 * (docs/permissions.md, "Sockets"): tenant A's agent and customer sockets try every event the
 * `/agent` and `/chat` namespaces handle (and names they do not) on tenant B's interactions,
 * sessions, rooms and seqs, while B's chat runs live; A's credentials of the wrong kind, expired,
 * forged or disabled open no socket; A's credentials reach none of B's webhook deliveries or
 * undelivered records, A's id in the path with B's id does not either.
 */

const A = 'tenant-a';
const B = 'tenant-b';
/** What tenant A tries to write into tenant B: never stored, never shown. */
const MOLE = 'mole-from-tenant-a';
const FORGED = 'forged-by-a-client';

/** The events each namespace handles, read from its source: a new one needs its cases here. */
function handledEvents(file: 'agent-namespace.ts' | 'customer-namespace.ts'): string[] {
  const source = readFileSync(new URL(`../../api/realtime/${file}`, import.meta.url), 'utf8');
  const names = [...source.matchAll(/(?:onRequest\(\s*socket,\s*|socket\.on\(\s*)'([^']+)'/g)]
    .map(match => match[1] as string)
    .filter(name => name !== 'disconnect');
  return [...new Set(names)].sort();
}

/** A socket request's ack, or `'none'` when nothing answers within `ms`. */
async function ask(socket: Socket, event: string, payload: unknown, ms: number): Promise<unknown> {
  try {
    return (await socket.timeout(ms).emitWithAck(event, payload)) as unknown;
  } catch {
    return 'none';
  }
}

/** Whether a socket was shown the message `text`. */
const heard = (received: readonly Received[], text: string) =>
  received.some(
    event =>
      event.name === 'message' &&
      (event.data?.message as { text?: unknown } | undefined)?.text === text,
  );

/** The strings of `secrets` found anywhere in what the sockets received. */
const leaked = (received: readonly Received[][], secrets: readonly string[]) => {
  const text = JSON.stringify(received);
  return secrets.filter(secret => text.includes(secret));
};

/** Why a handshake was refused: the `connect_error`'s code. */
async function refusedWith(
  url: string,
  namespace: '/chat' | '/agent',
  auth: Record<string, unknown>,
): Promise<unknown> {
  const attempt = connect(url, namespace, auth);
  try {
    await attempt.connected;
    return 'connected';
  } catch (error) {
    return (error as { data?: { code?: unknown } }).data?.code;
  } finally {
    attempt.socket.close();
  }
}

describe('cross-tenant sockets and ids', () => {
  let idp: IdentityProvider;
  let h: Harness;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    idp = await startIdentityProvider();
  });
  afterAll(() => idp.close());
  beforeEach(async () => {
    h = await createHarness({
      NEXUS_JWT_ISSUER: idp.issuer,
      NEXUS_JWT_JWKS_URL: idp.jwksUrl,
      NEXUS_EGRESS_ALLOW: '127.0.0.1',
      NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: '20',
    });
  });
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await h.close();
  });

  /** A socket closed after the test. */
  const open = (url: string, namespace: '/chat' | '/agent', auth: Record<string, unknown>) => {
    const opened = connect(url, namespace, auth);
    sockets.push(opened.socket);
    return opened;
  };

  /**
   * A tenant whose chats are offered to its agent Alice (ready, in the queue `Sales`), as the
   * desk pages' tests provision one (test/helpers/ux.ts).
   */
  async function desk(
    api: { url: string; app: Parameters<typeof provisionChatTenant>[1] },
    tenant: string,
  ): Promise<ChatTenant> {
    const { url } = api;
    const t = await provisionChatTenant(h, api.app, tenant, { queue: false });
    const admin = { Authorization: `Bearer ${h.config.adminToken}`, 'x-ccid': tenant };
    await request(url)
      .put(`/nexus/v3/provisioning/queues/${tenant}/Sales`)
      .set(admin)
      .send({ endpoints: ['GlobalChatSwitchboard'], agents: [t.agent.id], offerTimeoutMs: 120_000 })
      .expect(201);
    await request(url)
      .post('/nexus/v3/agent/presence')
      .set('Authorization', `Bearer ${t.agent.token}`)
      .send({ ready: true, capacity: 3 })
      .expect(200);
    return t;
  }

  /** What is stored on an interaction: its events and messages, and its head. */
  const storedOn = (interactionId: string) =>
    h.db.one(sql.type(z.object({ events: z.number(), messages: z.number(), head: z.number() }))`
      SELECT (SELECT count(*) FROM events WHERE interaction_id = ${interactionId})::int AS events,
             (SELECT count(*) FROM messages WHERE interaction_id = ${interactionId})::int AS messages,
             (SELECT last_seq FROM interactions WHERE id = ${interactionId})::int AS head`);

  /**
   * The customer writes, the agent is offered the chat, accepts it and answers: both sockets
   * then follow the interaction live.
   */
  async function converse(
    url: string,
    t: ChatTenant,
    chat: CustomerChat,
    customer: ReturnType<typeof connect>,
    agent: ReturnType<typeof connect>,
    prefix: string,
  ) {
    const sent = (await customer.socket
      .timeout(5_000)
      .emitWithAck('message', { text: `${prefix}-secret-1` })) as { status: { code: unknown } };
    expect(sent.status).toEqual({ code: 0 });
    await eventually(
      () => agent.received.some(e => e.name === 'offer' && e.interactionId === chat.interactionId),
      15_000,
      `the offer of ${t.tenant}`,
    );
    await request(url)
      .post(`/nexus/v3/agent/interactions/${chat.interactionId}/accept`)
      .set('Authorization', `Bearer ${t.agent.token}`)
      .expect(200);
    const answered = (await agent.socket.timeout(5_000).emitWithAck('message', {
      interactionId: chat.interactionId,
      text: `${prefix}-secret-agent`,
    })) as { status: { code: unknown } };
    expect(answered.status).toEqual({ code: 0 });
    await eventually(
      () => heard(customer.received, `${prefix}-secret-agent`),
      10_000,
      `the answer in ${t.tenant}`,
    );
  }

  it("keeps every socket event of tenant A away from tenant B's interactions, sessions, rooms and seqs", async () => {
    await h.startWorkers({
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
    const api = await h.serve();
    const tA = await desk(api, A);
    const tB = await desk(api, B);
    const chatA = await startCustomerChat(api.url, tA.chatKey, 'Annika');
    const chatB = await startCustomerChat(api.url, tB.chatKey, 'Beatrix');

    // Both tenants' chats run: A's sockets do hear their own tenant (the checks below are not
    // vacuous), B's follow B's.
    const customerB = open(api.url, '/chat', { token: chatB.token });
    const agentB = open(api.url, '/agent', { token: tB.agent.token });
    const customerA = open(api.url, '/chat', { token: chatA.token });
    const agentA = open(api.url, '/agent', { token: tA.agent.token });
    await Promise.all([customerB, agentB, customerA, agentA].map(s => s.connected));
    await converse(api.url, tB, chatB, customerB, agentB, 'b');
    await converse(api.url, tA, chatA, customerA, agentA, 'a');
    const headB = (await storedOn(chatB.interactionId)).head;

    // A's sockets opened with B's ids and seqs in their handshakes: they follow A's own only.
    const agentA2 = open(api.url, '/agent', {
      token: tA.agent.token,
      lastSeqs: { [chatB.interactionId]: 0, [chatB.sessionId]: 0, [chatA.interactionId]: 0 },
      ccid: B,
    });
    const customerA2 = open(api.url, '/chat', {
      token: chatA.token,
      lastSeq: 0,
      interactionId: chatB.interactionId,
      sessionId: chatB.sessionId,
      ccid: B,
    });
    await Promise.all([agentA2.connected, customerA2.connected]);
    await eventually(
      () => heard(customerA2.received, 'a-secret-agent'),
      10_000,
      "A's second customer socket to catch up A's chat",
    );
    await eventually(
      () => heard(agentA2.received, 'a-secret-agent'),
      10_000,
      "A's second agent socket to catch up A's chat",
    );

    const before = await storedOn(chatB.interactionId);
    const presenceB = () =>
      h.db.oneFirst(
        sql.type(
          z.object({ ready: z.boolean() }),
        )`SELECT ready FROM agents WHERE id = ${tB.agent.id}`,
      );
    expect(await presenceB()).toBe(true);

    // Every event each namespace handles, with B's ids: a coded refusal. `0`: the handler takes
    // no id, so it acted on A's own chat (checked below); 'none': it never answers.
    type Cases = Record<string, [payload: unknown, answer: string | 0][]>;
    const agentCases: Cases = {
      subscribe: [
        [{ interactionId: chatB.interactionId }, 'NEXUS_ERR_NOT_FOUND'],
        [{ interactionId: chatB.interactionId, lastSeq: 0 }, 'NEXUS_ERR_NOT_FOUND'],
        [{ interactionId: chatB.interactionId, lastSeq: headB }, 'NEXUS_ERR_NOT_FOUND'],
        [{ interactionId: chatB.sessionId, lastSeq: 0 }, 'NEXUS_ERR_NOT_FOUND'],
        [{ interactionId: tB.agent.id }, 'NEXUS_ERR_NOT_FOUND'],
      ],
      message: [
        [{ interactionId: chatB.interactionId, text: MOLE }, 'NEXUS_ERR_NOT_FOUND'],
        [
          { interactionId: chatB.interactionId, text: MOLE, clientMessageId: 'b-secret-1' },
          'NEXUS_ERR_NOT_FOUND',
        ],
        [{ interactionId: chatB.sessionId, text: MOLE }, 'NEXUS_ERR_NOT_FOUND'],
        [{ interactionId: chatB.interactionId, text: MOLE, tenant: B }, 'NEXUS_ERR_VALIDATION'],
      ],
      token: [
        [{ token: tB.agent.token }, 'NEXUS_ERR_FORBIDDEN'],
        [{ token: chatB.token }, 'NEXUS_ERR_UNAUTHORIZED'],
      ],
      presence: [
        [{ ready: false, agentId: tB.agent.id }, 'NEXUS_ERR_VALIDATION'],
        [{ ready: false, tenant: B }, 'NEXUS_ERR_VALIDATION'],
      ],
    };
    const customerCases: Cases = {
      message: [
        [{ text: MOLE, interactionId: chatB.interactionId }, 'NEXUS_ERR_VALIDATION'],
        [{ text: MOLE, sessionId: chatB.sessionId }, 'NEXUS_ERR_VALIDATION'],
        [{ text: MOLE, tenant: B }, 'NEXUS_ERR_VALIDATION'],
      ],
      // Typing takes no ack; the notice is A's own chat's (B's sockets never show it, below).
      typing: [
        [{ typing: true, interactionId: chatB.interactionId, sessionId: chatB.sessionId }, 'none'],
      ],
      read: [
        // B's head is past A's: refused against A's own chat, never B's.
        [{ seq: headB + 50, interactionId: chatB.interactionId }, 'NEXUS_ERR_VALIDATION'],
        [{ seq: 1, interactionId: chatB.interactionId, sessionId: chatB.sessionId }, 0],
      ],
    };
    expect(Object.keys(agentCases).sort()).toEqual(handledEvents('agent-namespace.ts'));
    expect(Object.keys(customerCases).sort()).toEqual(handledEvents('customer-namespace.ts'));

    const answers: Record<string, unknown> = {};
    const expected: Record<string, unknown> = {};
    const run = async (namespace: string, socket: Socket, cases: Cases) => {
      for (const [event, tries] of Object.entries(cases)) {
        for (const [index, [payload, answer]] of tries.entries()) {
          const key = `${namespace} ${event} #${index}`;
          const got = await ask(socket, event, payload, answer === 'none' ? 400 : 5_000);
          answers[key] =
            got === 'none' ? 'none' : (got as { status?: { code?: unknown } }).status?.code;
          expected[key] = answer;
        }
      }
    };
    await run('/agent', agentA.socket, agentCases);
    await run('/agent (lastSeqs of B)', agentA2.socket, agentCases);
    await run('/chat', customerA.socket, customerCases);
    await run('/chat (ids of B)', customerA2.socket, customerCases);

    // Actions the namespaces do not handle, with every id of B: nothing answers.
    const anyId = {
      interactionId: chatB.interactionId,
      sessionId: chatB.sessionId,
      room: `agent:${tB.agent.id}`,
      agentId: tB.agent.id,
      tenant: B,
      lastSeq: 0,
      seq: 1,
      text: MOLE,
      token: chatB.token,
    };
    const unhandled = [
      'join',
      'leave',
      'accept',
      'reject',
      'park',
      'transfer',
      'done',
      'end',
      'typing',
      'read',
      'subscribe',
      'unsubscribe',
      'lastSeqs',
      'catchUp',
      'token',
      'presence',
      'message',
      REALTIME.events,
      REALTIME.notice,
      REALTIME.heads,
    ];
    for (const [namespace, socket, handled] of [
      ['/agent', agentA.socket, agentCases],
      ['/chat', customerA.socket, customerCases],
    ] as const) {
      // Asked all at once: each waits its own second for an answer.
      const names = unhandled.filter(name => !(name in handled));
      const got = await Promise.all(names.map(event => ask(socket, event, anyId, 1_000)));
      for (const [index, event] of names.entries()) {
        answers[`${namespace} ${event} (unhandled)`] = got[index];
        expected[`${namespace} ${event} (unhandled)`] = 'none';
      }
    }
    expect(answers).toEqual(expected);

    // The read that named B acted on A's chat.
    await eventually(
      async () =>
        (await h.db.oneFirst(sql.type(z.object({ n: z.number() }))`
          SELECT count(*)::int AS n FROM events
          WHERE interaction_id = ${chatA.interactionId} AND type = 'read'
            AND payload->'participant'->>'type' = 'customer'`)) > 0,
      5_000,
      "the customer's read on A's chat",
    );

    // A client on the default namespace (no credentials needed there) sends what replicas
    // publish to each other: no feed takes it.
    const stranger = io(api.url, {
      path: SOCKET_PATH,
      auth: { token: chatA.token },
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
    });
    sockets.push(stranger);
    await new Promise<void>((resolve, reject) => {
      stranger.once('connect', resolve);
      stranger.once('connect_error', reject);
    });
    const forgedEvent = {
      id: randomUUID(),
      tenantId: B,
      interactionId: chatB.interactionId,
      seq: headB + 1,
      type: 'message.created',
      data: {
        message: {
          id: randomUUID(),
          type: 'Text',
          text: FORGED,
          createdAt: new Date().toISOString(),
        },
        from: { id: randomUUID(), type: 'agent', nickname: FORGED },
      },
      occurredAt: new Date().toISOString(),
    };
    stranger.emit(REALTIME.events, { events: [forgedEvent] });
    stranger.emit(REALTIME.notice, {
      tenantId: B,
      interactionId: chatB.interactionId,
      participant: { id: randomUUID(), type: 'agent', nickname: FORGED },
      typing: true,
    });
    stranger.emit(REALTIME.heads, {
      heads: [{ interactionId: chatB.interactionId, seq: headB + 5 }],
    });

    // B's chat goes on live while A's sockets listen, and B gets a new chat (announced to B's
    // agents, offered to B's agent).
    const chatB2 = await startCustomerChat(api.url, tB.chatKey, 'Bettina');
    const sentB = (await customerB.socket
      .timeout(5_000)
      .emitWithAck('message', { text: 'b-secret-2' })) as { status: { code: unknown } };
    expect(sentB.status).toEqual({ code: 0 });
    customerB.socket.emit('typing', { typing: true });
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${chatB.interactionId}/typing`)
      .set('Authorization', `Bearer ${tB.agent.token}`)
      .send({})
      .expect(res => expect(res.status).toBeLessThan(300));
    await eventually(() => heard(agentB.received, 'b-secret-2'), 10_000, "B's live message");
    await eventually(
      () =>
        agentB.received.some(e => e.name === 'typing') &&
        customerB.received.some(e => e.name === 'typing'),
      5_000,
      "B's typing notices",
    );
    // Time for anything misrouted to arrive.
    await new Promise(resolve => setTimeout(resolve, 500));

    // Nothing of B reached any socket of A; nothing of A (nor the forgeries) reached B's.
    const secretsOfB = [
      B,
      chatB.interactionId,
      chatB.sessionId,
      tB.agent.id,
      chatB2.interactionId,
      chatB2.sessionId,
      'Beatrix',
      'Bettina',
      'b-secret-1',
      'b-secret-agent',
      'b-secret-2',
    ];
    const socketsOfA = [agentA, agentA2, customerA, customerA2].map(s => s.received);
    expect(leaked(socketsOfA, secretsOfB)).toEqual([]);
    const secretsOfA = [
      A,
      chatA.interactionId,
      chatA.sessionId,
      tA.agent.id,
      'Annika',
      MOLE,
      FORGED,
    ];
    expect(leaked([agentB.received, customerB.received], secretsOfA)).toEqual([]);
    // A's sockets heard A's chat all along.
    expect(heard(agentA.received, 'a-secret-agent')).toBe(true);
    expect(heard(agentA2.received, 'a-secret-1')).toBe(true);
    expect(heard(customerA.received, 'a-secret-agent')).toBe(true);
    // B's typing notices are B's own participants'.
    for (const notice of [...agentB.received, ...customerB.received].filter(
      e => e.name === 'typing',
    )) {
      expect(notice.interactionId).toBe(chatB.interactionId);
    }

    // Nothing was stored on B's chat but B's own message (and its routing), nothing anywhere of A's.
    const after = await storedOn(chatB.interactionId);
    expect(after.messages).toBe(before.messages + 1);
    const storedOfA = await h.db.one(sql.type(z.object({ mole: z.number(), foreign: z.number() }))`
      SELECT (SELECT count(*) FROM messages WHERE text IN (${MOLE}, ${FORGED}))::int AS mole,
             (SELECT count(*) FROM events WHERE interaction_id = ${chatB.interactionId}
                AND (payload::text LIKE ${`%${tA.agent.id}%`} OR payload::text LIKE '%Annika%'))::int
               AS foreign`);
    expect(storedOfA).toEqual({ mole: 0, foreign: 0 });
    const eventsOfB = await h.db.anyFirst(sql.type(z.object({ type: z.string() }))`
      SELECT type FROM events WHERE interaction_id = ${chatB.interactionId} AND seq > ${before.head}
      ORDER BY seq`);
    expect(eventsOfB).toEqual(['message.created']);
    expect(await presenceB()).toBe(true);
  });

  it('opens no socket for credentials of the wrong kind, expired, forged or of a disabled agent', async () => {
    const api = await h.serve();
    const tA = await provisionChatTenant(h, api.app, A);
    const tB = await provisionChatTenant(h, api.app, B);
    const chatA = await startCustomerChat(api.url, tA.chatKey, 'Annika');
    const chatB = await startCustomerChat(api.url, tB.chatKey, 'Beatrix');
    const tokens = new TokenService(h.config.secretKey);
    const participant = randomUUID();
    const refusals: Record<string, [namespace: '/chat' | '/agent', token: string, code: string]> = {
      "A's agent token on /chat": ['/chat', tA.agent.token, 'AUTHENTICATION_REQUIRED'],
      "A's client token on /agent": ['/agent', chatA.token, 'NEXUS_ERR_UNAUTHORIZED'],
      "A's chat key on /chat": ['/chat', tA.chatKey, 'AUTHENTICATION_REQUIRED'],
      "A's chat key on /agent": ['/agent', tA.chatKey, 'NEXUS_ERR_UNAUTHORIZED'],
      "A's operator JWT (admin) on /agent": [
        '/agent',
        await idp.sign({ sub: 'a-admin', ccid: A, role: 'admin' }),
        'NEXUS_ERR_AGENT_REQUIRED',
      ],
      "A's operator JWT (admin) on /chat": [
        '/chat',
        await idp.sign({ sub: 'a-admin', ccid: A, role: 'admin' }),
        'AUTHENTICATION_REQUIRED',
      ],
      'the admin token on /agent': ['/agent', h.config.adminToken, 'NEXUS_ERR_AGENT_REQUIRED'],
      'the admin token on /chat': ['/chat', h.config.adminToken, 'AUTHENTICATION_REQUIRED'],
      "an expired agent token of A's agent": [
        '/agent',
        (await new TokenService(h.config.secretKey, -5).signAgent(tA.agent.id, A)).token,
        'NEXUS_ERR_UNAUTHORIZED',
      ],
      "an expired operator JWT for A's agent": [
        '/agent',
        await idp.sign({ sub: 'alice', ccid: A, role: 'agent' }, { expiresIn: '-1m' }),
        'NEXUS_ERR_UNAUTHORIZED',
      ],
      "an agent token of another hub's key": [
        '/agent',
        (await new TokenService(randomBytes(32)).signAgent(tA.agent.id, A)).token,
        'NEXUS_ERR_UNAUTHORIZED',
      ],
      // Signed with the hub's key but naming another tenant than the agent's or session's.
      "A's agent id under tenant B": [
        '/agent',
        (await tokens.signAgent(tA.agent.id, B)).token,
        'NEXUS_ERR_UNAUTHORIZED',
      ],
      "A's session under tenant B": [
        '/chat',
        await tokens.signClient({
          sessionId: chatA.sessionId,
          participantId: participant,
          tenant: B,
        }),
        'AUTHENTICATION_REQUIRED',
      ],
      "B's session under tenant A": [
        '/chat',
        await tokens.signClient({
          sessionId: chatB.sessionId,
          participantId: participant,
          tenant: A,
        }),
        'AUTHENTICATION_REQUIRED',
      ],
      "a client token of another hub's key": [
        '/chat',
        await new TokenService(randomBytes(32)).signClient({
          sessionId: chatB.sessionId,
          participantId: participant,
          tenant: B,
        }),
        'AUTHENTICATION_REQUIRED',
      ],
      'no token on /agent': ['/agent', '', 'NEXUS_ERR_UNAUTHORIZED'],
      'no token on /chat': ['/chat', '', 'AUTHENTICATION_REQUIRED'],
    };
    const codes: Record<string, unknown> = {};
    for (const [what, [namespace, token]] of Object.entries(refusals)) {
      codes[what] = await refusedWith(api.url, namespace, { token });
    }
    expect(codes).toEqual(
      Object.fromEntries(Object.entries(refusals).map(([what, [, , code]]) => [what, code])),
    );

    // The right credentials open both (the refusals above are about the credentials), an
    // operator JWT with role agent too; a disabled agent's token and JWT then do not.
    for (const [namespace, token] of [
      ['/chat', chatA.token],
      ['/agent', tA.agent.token],
      ['/agent', await idp.sign({ sub: 'alice', ccid: A, role: 'agent' })],
    ] as const) {
      expect(await refusedWith(api.url, namespace, { token })).toBe('connected');
    }
    await request(api.url)
      .patch(`/nexus/v3/agents/${tA.agent.id}`)
      .set({ Authorization: `Bearer ${h.config.adminToken}`, 'x-ccid': A })
      .send({ enabled: false })
      .expect(200);
    await eventually(
      async () =>
        (await refusedWith(api.url, '/agent', { token: tA.agent.token })) ===
        'NEXUS_ERR_UNAUTHORIZED',
      2_000,
      "the disabled agent's token refused",
    );
    expect(
      await refusedWith(api.url, '/agent', {
        token: await idp.sign({ sub: 'alice', ccid: A, role: 'agent' }),
      }),
    ).toBe('NEXUS_ERR_UNAUTHORIZED');
    // B's agent of the same username is not A's.
    expect(await refusedWith(api.url, '/agent', { token: tB.agent.token })).toBe('connected');
  });

  it("keeps B's webhook deliveries and undelivered records away from A's credentials", async () => {
    const receiver = await startReceiver(() => ({ status: 400, body: 'refused by b-receiver' }));
    try {
      const api = await h.serve();
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
          }),
        },
        select: ['inbound', 'webhooks', 'maintenance'],
      });
      const admin = { Authorization: `Bearer ${h.config.adminToken}` };
      const tA = await provisionChatTenant(h, api.app, A);
      const tB = await provisionChatTenant(h, api.app, B);
      const target = 'WebhookTransportTarget-crm';
      await request(api.url)
        .put(`/nexus/v3/provisioning/services/${B}/${target}`)
        .set(admin)
        .send({
          url: receiver.url,
          data: { events: ['interaction.started'] },
          secret: `whsec_${randomBytes(24).toString('base64')}`,
        })
        .expect(201);
      const chatB = await startCustomerChat(api.url, tB.chatKey, 'Beatrix');
      const failed = (await eventually(
        async () => {
          const res = await request(api.url)
            .get(`/nexus/v3/webhooks/${B}/deliveries`)
            .set(admin)
            .expect(200);
          const [row] = res.body.data.items as { id: number; state: string; eventId: string }[];
          return row?.state === 'failed' ? row : undefined;
        },
        10_000,
        "B's delivery to fail",
      )) as { id: number; eventId: string };
      const record = (await eventually(
        async () => {
          const res = await request(api.url)
            .get(`/nexus/v3/undelivered?tenant=${B}`)
            .set(admin)
            .expect(200);
          return (res.body.data.items as { id: number; jobId: string }[])[0];
        },
        5_000,
        "B's undelivered record",
      )) as { id: number };
      const message = await request(api.url)
        .post(`/nexus/v3/chat/sessions/${chatB.sessionId}/messages`)
        .set('x-nexus-client-key', chatB.token)
        .send({ data: { text: 'b-secret-1' } })
        .expect(res => expect(res.status).toBeLessThan(300));
      const messageId = (message.body.data as { id?: string } | undefined)?.id ?? randomUUID();

      const key = async (tenant: string, permissions: string[]) =>
        (
          await request(api.url)
            .post('/nexus/v3/apikeys')
            .set(admin)
            .send({ tenant, name: permissions.join(' '), permissions })
            .expect(201)
        ).body.key as string;
      const keyA = await key(A, ['nexus:provisioning:*']);
      const cluster = await key('*', ['nexus:cluster:*']);
      const credentialsOfA: Record<string, Record<string, string>> = {
        "A's provisioning key": { 'x-api-key': keyA },
        "A's operator JWT": {
          Authorization: `Bearer ${await idp.sign({ sub: 'a-admin', ccid: A, role: 'admin' })}`,
        },
        "A's agent token": { Authorization: `Bearer ${tA.agent.token}` },
        "A's chat key": { 'x-api-key': tA.chatKey },
      };
      const since = { since: '2000-01-01T00:00:00Z' };
      type Attempt = [method: 'get' | 'post', path: string, body?: object];
      // A's own ccid in the path with B's ids: each route looks in A's tenant only.
      const inA: Attempt[] = [
        ['get', `/nexus/v3/webhooks/${A}/deliveries/${failed.id}`],
        ['post', `/nexus/v3/webhooks/${A}/deliveries/${failed.id}/replay`],
        ['post', `/nexus/v3/webhooks/${A}/targets/${target}/replay`, since],
        ['post', `/nexus/v3/webhooks/${A}/targets/${target}/enable`],
      ];
      const inB: Attempt[] = [
        ['get', `/nexus/v3/webhooks/${B}/deliveries/${failed.id}`],
        ['post', `/nexus/v3/webhooks/${B}/deliveries/${failed.id}/replay`],
        ['get', `/nexus/v3/webhooks/${B}/deliveries`],
        ['get', `/nexus/v3/webhooks/${B}/targets`],
        ['post', `/nexus/v3/webhooks/${B}/targets/${target}/replay`, since],
        ['post', `/nexus/v3/webhooks/${B}/targets/${target}/enable`],
        // Undelivered records are the cluster operator's only (docs/permissions.md).
        ['get', '/nexus/v3/undelivered'],
        ['get', `/nexus/v3/undelivered?tenant=${B}`],
        ['post', `/nexus/v3/undelivered/${record.id}/replay`],
        ['post', '/nexus/v3/undelivered/replay', { ...since, tenant: B }],
        ['post', '/nexus/v3/undelivered/replay', since],
      ];
      const statuses: Record<string, number> = {};
      const wanted: Record<string, number> = {};
      for (const [who, headers] of Object.entries(credentialsOfA)) {
        const operator = who !== "A's agent token" && who !== "A's chat key";
        for (const [attempts, status] of [
          [inA, operator ? 404 : 403],
          [inB, 403],
        ] as const) {
          for (const [method, path, body] of attempts) {
            const req = request(api.url)[method](path).set(headers);
            const res = await (body ? req.send(body) : req);
            statuses[`${who}: ${method.toUpperCase()} ${path}`] = res.status;
            wanted[`${who}: ${method.toUpperCase()} ${path}`] =
              // A tenant operator reaches the undelivered routes no more than an agent does.
              path.startsWith('/nexus/v3/undelivered') ? 403 : status;
            expect(JSON.stringify(res.body), path).not.toContain(failed.eventId);
            expect(JSON.stringify(res.body), path).not.toContain(receiver.url);
            expect(JSON.stringify(res.body), path).not.toContain('refused by b-receiver');
          }
        }
        if (operator) {
          // A's own lists hold nothing of B's.
          for (const path of [
            `/nexus/v3/webhooks/${A}/deliveries`,
            `/nexus/v3/webhooks/${A}/targets`,
          ]) {
            const res = await request(api.url).get(path).set(headers).expect(200);
            expect(res.body.data.items, `${who}: ${path}`).toEqual([]);
          }
        }
      }
      // The AI connector's routes with A in the path and B's chat: not found, even for the
      // cluster key (the path's tenant is the one looked in).
      const ai: Attempt[] = [
        ['get', `/nexus/v3/ai/${A}/interactions/${chatB.interactionId}`],
        [
          'post',
          `/nexus/v3/ai/${A}/interactions/${chatB.interactionId}/suggestions`,
          {
            messageId,
            connector: 'ai-connector',
            provider: 'builtin',
            suggestions: [{ type: 'reply', text: MOLE, confidence: 0.5 }],
          },
        ],
        [
          'post',
          `/nexus/v3/ai/${A}/interactions/${chatB.interactionId}/bot/messages`,
          { replyTo: messageId, connector: 'ai-connector', texts: [MOLE] },
        ],
        [
          'post',
          `/nexus/v3/ai/${A}/interactions/${chatB.interactionId}/bot/handoff`,
          { reason: 'intent' },
        ],
      ];
      for (const [method, path, body] of ai) {
        const req = request(api.url)[method](path).set('x-api-key', cluster);
        const res = await (body ? req.send(body) : req);
        statuses[`cluster key: ${method.toUpperCase()} ${path}`] = res.status;
        wanted[`cluster key: ${method.toUpperCase()} ${path}`] = 404;
        expect(JSON.stringify(res.body), path).not.toContain('Beatrix');
      }
      expect(statuses).toEqual(wanted);

      // B's delivery and record are as they were: failed once, not replayed; the receiver got
      // the one attempt; nothing of A's was written on B's chat.
      const delivery = await request(api.url)
        .get(`/nexus/v3/webhooks/${B}/deliveries/${failed.id}`)
        .set(admin)
        .expect(200);
      expect(delivery.body.data).toMatchObject({ state: 'failed', attempts: 1, target });
      const records = await request(api.url)
        .get(`/nexus/v3/undelivered?tenant=${B}`)
        .set(admin)
        .expect(200);
      expect(records.body.data.items).toEqual([
        expect.objectContaining({ id: record.id, replays: 0, replayedAt: null }),
      ]);
      const targets = await request(api.url)
        .get(`/nexus/v3/webhooks/${B}/targets`)
        .set(admin)
        .expect(200);
      expect(targets.body.data.items).toEqual([
        expect.objectContaining({ name: target, failed: 1 }),
      ]);
      expect(receiver.requests).toHaveLength(1);
      expect(
        await h.db.oneFirst(sql.type(z.object({ n: z.number() }))`
          SELECT count(*)::int AS n FROM messages WHERE text = ${MOLE}`),
      ).toBe(0);
      expect(
        await h.db.oneFirst(sql.type(z.object({ n: z.number() }))`
          SELECT count(*)::int AS n FROM events
          WHERE interaction_id = ${chatB.interactionId} AND type IN ('interaction.bot', 'interaction.handoff', 'assist.suggestion')`),
      ).toBe(0);
    } finally {
      await receiver.close();
    }
  });
});
