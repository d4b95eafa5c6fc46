import { sql } from 'slonik';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { appendEvents } from '../../db/conversation.js';
import type { JobContext } from '../../workers/run-processor.js';
import type { InboundPayload } from '../../queues/index.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { connect, provisionChatTenant, type Received } from '../helpers/chat.js';
import { createHarness, eventually, type Harness } from '../helpers/harness.js';
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
    // The first eight chats' messages are taken by the worker, which is held...
    for (const chat of chats.slice(0, 8)) await say(chat, 'before the restart');
    await eventually(() => held === 8, 15_000, 'eight jobs in flight');
    // ...Redis goes away, and the worker commits and publishes them meanwhile: lost publishes.
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
});
