import { sql } from 'slonik';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { appendEvents } from '../../db/conversation.js';
import { databaseName } from '../../db/pool.js';
import { joinInteraction } from '../../db/queries/interaction-agents.js';
import { dbRequestTotal } from '../../lib/metrics.js';
import type { JobContext } from '../../workers/run-processor.js';
import type { InboundPayload } from '../../queues/index.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { connect, provisionChatTenant, type ChatTenant, type Received } from '../helpers/chat.js';
import { createHarness, eventually, type Harness } from '../helpers/harness.js';
import { holdLocks } from '../helpers/locks.js';
import { startPrivateRedis, type PrivateRedis } from '../helpers/redis-server.js';

/** The agent socket's events of one interaction, as seqs in arrival order. */
const seqsOf = (received: Received[], interactionId: string) =>
  received
    .filter(e => e.interactionId === interactionId && e.name !== 'interaction' && e.seq)
    .map(e => e.seq as number);

const heads = async (h: Harness) =>
  new Map(
    (
      await h.db.any(
        sql.type(z.object({ id: z.string(), last_seq: z.number() }))`
          SELECT id, last_seq FROM interactions`,
      )
    ).map(row => [row.id, row.last_seq]),
  );

/** Every interaction's events reached the socket once each, in seq order, from 1 to its head. */
async function expectCaughtUp(h: Harness, received: Received[], ids: readonly string[]) {
  const head = await heads(h);
  await eventually(
    () => ids.every(id => seqsOf(received, id).length >= (head.get(id) ?? 0)),
    20_000,
    'every event at the agent',
  );
  for (const id of ids) {
    const last = head.get(id) ?? 0;
    expect(seqsOf(received, id), id).toEqual(Array.from({ length: last }, (_, i) => i + 1));
  }
}

/** Queries this test's database has been sent so far (every pool query is counted). */
async function queriesSent(h: Harness): Promise<number> {
  const db = databaseName(h.config.db.url);
  const metric = await dbRequestTotal.get();
  return metric.values.find(v => v.labels.db === db)?.value ?? 0;
}

/** Starts `count` chats (numbered by the inbound worker) and answers their sessions. */
async function startChats(h: Harness, url: string, t: ChatTenant, count: number) {
  const chats: { id: string; clientToken: string; interactionId: string }[] = [];
  for (let i = 0; i < count; i++) {
    const created = await request(url)
      .post('/nexus/v3/chat/sessions')
      .set('x-api-key', t.chatKey)
      .send({ data: { nickname: `C${i}`, endpoint: 'GlobalChatSwitchboard' } })
      .expect(201);
    chats.push(created.body.data as (typeof chats)[number]);
  }
  await eventually(
    async () => {
      const head = await heads(h);
      return chats.every(chat => (head.get(chat.interactionId) ?? 0) >= 2);
    },
    15_000,
    'every chat started',
  );
  return chats;
}

describe('live socket delivery across a Redis restart', () => {
  let redis: PrivateRedis;
  let h: Harness;

  beforeEach(async () => {
    redis = await startPrivateRedis();
    h = await createHarness({
      REDIS_URL: redis.url,
      NEXUS_SWEEP_INTERVAL_MS: '250',
      NEXUS_SWEEP_AFTER_MS: '300',
      NEXUS_WORKER_CONCURRENCY: '20',
      // On a cluster whose every node restarted, a worker's fetching at times wedges for good:
      // replaced after this long (workers/fetch-watchdog.ts).
      NEXUS_WORKER_FETCH_STALL_MS: '3000',
      // The periodic check is the last resort; this test shows the reconnection paths.
      NEXUS_SOCKET_HEAD_CHECK_MS: '0',
    });
  });
  afterEach(async () => {
    await h.close();
    await redis.stop();
  });

  it('a still-connected agent gets every event of a backlog published while Redis was away', async () => {
    const api = await h.serve();
    const t = await provisionChatTenant(h, api.app);
    // The inbound worker, held at a gate: jobs taken before the restart finish during it.
    let gateOpen: () => void = () => undefined;
    const gate = new Promise<void>(resolve => (gateOpen = resolve));
    let held = 0;
    const inbound = createInboundProcessor({ db: h.db, publisher: h.publisher });
    const gated = Object.assign(
      async (payload: InboundPayload, ctx: JobContext) => {
        if (payload.kind === 'message') {
          held++;
          await gate;
        }
        await inbound(payload, ctx);
      },
      { claimsItself: true },
    );
    await h.startWorkers({ processors: { inbound: gated }, select: ['inbound', 'maintenance'] });

    const start = async (i: number) =>
      (
        await request(api.url)
          .post('/nexus/v3/chat/sessions')
          .set('x-api-key', t.chatKey)
          .send({ data: { nickname: `C${i}`, endpoint: 'GlobalChatSwitchboard' } })
          .expect(201)
      ).body.data as { id: string; clientToken: string; interactionId: string };
    const chats: Awaited<ReturnType<typeof start>>[] = [];
    for (let i = 0; i < 12; i++) chats.push(await start(i));
    const ids = chats.map(c => c.interactionId);
    await eventually(
      async () => [...(await heads(h)).values()].every(seq => seq >= 2),
      15_000,
      'every chat started',
    );
    for (const id of ids) {
      await request(api.url)
        .post(`/nexus/v3/agent/interactions/${id}/join`)
        .set('Authorization', `Bearer ${t.agent.token}`)
        .expect(200);
    }
    const agent = connect(api.url, '/agent', { token: t.agent.token });
    await agent.connected;
    const socketId = agent.socket.id;
    let disconnects = 0;
    agent.socket.on('disconnect', () => disconnects++);
    await expectCaughtUp(h, agent.received, ids);

    const say = (chat: Awaited<ReturnType<typeof start>>, text: string) =>
      request(api.url)
        .post(`/nexus/v3/chat/sessions/${chat.id}/messages`)
        .set('x-nexus-client-key', chat.clientToken)
        .send({ data: { text } })
        .expect(202);
    // The first eight chats' messages are taken by the worker, which is held... (sent while
    // their numbering locks are taken elsewhere, they are not numbered at intake but left to it)
    const locks = await holdLocks(h, ids.slice(0, 8), 'numbering');
    for (const chat of chats.slice(0, 8)) await say(chat, 'before the restart');
    await eventually(() => held === 8, 15_000, 'eight jobs in flight');
    locks.release();
    await locks.done;
    // ...Redis goes away, and the worker commits and publishes them meanwhile: lost publishes.
    // So are the API's, for the messages it numbers at intake during the outage.
    await redis.kill();
    gateOpen();
    const numbered = () =>
      h.db.oneFirst(
        sql.type(z.object({ n: z.number() }))`
          SELECT count(*)::int AS n FROM messages WHERE seq IS NOT NULL`,
      );
    await eventually(async () => (await numbered()) === 8, 15_000, 'the held messages numbered');
    // A backlog accepted while Redis is down: stored, its jobs re-driven by the sweeper later.
    for (const chat of chats.slice(4)) await say(chat, 'during the outage');
    await redis.start();
    await eventually(async () => (await numbered()) === 16, 30_000, 'the backlog numbered');

    await expectCaughtUp(h, agent.received, ids);
    expect(agent.socket.id).toBe(socketId);
    expect(disconnects).toBe(0);
    const texts = agent.received
      .filter(e => e.name === 'message')
      .map(e => (e.data?.message as { text: string }).text);
    expect(texts.filter(text => text === 'before the restart')).toHaveLength(8);
    expect(texts.filter(text => text === 'during the outage')).toHaveLength(8);
    agent.socket.disconnect();
  });

  it('an agent joined and offered chats while Redis was away follows them and sees the offer, without reconnecting', async () => {
    const api = await h.serve();
    const t = await provisionChatTenant(h, api.app);
    const admin = { Authorization: `Bearer ${h.config.adminToken}`, 'x-ccid': t.tenant };
    // The agent serves Main but is not ready: the chats wait there.
    await request(api.url)
      .put(`/nexus/v3/provisioning/queues/${t.tenant}/Main`)
      .set(admin)
      .send({ endpoints: ['GlobalChatSwitchboard'], agents: [t.agent.id] })
      .expect(200);
    await h.startWorkers({
      processors: { inbound: createInboundProcessor({ db: h.db, publisher: h.publisher }) },
      select: ['inbound'],
    });
    // Routing offers the oldest first: the first chat is offered, the second joined.
    const [offered, joined] = await startChats(h, api.url, t, 2);
    if (!joined || !offered) throw new Error('two chats');
    const agent = connect(api.url, '/agent', { token: t.agent.token });
    await agent.connected;
    const socketId = agent.socket.id;
    let disconnects = 0;
    agent.socket.on('disconnect', () => disconnects++);

    await redis.kill();
    // Written to PostgreSQL; their publishes are lost.
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${joined.interactionId}/join`)
      .set('Authorization', `Bearer ${t.agent.token}`)
      .expect(200);
    await request(api.url)
      .post('/nexus/v3/agent/presence')
      .set('Authorization', `Bearer ${t.agent.token}`)
      .send({ ready: true, capacity: 1 })
      .expect(200);
    const offers = await h.db.anyFirst(
      sql.type(z.object({ id: z.string() }))`
        SELECT id FROM interactions
        WHERE routing_state = 'offered' AND assigned_agent_id = ${t.agent.id}`,
    );
    expect(offers).toEqual([offered.interactionId]);
    expect(agent.received.filter(e => e.name === 'offer' || e.name === 'participant')).toEqual([]);
    await redis.start();

    await expectCaughtUp(h, agent.received, [joined.interactionId]);
    await eventually(
      () => agent.received.some(e => e.name === 'offer'),
      20_000,
      'the offer at the agent',
    );
    // Later events come live, once each.
    await request(api.url)
      .post(`/nexus/v3/chat/sessions/${joined.id}/messages`)
      .set('x-nexus-client-key', joined.clientToken)
      .send({ data: { text: 'after the restart' } })
      .expect(202);
    await eventually(
      () => agent.received.some(e => e.name === 'message'),
      20_000,
      'the message after the restart',
    );
    await new Promise(resolve => setTimeout(resolve, 500));
    await expectCaughtUp(h, agent.received, [joined.interactionId]);
    expect(agent.received.filter(e => e.name === 'offer').map(e => e.interactionId)).toEqual([
      offered.interactionId,
    ]);
    expect(agent.socket.id).toBe(socketId);
    expect(disconnects).toBe(0);
    agent.socket.disconnect();
  });

  it('after the adapter reconnects, feeds that are up to date read nothing', async () => {
    const api = await h.serve();
    const t = await provisionChatTenant(h, api.app);
    const workers = await h.startWorkers({
      processors: { inbound: createInboundProcessor({ db: h.db, publisher: h.publisher }) },
      select: ['inbound'],
    });
    const chats = await startChats(h, api.url, t, 30);
    await workers.close(5_000);
    const ids = chats.map(chat => chat.interactionId);
    for (const id of ids) {
      await request(api.url)
        .post(`/nexus/v3/agent/interactions/${id}/join`)
        .set('Authorization', `Bearer ${t.agent.token}`)
        .expect(200);
    }
    const agent = connect(api.url, '/agent', { token: t.agent.token });
    await agent.connected;
    await expectCaughtUp(h, agent.received, ids);
    // Quiet: nothing else queries this database.
    await new Promise(resolve => setTimeout(resolve, 1_000));
    const quiet = await queriesSent(h);
    await new Promise(resolve => setTimeout(resolve, 1_000));
    expect(await queriesSent(h)).toBe(quiet);

    await redis.start();
    // The reconnect's check: the heads (one query) and the agent's chats and offers (one each).
    await eventually(async () => (await queriesSent(h)) > quiet, 20_000, 'the reconnect check');
    await new Promise(resolve => setTimeout(resolve, 2_000));
    expect((await queriesSent(h)) - quiet).toBeLessThanOrEqual(5);
    expect(agent.received.filter(e => e.seq).length).toBe(
      ids.reduce((sum, id) => sum + seqsOf(agent.received, id).length, 0),
    );
    await expectCaughtUp(h, agent.received, ids);
    agent.socket.disconnect();
  });
});

describe('the periodic head check', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await createHarness({ NEXUS_SOCKET_HEAD_CHECK_MS: '300' });
  });
  afterEach(() => h.close());

  it('catches a socket up with events committed but never published', async () => {
    const api = await h.serve();
    const t = await provisionChatTenant(h, api.app);
    await h.startWorkers({
      processors: { inbound: createInboundProcessor({ db: h.db, publisher: h.publisher }) },
      select: ['inbound'],
    });
    const session = (
      await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname: 'Kim', endpoint: 'GlobalChatSwitchboard' } })
        .expect(201)
    ).body.data as { interactionId: string };
    await eventually(
      async () => ((await heads(h)).get(session.interactionId) ?? 0) >= 2,
      10_000,
      'the chat started',
    );
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/join`)
      .set('Authorization', `Bearer ${t.agent.token}`)
      .expect(200);
    const agent = connect(api.url, '/agent', { token: t.agent.token });
    await agent.connected;
    await expectCaughtUp(h, agent.received, [session.interactionId]);
    // A worker that died between its commit and its publish: the events are only in PostgreSQL.
    await h.db.transaction(tx =>
      appendEvents(tx, session.interactionId, [
        {
          type: 'read',
          payload: { participant: { type: 'agent', id: t.agent.id, nickname: 'Alice' }, seq: 1 },
        },
        {
          type: 'read',
          payload: { participant: { type: 'agent', id: t.agent.id, nickname: 'Alice' }, seq: 2 },
        },
      ]),
    );
    await expectCaughtUp(h, agent.received, [session.interactionId]);
    agent.socket.disconnect();
  });

  it('an agent joined while its publish was lost follows the chat', async () => {
    const api = await h.serve();
    const t = await provisionChatTenant(h, api.app);
    await h.startWorkers({
      processors: { inbound: createInboundProcessor({ db: h.db, publisher: h.publisher }) },
      select: ['inbound'],
    });
    const [chat] = await startChats(h, api.url, t, 1);
    if (!chat) throw new Error('one chat');
    const agent = connect(api.url, '/agent', { token: t.agent.token });
    await agent.connected;
    // The join is committed; the API died before publishing it.
    await h.db.transaction(async tx => {
      await joinInteraction(tx, chat.interactionId, t.agent.id);
      return appendEvents(tx, chat.interactionId, [
        {
          type: 'participant.joined',
          payload: { participant: { type: 'agent', id: t.agent.id, nickname: 'Alice' } },
        },
      ]);
    });
    await expectCaughtUp(h, agent.received, [chat.interactionId]);
    await new Promise(resolve => setTimeout(resolve, 1_000));
    await expectCaughtUp(h, agent.received, [chat.interactionId]);
    agent.socket.disconnect();
  });
});
