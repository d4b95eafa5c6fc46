import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CUSTOMER_EVENT_DATA } from '../../api/chat/customer-events.js';
import { EVENT_DATA } from '../../domain/event-catalogue.js';
import { jobsTotal, socketEventsDelivered } from '../../lib/metrics.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { connect, provisionChatTenant, type Received } from '../helpers/chat.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';

const startWorkers = (h: Harness) =>
  h.startWorkers({
    processors: { inbound: createInboundProcessor({ db: h.db, publisher: h.publisher }) },
    select: ['inbound'],
  });

const messagesOf = (received: Received[]) => received.filter(event => event.name === 'message');

/** Seqs strictly increasing with no gap, from `from`. */
function expectContiguous(received: Received[], from: number) {
  const seqs = received.filter(event => event.seq !== undefined).map(event => event.seq as number);
  expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, index) => from + index));
}

describe('customer chat and agents', () => {
  const h = useHarness();

  it('a widget and an agent exchange 100 messages; a reconnecting customer loses nothing', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app);
    await startWorkers(h());

    const agentSocket = connect(api.url, '/agent', { token: t.agent.token });
    await agentSocket.connected;

    // The widget starts a chat with form fields, as pureengage-v3-rest does.
    const started = await request(api.url)
      .post('/nexus/v3/chat/sessions')
      .set('x-api-key', t.chatKey)
      .type('form')
      .send({
        'data[firstName]': 'Ada',
        'data[lastName]': 'Lovelace',
        'data[email]': 'Ada@Example.com',
        'data[endpoint]': 'GlobalChatSwitchboard',
        'data[stream]': 'live',
        'data[ChatProfile]': 'gold',
      })
      .expect(201);
    const session = started.body.data as {
      id: string;
      selfUri: string;
      clientToken: string;
      interactionId: string;
    };
    expect(session.selfUri).toBe(`${api.url}/nexus/v3/chat/sessions/${session.id}`);
    const selfPath = new URL(session.selfUri).pathname;

    // The agent hears of the new interaction and joins it.
    await eventually(
      () => agentSocket.received.some(event => event.name === 'interaction'),
      10_000,
      'the STARTED notification',
    );
    const announced = agentSocket.received.find(event => event.name === 'interaction');
    expect(announced).toMatchObject({
      type: 'interaction.started',
      interactionId: session.interactionId,
    });
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/join`)
      .set('Authorization', `Bearer ${t.agent.token}`)
      .expect(200);

    let customer = connect(api.url, '/chat', { token: session.clientToken });
    await customer.connected;
    const customerSeen: Received[] = [];

    const customerSend = (i: number) =>
      request(api.url)
        .post(`${selfPath}/messages`)
        .set('x-api-key', t.chatKey)
        .set('x-nexus-client-key', session.clientToken)
        .type('form')
        .send({
          'data[type]': 'Text',
          'data[text]': `customer ${i}`,
          'data[clientMessageId]': `c-${i}`,
        })
        .expect(202);
    const agentSend = (i: number) =>
      request(api.url)
        .post(`/nexus/v3/agent/interactions/${session.interactionId}/messages`)
        .set('Authorization', `Bearer ${t.agent.token}`)
        .send({ text: `agent ${i}`, clientMessageId: `a-${i}` })
        .expect(201);

    for (let i = 0; i < 50; i++) {
      await customerSend(i);
      await agentSend(i);
      if (i === 20) {
        // The customer closes the page mid-way...
        await eventually(
          () => messagesOf(customer.received).length >= 30,
          10_000,
          'messages before the disconnect',
        );
        customer.socket.disconnect();
        customerSeen.push(...customer.received);
      }
      if (i === 35) {
        // ...and comes back with the last seq it saw.
        const lastSeq = Math.max(
          ...customerSeen.filter(e => e.seq !== undefined).map(e => e.seq as number),
        );
        customer = connect(api.url, '/chat', { token: session.clientToken, lastSeq });
        await customer.connected;
      }
    }
    await eventually(
      () => messagesOf([...customerSeen, ...customer.received]).length === 100,
      15_000,
      '100 messages at the customer',
    );
    await eventually(
      () => messagesOf(agentSocket.received).length === 100,
      15_000,
      '100 messages at the agent',
    );

    const allCustomer = [...customerSeen, ...customer.received];
    expectContiguous(allCustomer, 1);
    const texts = messagesOf(allCustomer).map(
      event => (event.data?.message as { text: string }).text,
    );
    expect(new Set(texts).size).toBe(100);
    // Each side's messages keep the order they were sent in.
    expect(texts.filter(text => text.startsWith('customer'))).toEqual(
      Array.from({ length: 50 }, (_, i) => `customer ${i}`),
    );
    expect(texts.filter(text => text.startsWith('agent'))).toEqual(
      Array.from({ length: 50 }, (_, i) => `agent ${i}`),
    );

    const agentFeed = agentSocket.received.filter(
      event =>
        event.interactionId === session.interactionId &&
        event.name !== 'interaction' &&
        event.name !== 'typing',
    );
    expectContiguous(agentFeed, agentFeed[0]?.seq ?? 1);
    expect(
      messagesOf(agentFeed).map(event => (event.data?.message as { text: string }).text),
    ).toEqual(texts);

    // REST reads give the same transcript.
    const transcript = await request(api.url)
      .get(`${selfPath}/messages?after=0`)
      .set('x-nexus-client-key', session.clientToken)
      .expect(200);
    expect(
      transcript.body.data.messages.filter((m: { type: string }) => m.type === 'message.created'),
    ).toHaveLength(100);
    const stored = await h().db.oneFirst(
      sql.type(
        z.object({ n: z.number() }),
      )`SELECT count(*)::int AS n FROM messages WHERE seq IS NOT NULL`,
    );
    expect(stored).toBe(100);

    // Every event matches its schema in the published catalogue (customers: their own view).
    for (const event of allCustomer) {
      if (!event.type) continue;
      const schema = CUSTOMER_EVENT_DATA[event.type as keyof typeof CUSTOMER_EVENT_DATA];
      expect(schema, event.type).toBeDefined();
      const parsed = schema.safeParse(event.data);
      expect(parsed.success, `${event.type}: ${JSON.stringify(parsed.error?.issues[0])}`).toBe(
        true,
      );
    }
    for (const event of agentSocket.received) {
      if (!event.type) continue;
      const schema = EVENT_DATA[event.type as keyof typeof EVENT_DATA];
      expect(schema, event.type).toBeDefined();
      const parsed = schema.safeParse(event.data);
      expect(parsed.success, `${event.type}: ${JSON.stringify(parsed.error?.issues[0])}`).toBe(
        true,
      );
    }

    // The reconnect's catch-up came from PostgreSQL.
    const delivered = (await socketEventsDelivered.get()).values;
    const fromStore = delivered.find(
      v => v.labels.namespace === 'chat' && v.labels.source === 'stored',
    );
    expect(fromStore?.value).toBeGreaterThan(0);

    customer.socket.disconnect();
    agentSocket.socket.disconnect();
  });
});

describe('chat input, retries and history', () => {
  const h = useHarness();

  const start = (url: string, key: string, data: Record<string, string>) =>
    request(url)
      .post('/nexus/v3/chat/sessions')
      .set('x-api-key', key)
      .type('form')
      .send(
        Object.fromEntries(
          Object.entries({ endpoint: 'GlobalChatSwitchboard', ...data }).map(([k, v]) => [
            `data[${k}]`,
            v,
          ]),
        ),
      );

  it('stores one message and emits one event for 20 retries with the same client message id', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app);
    await startWorkers(h());
    const session = (await start(api.url, t.chatKey, { nickname: 'Bob' }).expect(201)).body.data;
    const customer = connect(api.url, '/chat', { token: session.clientToken });
    await customer.connected;
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const res = await request(api.url)
        .post(`/chat/v3/chat/sessions/${session.id}/messages`)
        .set('x-nexus-client-key', session.clientToken)
        .send({ data: { type: 'Text', text: 'only once', clientMessageId: 'retry-1' } })
        .expect(202);
      ids.add(res.body.data.id);
      expect(res.body.data.duplicate).toBe(i > 0);
    }
    expect(ids.size).toBe(1);
    // The same, 20 at once: they share a group commit, and still store one message.
    const parallel = await Promise.all(
      Array.from({ length: 20 }, () =>
        request(api.url)
          .post(`/nexus/v3/chat/sessions/${session.id}/messages`)
          .set('x-nexus-client-key', session.clientToken)
          .send({ data: { type: 'Text', text: 'only once too', clientMessageId: 'retry-2' } })
          .expect(202),
      ),
    );
    expect(new Set(parallel.map(res => res.body.data.id as string)).size).toBe(1);
    expect(parallel.filter(res => res.body.data.duplicate === false)).toHaveLength(1);
    await eventually(() => messagesOf(customer.received).length === 2, 10_000);
    await new Promise(resolve => setTimeout(resolve, 300));
    expect(messagesOf(customer.received)).toHaveLength(2);
    const counts = await h().db.one(sql.type(
      z.object({ messages: z.number(), events: z.number(), numbered: z.number() }),
    )`
      SELECT (SELECT count(*)::int FROM messages) AS messages,
             (SELECT count(*)::int FROM events WHERE type = 'message.created') AS events,
             (SELECT count(seq)::int FROM messages) AS numbered`);
    expect(counts).toEqual({ messages: 2, events: 2, numbered: 2 });
    // A message is numbered at intake once the chat runs, else by its inbound job: the session's
    // work and any message's ended with their attempt counted.
    const works = await h().db.any(sql.type(
      z.object({ state: z.string(), attempts: z.number(), attempted: z.boolean() }),
    )`
      SELECT state, attempts, first_attempt_at IS NOT NULL AS attempted
      FROM work WHERE queue = 'inbound'`);
    expect(works.length).toBeGreaterThanOrEqual(1);
    expect(works.length).toBeLessThanOrEqual(3);
    for (const work of works) expect(work).toEqual({ state: 'done', attempts: 1, attempted: true });

    // A stale duplicate of a finished job (Redis lost the completion, say) changes nothing.
    const jobId = await h().db.oneFirst(sql.type(z.object({ job_id: z.string() }))`
      SELECT job_id FROM work WHERE queue = 'inbound' ORDER BY id LIMIT 1`);
    const queue = h().queues.get('inbound');
    const before = await jobsTotal.get();
    await queue.remove(jobId);
    await queue.add(
      'inbound',
      await h().db.oneFirst(sql.type(z.object({ payload: z.record(z.unknown()) }))`
      SELECT payload FROM work WHERE job_id = ${jobId}`),
      { jobId },
    );
    await eventually(
      async () => (await queue.getJobState(jobId)) === 'completed',
      10_000,
      'the duplicate to run',
    );
    const stale =
      (await jobsTotal.get()).values.find(
        v => v.labels.queue === 'inbound' && v.labels.outcome === 'stale',
      )?.value ?? 0;
    const staleBefore =
      before.values.find(v => v.labels.queue === 'inbound' && v.labels.outcome === 'stale')
        ?.value ?? 0;
    expect(stale).toBe(staleBefore + 1);
    expect(
      await h().db.oneFirst(
        sql.type(
          z.object({ n: z.number() }),
        )`SELECT count(*)::int AS n FROM events WHERE type = 'message.created'`,
      ),
    ).toBe(2);
    customer.socket.disconnect();
  });

  it("shows a known customer's previous interaction to the agent, and restores an async chat", async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app);
    await startWorkers(h());
    const agentAuth = `Bearer ${t.agent.token}`;

    const first = (
      await start(api.url, t.chatKey, { nickname: 'Carol', email: 'carol@example.com' }).expect(201)
    ).body.data;
    await request(api.url)
      .post(`/nexus/v3/chat/sessions/${first.id}/messages`)
      .set('x-nexus-client-key', first.clientToken)
      .send({ data: { text: 'first visit' } })
      .expect(202);
    await eventually(
      async () =>
        (
          await request(api.url)
            .get(`/nexus/v3/agent/interactions/${first.interactionId}`)
            .set('Authorization', agentAuth)
        ).body.data?.events?.length >= 3,
      10_000,
      'the first chat processed',
    );
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${first.interactionId}/messages`)
      .set('Authorization', agentAuth)
      .send({ text: 'hello Carol' })
      .expect(201);

    // Async chat: the customer leaves without ending; later the same token restores the history.
    const restored = await request(api.url)
      .get(`/nexus/v3/chat/sessions/${first.id}/messages`)
      .set('x-nexus-client-key', first.clientToken)
      .expect(200);
    const restoredTexts = restored.body.data.messages
      .filter((m: { type: string }) => m.type === 'message.created')
      .map((m: { data: { message: { text: string } } }) => m.data.message.text);
    expect(restoredTexts).toEqual(['first visit', 'hello Carol']);
    expect(restored.body.data.state).toBe('open');
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${first.interactionId}/done`)
      .set('Authorization', agentAuth)
      .expect(200);
    const afterDone = await request(api.url)
      .post(`/nexus/v3/chat/sessions/${first.id}/messages`)
      .set('x-nexus-client-key', first.clientToken)
      .send({ data: { text: 'too late' } })
      .expect(409);
    expect(afterDone.body.status.code).toBe('NEXUS_ERR_CHAT_ENDED');
    const ended = await request(api.url)
      .get(`/nexus/v3/chat/sessions/${first.id}/messages?after=0`)
      .set('x-nexus-client-key', first.clientToken)
      .expect(200);
    expect(ended.body.data.state).toBe('ended');
    expect(ended.body.data.messages.at(-1).type).toBe('interaction.finished');

    // The same customer (email in another case) starts a new chat: the agent sees the first one.
    const second = (
      await start(api.url, t.chatKey, { nickname: 'Carol', email: 'CAROL@example.com' }).expect(201)
    ).body.data;
    const view = await eventually(
      async () => {
        const res = await request(api.url)
          .get(`/nexus/v3/agent/interactions/${second.interactionId}`)
          .set('Authorization', agentAuth);
        return res.body.data?.previousInteractions?.length ? res.body.data : undefined;
      },
      10_000,
      'the previous interaction',
    );
    expect(view.previousInteractions).toEqual([
      expect.objectContaining({ id: first.interactionId, state: 'done' }),
    ]);
    expect(view.contact.identifiers).toEqual([{ kind: 'email', value: 'carol@example.com' }]);
    const started = view.events.find((e: { type: string }) => e.type === 'interaction.started');
    expect(started.data.interaction.returningContact).toBe(true);
    const contact = await request(api.url)
      .get(`/nexus/v3/contacts/${view.contact.id}`)
      .set('Authorization', agentAuth)
      .expect(200);
    expect(contact.body.data.interactions.map((i: { id: string }) => i.id)).toEqual([
      second.interactionId,
      first.interactionId,
    ]);
  });

  it('refuses bad input with the envelope and stores nothing', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app);
    const other = await provisionChatTenant(h(), api.app, 'other-tenant');
    const mine = (await start(api.url, t.chatKey, { nickname: 'Dan' }).expect(201)).body.data;
    const theirs = (await start(api.url, other.chatKey, { nickname: 'Eve' }).expect(201)).body.data;
    const count = () =>
      h().db.one(sql.type(
        z.object({ sessions: z.number(), messages: z.number(), work: z.number() }),
      )`
      SELECT (SELECT count(*)::int FROM chat_sessions) AS sessions, (SELECT count(*)::int FROM messages) AS messages,
             (SELECT count(*)::int FROM work) AS work`);
    const before = await count();
    const send = (sessionId: string, token: string | undefined, data: Record<string, unknown>) => {
      const req = request(api.url).post(`/nexus/v3/chat/sessions/${sessionId}/messages`);
      if (token !== undefined) req.set('x-nexus-client-key', token);
      return req.send({ data });
    };
    const cases: [string, () => request.Test, number, string, string?][] = [
      [
        'unknown endpoint',
        () => start(api.url, t.chatKey, { nickname: 'x', endpoint: 'Nowhere' }),
        400,
        'INVALID_ENDPOINT',
        'body.data.endpoint',
      ],
      [
        'missing nickname',
        () => start(api.url, t.chatKey, { email: 'x@example.com' }),
        400,
        'INVALID_NICKNAME',
        'body.data.nickname',
      ],
      [
        'bad email',
        () => start(api.url, t.chatKey, { nickname: 'x', email: 'not-an-email' }),
        400,
        'NEXUS_ERR_VALIDATION',
        'body.data.email',
      ],
      [
        'bad chat key',
        () => start(api.url, 'not-a-key', { nickname: 'x' }),
        401,
        'INVALID_CONTACT_CENTER',
      ],
      [
        'no chat key',
        () =>
          request(api.url)
            .post('/nexus/v3/chat/sessions')
            .send({ data: { nickname: 'x' } }),
        401,
        'INVALID_CONTACT_CENTER',
      ],
      [
        'no client token',
        () => send(mine.id, undefined, { text: 'hi' }),
        401,
        'AUTHENTICATION_REQUIRED',
        'header.x-nexus-client-key',
      ],
      [
        'forged client token',
        () => send(mine.id, `${mine.clientToken.slice(0, -4)}AAAA`, { text: 'hi' }),
        401,
        'AUTHENTICATION_REQUIRED',
      ],
      [
        "another tenant's session with my token",
        () => send(theirs.id, mine.clientToken, { text: 'hi' }),
        401,
        'AUTHENTICATION_REQUIRED',
      ],
      [
        'empty text',
        () => send(mine.id, mine.clientToken, { text: '   ' }),
        400,
        'NEXUS_ERR_VALIDATION',
        'body.data.text',
      ],
      [
        'text over 4096 characters',
        () => send(mine.id, mine.clientToken, { text: 'x'.repeat(4097) }),
        400,
        'NEXUS_ERR_VALIDATION',
        'body.data.text',
      ],
      [
        'not a Text message',
        () => send(mine.id, mine.clientToken, { type: 'Image', text: 'x' }),
        400,
        'NEXUS_ERR_VALIDATION',
        'body.data.type',
      ],
      [
        'read beyond the last event',
        () =>
          request(api.url)
            .post(`/nexus/v3/chat/sessions/${mine.id}/read`)
            .set('x-nexus-client-key', mine.clientToken)
            .send({ data: { seq: 999 } }),
        400,
        'NEXUS_ERR_VALIDATION',
        'body.data.seq',
      ],
      [
        "an agent reading another tenant's interaction",
        () =>
          request(api.url)
            .get(`/nexus/v3/agent/interactions/${theirs.interactionId}`)
            .set('Authorization', `Bearer ${t.agent.token}`),
        404,
        'NEXUS_ERR_NOT_FOUND',
      ],
      [
        "an agent writing to another tenant's interaction",
        () =>
          request(api.url)
            .post(`/nexus/v3/agent/interactions/${theirs.interactionId}/messages`)
            .set('Authorization', `Bearer ${t.agent.token}`)
            .send({ text: 'hi' }),
        404,
        'NEXUS_ERR_NOT_FOUND',
      ],
      [
        'a chat key on the agent API',
        () => request(api.url).get('/nexus/v3/agent/interactions').set('x-api-key', t.chatKey),
        403,
        'NEXUS_ERR_FORBIDDEN',
      ],
    ];
    for (const [name, run, status, code, field] of cases) {
      const res = await run();
      expect({ status: res.status, code: res.body.status?.code }, name).toEqual({ status, code });
      if (field) expect(res.body.status.field, name).toBe(field);
    }
    const after = await count();
    expect(after).toEqual(before);

    // Socket handshakes: no token, a token in the query string only, another kind of token.
    for (const auth of [{}, { token: 'garbage' }, { token: t.agent.token }]) {
      const attempt = connect(api.url, '/chat', auth);
      await expect(attempt.connected).rejects.toMatchObject({
        data: { code: 'AUTHENTICATION_REQUIRED' },
      });
      attempt.socket.close();
    }
    const { io } = await import('socket.io-client');
    const viaQuery = io(`${api.url}/chat`, {
      path: '/nexus/v3/socket.io',
      query: { token: mine.clientToken },
      transports: ['websocket'],
      reconnection: false,
    });
    await expect(
      new Promise((resolve, reject) => {
        viaQuery.once('connect', () => resolve(undefined));
        viaQuery.once('connect_error', reject);
      }),
    ).rejects.toMatchObject({ data: { code: 'AUTHENTICATION_REQUIRED' } });
    viaQuery.close();
    const agentWithClientToken = connect(api.url, '/agent', { token: mine.clientToken });
    await expect(agentWithClientToken.connected).rejects.toMatchObject({
      data: { code: 'NEXUS_ERR_UNAUTHORIZED' },
    });
    agentWithClientToken.socket.close();
  });

  it('relays typing, which expires on its own, and sends over the socket with an ack', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app);
    await startWorkers(h());
    const session = (await start(api.url, t.chatKey, { nickname: 'Fay' }).expect(201)).body.data;
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/join`)
      .set('Authorization', `Bearer ${t.agent.token}`)
      .expect(200);
    const agent = connect(api.url, '/agent', { token: t.agent.token });
    const customer = connect(api.url, '/chat', { token: session.clientToken });
    await Promise.all([agent.connected, customer.connected]);

    const ack = await customer.socket
      .timeout(5_000)
      .emitWithAck('message', { text: 'over the socket', clientMessageId: 's-1' });
    expect(ack).toMatchObject({ status: { code: 0 }, data: { duplicate: false } });
    const bad = await customer.socket.timeout(5_000).emitWithAck('message', { text: '' });
    expect(bad.status.code).toBe('NEXUS_ERR_VALIDATION');
    await eventually(
      () => messagesOf(agent.received).length === 1,
      10_000,
      'the socket message at the agent',
    );

    customer.socket.emit('typing', { typing: true });
    await eventually(
      () =>
        agent.received.some(
          e => e.name === 'typing' && (e as { typing?: boolean }).typing === true,
        ),
      5_000,
      'typing',
    );
    const typedAt = Date.now();
    await eventually(
      () =>
        agent.received.some(
          e => e.name === 'typing' && (e as { expired?: boolean }).expired === true,
        ),
      8_000,
      'typing to expire',
    );
    expect(Date.now() - typedAt).toBeGreaterThanOrEqual(4_000);
    // The customer does not hear its own typing.
    expect(customer.received.some(e => e.name === 'typing')).toBe(false);

    // Ending the chat reaches both.
    await request(api.url)
      .post(`/nexus/v3/chat/sessions/${session.id}/end`)
      .set('x-nexus-client-key', session.clientToken)
      .expect(200);
    await eventually(
      () =>
        agent.received.some(e => e.name === 'ended') &&
        customer.received.some(e => e.name === 'ended'),
      5_000,
      'ended',
    );
    agent.socket.disconnect();
    customer.socket.disconnect();
  });
});

describe('chat session limit', () => {
  const h = useHarness({ NEXUS_CHAT_SESSION_LIMIT: '5/60' });

  it('answers 429 with Retry-After once a session sends more than its limit', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app);
    const session = (
      await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname: 'Hal', endpoint: 'GlobalChatSwitchboard' } })
        .expect(201)
    ).body.data;
    const send = (i: number) =>
      request(api.url)
        .post(`/nexus/v3/chat/sessions/${session.id}/messages`)
        .set('x-nexus-client-key', session.clientToken)
        .send({ data: { text: `m${i}` } });
    for (let i = 0; i < 5; i++) await send(i).expect(202);
    const limited = await send(5).expect(429);
    expect(limited.body.status.code).toBe('NEXUS_ERR_RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    const stored = await h().db.oneFirst(
      sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM messages`,
    );
    expect(stored).toBe(5);
    // Another session is not affected.
    const other = (
      await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname: 'Ivy', endpoint: 'GlobalChatSwitchboard' } })
        .expect(201)
    ).body.data;
    await request(api.url)
      .post(`/nexus/v3/chat/sessions/${other.id}/messages`)
      .set('x-nexus-client-key', other.clientToken)
      .send({ data: { text: 'hello' } })
      .expect(202);
  });
});
