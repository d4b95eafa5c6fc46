import { UnrecoverableError } from 'bullmq';
import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { routeQueue } from '../../db/routing/queueing.js';
import { routingQueueStats } from '../../db/routing/stats.js';
import { EVENT_DATA } from '../../domain/event-catalogue.js';
import { registry, routingDecisionsTotal, setRoutingStatsSource } from '../../lib/metrics.js';
import { outboundSmsQueue } from '../../queues/index.js';
import { enqueueDurably } from '../../queues/work.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { acceptOffers, connect, createAgent, provisionChatTenant } from '../helpers/chat.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';

const loads = (h: Harness) =>
  h.db.any(sql.type(z.object({ agent: z.string(), n: z.number() }))`
    SELECT assigned_agent_id::text AS agent, count(*)::int AS n FROM interactions
    WHERE routing_state IN ('offered', 'assigned') AND state = 'open' GROUP BY assigned_agent_id`);

describe('routing', () => {
  const h = useHarness();

  const startRouting = () =>
    h().startWorkers({
      processors: {
        inbound: createInboundProcessor({
          db: h().db,
          publisher: h().publisher,
          queues: h().queues,
          log: h().log,
        }),
      },
      select: ['inbound', 'maintenance'],
    });

  async function setup(agentCount: number, capacity: number, offerTimeoutMs = 30_000) {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app, undefined, { queue: false });
    const admin = { Authorization: `Bearer ${h().config.adminToken}`, 'x-ccid': t.tenant };
    const agents = [{ id: t.agent.id, token: t.agent.token }];
    for (let i = 1; i < agentCount; i++) {
      agents.push(await createAgent(h(), api.url, t.tenant, `agent${i}`, `Agent ${i}`));
    }
    await request(api.url)
      .put(`/nexus/v3/provisioning/queues/${t.tenant}/Sales`)
      .set(admin)
      .send({ endpoints: ['GlobalChatSwitchboard'], agents: agents.map(a => a.id), offerTimeoutMs })
      .expect(201);
    for (const agent of agents) {
      await request(api.url)
        .post('/nexus/v3/agent/presence')
        .set('Authorization', `Bearer ${agent.token}`)
        .send({ ready: true, capacity })
        .expect(200);
    }
    return { api, t, agents, admin };
  }

  it('3 agents of capacity 2 and 20 chats: never more than 2 each, the backlog drains oldest first', async () => {
    const { api, t, agents, admin } = await setup(3, 2);
    await startRouting();
    const sockets = agents.map(agent => connect(api.url, '/agent', { token: agent.token }));
    await Promise.all(sockets.map(s => s.connected));
    // Every agent accepts what it is offered.
    acceptOffers(
      api.url,
      sockets.map((s, i) => ({ socket: s.socket, token: (agents[i] as { token: string }).token })),
      true,
    );

    const interactions: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname: `Customer ${i}`, endpoint: 'GlobalChatSwitchboard' } })
        .expect(201);
      interactions.push(res.body.data.interactionId);
    }
    const stats = async () =>
      (
        await request(api.url)
          .get(`/nexus/v3/provisioning/queues/${t.tenant}/Sales`)
          .set(admin)
          .expect(200)
      ).body.data.stats;
    await eventually(
      async () => {
        const s = await stats();
        return s.assigned === 6 && s.waiting === 14;
      },
      15_000,
      '6 assigned, 14 waiting',
    );
    expect((await loads(h())).map(l => l.n)).toEqual([2, 2, 2]);
    const assigned = await h().db.anyFirst(sql.type(z.object({ id: z.string() }))`
      SELECT id FROM interactions WHERE routing_state = 'assigned' ORDER BY id`);
    expect([...assigned].sort()).toEqual(interactions.slice(0, 6).sort());
    // Each agent's socket heard of its own assignments.
    await eventually(
      () => sockets.every(s => s.received.filter(e => e.name === 'assigned').length === 2),
      10_000,
      'assigned events',
    );

    // Freeing capacity drains the backlog, oldest first, to the agent who has room.
    for (let round = 0; round < 14; round++) {
      const agent = agents[round % 3] as { id: string; token: string };
      const mine = await h().db.oneFirst(sql.type(z.object({ id: z.string() }))`
        SELECT id FROM interactions WHERE assigned_agent_id = ${agent.id} AND state = 'open' ORDER BY queued_at LIMIT 1`);
      await request(api.url)
        .post(`/nexus/v3/agent/interactions/${mine}/done`)
        .set('Authorization', `Bearer ${agent.token}`)
        .expect(200);
      const next = interactions[6 + round] as string;
      await eventually(
        async () =>
          (await h().db.maybeOneFirst(sql.type(z.object({ a: z.string().nullable() }))`
        SELECT assigned_agent_id::text AS a FROM interactions WHERE id = ${next}`)) === agent.id,
        10_000,
        `interaction ${6 + round} to reach the freed agent`,
      );
      expect((await loads(h())).every(l => l.n <= 2)).toBe(true);
    }
    expect((await stats()).waiting).toBe(0);
    // The last offer's acceptance may still be on its way.
    await eventually(
      async () =>
        (await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM routing_decisions WHERE decision = 'accepted'`)) === 20,
      10_000,
      'every offer accepted',
    );
    expect(await stats()).toMatchObject({ waiting: 0, offered: 20, accepted: 20, abandoned: 0 });
    const decisions = await h().db.any(sql.type(z.object({ decision: z.string(), n: z.number() }))`
      SELECT decision, count(*)::int AS n FROM routing_decisions GROUP BY decision ORDER BY decision`);
    expect(decisions).toEqual([
      { decision: 'accepted', n: 20 },
      { decision: 'offered', n: 20 },
      { decision: 'queued', n: 20 },
    ]);
    // Routing events match the published catalogue too.
    for (const event of sockets.flatMap(s => s.received)) {
      if (!event.type) continue;
      const parsed = EVENT_DATA[event.type as keyof typeof EVENT_DATA].safeParse(event.data);
      expect(parsed.success, `${event.type}: ${JSON.stringify(parsed.error?.issues[0])}`).toBe(
        true,
      );
    }
    for (const s of sockets) s.socket.disconnect();
  });

  it('concurrent routers assign each interaction once and never exceed capacity', async () => {
    const { api, t } = await setup(5, 3);
    // 60 chats wait (no worker routes them: they are queued by hand, as the processor would).
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const res = await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname: `C${i}`, endpoint: 'GlobalChatSwitchboard' } })
        .expect(201);
      ids.push(res.body.data.interactionId);
    }
    await h().db.query(sql.unsafe`
      UPDATE interactions SET queue_name = 'Sales', routing_state = 'queued', queued_at = now() + (random() * interval '1 second')`);
    const results = await Promise.all(
      Array.from({ length: 12 }, () => routeQueue(h().db, t.tenant, 'Sales', () => undefined)),
    );
    expect(results.reduce((a, b) => a + b, 0)).toBe(15);
    const perAgent = await loads(h());
    expect(perAgent).toHaveLength(5);
    expect(perAgent.every(l => l.n === 3)).toBe(true);
    const twice = await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM (SELECT interaction_id FROM routing_decisions WHERE decision = 'offered'
        GROUP BY interaction_id HAVING count(*) > 1) d`);
    expect(twice).toBe(0);
  });

  it('moves an ignored offer on after its timeout; a rejected one too; stale accepts are refused', async () => {
    const { api, t, agents } = await setup(2, 1, 1_000);
    await startRouting();
    const sockets = agents.map(agent => connect(api.url, '/agent', { token: agent.token }));
    await Promise.all(sockets.map(s => s.connected));
    const started = await request(api.url)
      .post('/nexus/v3/chat/sessions')
      .set('x-api-key', t.chatKey)
      .send({ data: { nickname: 'Ola', endpoint: 'GlobalChatSwitchboard' } })
      .expect(201);
    const interaction = started.body.data.interactionId as string;
    const offeredTo = () =>
      h().db.maybeOneFirst(sql.type(z.object({ a: z.string().nullable() }))`
        SELECT assigned_agent_id::text AS a FROM interactions WHERE id = ${interaction} AND routing_state = 'offered'`);
    const first = (await eventually(offeredTo, 10_000, 'the first offer')) as string;
    const firstIndex = agents.findIndex(a => a.id === first);
    const second = agents[1 - firstIndex] as { id: string; token: string };
    const firstAgent = agents[firstIndex] as { id: string; token: string };
    await eventually(
      () => (sockets[firstIndex]?.received ?? []).some(e => e.name === 'offer'),
      5_000,
      'the offer event',
    );

    // Ignored: after the timeout it goes to the other agent.
    const offeredAt = Date.now();
    await eventually(async () => (await offeredTo()) === second.id, 10_000, 'the offer to move on');
    expect(Date.now() - offeredAt).toBeGreaterThanOrEqual(500);
    const late = await request(api.url)
      .post(`/nexus/v3/agent/interactions/${interaction}/accept`)
      .set('Authorization', `Bearer ${firstAgent.token}`)
      .expect(409);
    expect(late.body.status.code).toBe('NEXUS_ERR_OFFER_INVALID');

    // Rejected: nobody else may take it (the first let it expire), so it waits.
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${interaction}/reject`)
      .set('Authorization', `Bearer ${second.token}`)
      .expect(200);
    const state = await h().db.oneFirst(sql.type(z.object({ s: z.string().nullable() }))`
      SELECT routing_state AS s FROM interactions WHERE id = ${interaction}`);
    expect(state).toBe('queued');
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${interaction}/accept`)
      .set('Authorization', `Bearer ${second.token}`)
      .expect(409);
    const decisions = await h().db.anyFirst(sql.type(z.object({ decision: z.string() }))`
      SELECT decision FROM routing_decisions WHERE interaction_id = ${interaction} ORDER BY id`);
    expect(decisions).toEqual(['queued', 'offered', 'expired', 'offered', 'rejected']);
    for (const s of sockets) s.socket.disconnect();
  });

  it('takes a returning customer to their last agent, and a parked chat back to its agent', async () => {
    const { api, t, agents } = await setup(2, 2);
    await startRouting();
    const sockets = agents.map(agent => connect(api.url, '/agent', { token: agent.token }));
    await Promise.all(sockets.map(s => s.connected));
    // Every agent accepts what it is offered.
    acceptOffers(
      api.url,
      sockets.map((s, i) => ({ socket: s.socket, token: (agents[i] as { token: string }).token })),
    );
    const chat = async (nickname: string, email: string) =>
      (
        await request(api.url)
          .post('/nexus/v3/chat/sessions')
          .set('x-api-key', t.chatKey)
          .send({ data: { nickname, email, endpoint: 'GlobalChatSwitchboard' } })
          .expect(201)
      ).body.data as { id: string; clientToken: string; interactionId: string };
    const agentOf = (interactionId: string) =>
      eventually(
        () =>
          h().db.maybeOneFirst(sql.type(z.object({ a: z.string().nullable() }))`
            SELECT assigned_agent_id::text AS a FROM interactions
            WHERE id = ${interactionId} AND routing_state = 'assigned'`),
        10_000,
        'the assignment',
      ) as Promise<string>;
    const tokenOf = (id: string) => (agents.find(a => a.id === id) as { token: string }).token;

    const first = await chat('Pat', 'pat@example.com');
    const patAgent = await agentOf(first.interactionId);
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${first.interactionId}/done`)
      .set('Authorization', `Bearer ${tokenOf(patAgent)}`)
      .expect(200);
    // The other agent has been idle longer, yet Pat's new chat goes to Pat's last agent.
    const second = await chat('Pat', 'PAT@example.com');
    expect(await agentOf(second.interactionId)).toBe(patAgent);

    // Parked: the agent's capacity frees up; when Pat writes, the chat goes back to that agent.
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${second.interactionId}/park`)
      .set('Authorization', `Bearer ${tokenOf(patAgent)}`)
      .expect(200);
    const presence = await request(api.url)
      .get('/nexus/v3/agent/presence')
      .set('Authorization', `Bearer ${tokenOf(patAgent)}`)
      .expect(200);
    expect(presence.body.data.load).toBe(0);
    await request(api.url)
      .post(`/nexus/v3/chat/sessions/${second.id}/messages`)
      .set('x-nexus-client-key', second.clientToken)
      .send({ data: { text: 'I am back' } })
      .expect(202);
    expect(await agentOf(second.interactionId)).toBe(patAgent);
    const decisions = await h().db.anyFirst(sql.type(z.object({ decision: z.string() }))`
      SELECT decision FROM routing_decisions WHERE interaction_id = ${second.interactionId} ORDER BY id`);
    expect(decisions).toEqual([
      'queued',
      'offered',
      'accepted',
      'parked',
      'requeued',
      'offered',
      'accepted',
    ]);
    // Marking Done what you do not work on, parking what is not yours or what is done: refused.
    const notMine = await request(api.url)
      .post(`/nexus/v3/agent/interactions/${second.interactionId}/done`)
      .set(
        'Authorization',
        `Bearer ${(agents.find(a => a.id !== patAgent) as { token: string }).token}`,
      )
      .expect(409);
    expect(notMine.body.status.code).toBe('NEXUS_ERR_NOT_ASSIGNED');
    const other = agents.find(a => a.id !== patAgent) as { token: string };
    const foreign = await request(api.url)
      .post(`/nexus/v3/agent/interactions/${second.interactionId}/park`)
      .set('Authorization', `Bearer ${other.token}`)
      .expect(409);
    expect(foreign.body.status.code).toBe('NEXUS_ERR_NOT_ASSIGNED');
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${first.interactionId}/park`)
      .set('Authorization', `Bearer ${tokenOf(patAgent)}`)
      .expect(409);
    for (const s of sockets) s.socket.disconnect();
  });

  it('transfers to another queue or agent, and refuses bad transfers', async () => {
    const { api, t, agents, admin } = await setup(3, 2);
    const [p1, p2, q] = agents as [
      { id: string; token: string },
      { id: string; token: string },
      { id: string; token: string },
    ];
    await request(api.url)
      .put(`/nexus/v3/provisioning/endpoints/${t.tenant}/SupportLine`)
      .set(admin)
      .send({})
      .expect(201);
    await request(api.url)
      .put(`/nexus/v3/provisioning/queues/${t.tenant}/Sales`)
      .set(admin)
      .send({ endpoints: ['GlobalChatSwitchboard'], agents: [p1.id, p2.id] })
      .expect(200);
    await request(api.url)
      .put(`/nexus/v3/provisioning/queues/${t.tenant}/Support`)
      .set(admin)
      .send({ endpoints: ['SupportLine'], agents: [q.id] })
      .expect(201);
    await startRouting();
    const sockets = agents.map(agent => connect(api.url, '/agent', { token: agent.token }));
    await Promise.all(sockets.map(s => s.connected));
    // Every agent accepts what it is offered.
    acceptOffers(
      api.url,
      sockets.map((s, i) => ({ socket: s.socket, token: (agents[i] as { token: string }).token })),
    );
    const started = await request(api.url)
      .post('/nexus/v3/chat/sessions')
      .set('x-api-key', t.chatKey)
      .send({ data: { nickname: 'Tom', endpoint: 'GlobalChatSwitchboard' } })
      .expect(201);
    const id = started.body.data.interactionId as string;
    const assignedTo = (expected: string) =>
      eventually(
        async () =>
          (await h().db.maybeOneFirst(sql.type(z.object({ a: z.string().nullable() }))`
            SELECT assigned_agent_id::text AS a FROM interactions WHERE id = ${id} AND routing_state = 'assigned'`)) ===
          expected,
        10_000,
        `assignment to ${expected}`,
      );
    const owner = await eventually(
      () =>
        h().db.maybeOneFirst(sql.type(z.object({ a: z.string().nullable() }))`
          SELECT assigned_agent_id::text AS a FROM interactions WHERE id = ${id} AND routing_state = 'assigned'`),
      10_000,
      'the first assignment',
    );
    const from = agents.find(a => a.id === owner) as { id: string; token: string };
    const colleague = from.id === p1.id ? p2 : p1;
    const transfer = (who: { token: string }, body: object) =>
      request(api.url)
        .post(`/nexus/v3/agent/interactions/${id}/transfer`)
        .set('Authorization', `Bearer ${who.token}`)
        .send(body);

    const unknown = await transfer(from, { queue: 'Nowhere' }).expect(400);
    expect(unknown.body.status).toMatchObject({
      code: 'NEXUS_ERR_VALIDATION',
      field: 'body.queue',
    });
    const notInQueue = await transfer(from, { agentId: q.id }).expect(400);
    expect(notInQueue.body.status.field).toBe('body.agentId');
    expect((await transfer(colleague, { queue: 'Support' }).expect(409)).body.status.code).toBe(
      'NEXUS_ERR_NOT_ASSIGNED',
    );
    await transfer(from, { queue: 'Sales', extra: 1 }).expect(400);

    // To a colleague of the same queue, then to another queue.
    await transfer(from, { agentId: colleague.id }).expect(200);
    await assignedTo(colleague.id);
    await transfer(colleague, { queue: 'Support' }).expect(200);
    await assignedTo(q.id);
    const decisions = await h().db.anyFirst(sql.type(z.object({ decision: z.string() }))`
      SELECT decision FROM routing_decisions WHERE interaction_id = ${id} ORDER BY id`);
    expect(decisions).toEqual([
      'queued',
      'offered',
      'accepted',
      'transferred',
      'offered',
      'accepted',
      'transferred',
      'offered',
      'accepted',
    ]);
    // Each hand-over is an event (with its seq), and every event matches the catalogue.
    const seen = sockets.flatMap(s => s.received).filter(e => e.type && e.interactionId === id);
    await eventually(
      () => sockets.flatMap(s => s.received).filter(e => e.name === 'queued').length >= 2,
      5_000,
      'queued events',
    );
    for (const event of seen) {
      expect(
        EVENT_DATA[event.type as keyof typeof EVENT_DATA].safeParse(event.data).success,
        event.type,
      ).toBe(true);
    }
    for (const s of sockets) s.socket.disconnect();
  });

  it('exposes queue statistics as metrics and counts abandoned chats', async () => {
    const { api, t, agents } = await setup(1, 1);
    await request(api.url)
      .post('/nexus/v3/agent/presence')
      .set('Authorization', `Bearer ${(agents[0] as { token: string }).token}`)
      .send({ ready: false })
      .expect(200);
    await startRouting();
    setRoutingStatsSource(() => routingQueueStats(h().db));
    const started = await request(api.url)
      .post('/nexus/v3/chat/sessions')
      .set('x-api-key', t.chatKey)
      .send({ data: { nickname: 'Una', endpoint: 'GlobalChatSwitchboard' } })
      .expect(201);
    const gauge = async (name: string) =>
      new RegExp(`^${name}\\{tenant="${t.tenant}",queue="Sales"\\} (\\S+)$`, 'm').exec(
        await registry.metrics(),
      )?.[1];
    await eventually(
      async () => (await gauge('nexus_routing_queue_waiting')) === '1',
      10_000,
      'one waiting',
    );
    expect(Number(await gauge('nexus_routing_queue_oldest_wait_seconds'))).toBeGreaterThanOrEqual(
      0,
    );
    expect(await gauge('nexus_routing_queue_agents_ready')).toBe('0');
    const abandoned = async () =>
      (await routingDecisionsTotal.get()).values.find(v => v.labels.decision === 'abandoned')
        ?.value ?? 0;
    const before = await abandoned();
    await request(api.url)
      .post(`/nexus/v3/chat/sessions/${started.body.data.id}/end`)
      .set('x-nexus-client-key', started.body.data.clientToken)
      .expect(200);
    expect(await abandoned()).toBe(before + 1);
    expect(await gauge('nexus_routing_queue_waiting')).toBe('0');
    setRoutingStatsSource(undefined);
  });

  it('refuses bad queue definitions and changes nothing', async () => {
    const { api, t, admin } = await setup(1, 2);
    const put = (name: string, body: object) =>
      request(api.url)
        .put(`/nexus/v3/provisioning/queues/${t.tenant}/${name}`)
        .set(admin)
        .send(body);
    const unknownEndpoint = await put('Support', { endpoints: ['Nowhere'] }).expect(400);
    expect(unknownEndpoint.body.status).toMatchObject({
      code: 'NEXUS_ERR_VALIDATION',
      field: 'body.endpoints.0',
    });
    const unknownAgent = await put('Support', {
      agents: ['00000000-0000-4000-8000-000000000000'],
    }).expect(400);
    expect(unknownAgent.body.status.field).toBe('body.agents.0');
    const taken = await put('Support', { endpoints: ['GlobalChatSwitchboard'] }).expect(409);
    expect(taken.body.status.code).toBe('NEXUS_ERR_ENDPOINT_TAKEN');
    await put('bad name', {}).expect(400);
    const list = await request(api.url)
      .get(`/nexus/v3/provisioning/queues/${t.tenant}`)
      .set(admin)
      .expect(200);
    expect(list.body.data.items.map((q: { name: string }) => q.name)).toEqual(['Sales']);
  });
});

describe('agent presence over the socket', () => {
  const h = useHarness({ NEXUS_AGENT_DISCONNECT_GRACE_MS: '500' });

  it('sets presence with an ack, survives a quick reconnect, and goes not ready after the grace', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app);
    const presence = async () =>
      (
        await request(api.url)
          .get('/nexus/v3/agent/presence')
          .set('Authorization', `Bearer ${t.agent.token}`)
          .expect(200)
      ).body.data as { ready: boolean; capacity: number };

    let agent = connect(api.url, '/agent', { token: t.agent.token });
    await agent.connected;
    const ack = await agent.socket
      .timeout(5_000)
      .emitWithAck('presence', { ready: true, capacity: 4 });
    expect(ack).toMatchObject({ status: { code: 0 }, data: { ready: true, capacity: 4, load: 0 } });
    const bad = await agent.socket.timeout(5_000).emitWithAck('presence', { capacity: -1 });
    expect(bad.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field: 'capacity' });

    // A quick reconnect keeps the agent ready.
    agent.socket.disconnect();
    agent = connect(api.url, '/agent', { token: t.agent.token });
    await agent.connected;
    await new Promise(resolve => setTimeout(resolve, 900));
    expect(await presence()).toMatchObject({ ready: true, capacity: 4 });

    // Gone for longer than the grace: not ready.
    agent.socket.disconnect();
    await eventually(
      async () => (await presence()).ready === false,
      5_000,
      'not ready after the grace',
    );
  });
});

describe('undelivered interactions', () => {
  const h = useHarness({}, { jobOptions: { 'outbound-sms': { attempts: 1 } } });

  it('flags the interaction of an outbound message that finally failed, for the undelivered view', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app);
    await h().startWorkers({
      processors: {
        inbound: createInboundProcessor({ db: h().db, publisher: h().publisher }),
        // The outbound SMS provider refuses everything: a permanent failure.
        'outbound-sms': () =>
          Promise.reject(new UnrecoverableError('provider refused: 21610 unsubscribed recipient')),
      },
      select: ['inbound', 'outbound-sms'],
    });
    const session = (
      await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname: 'Vic', endpoint: 'GlobalChatSwitchboard' } })
        .expect(201)
    ).body.data;
    const agentAuth = `Bearer ${t.agent.token}`;
    const sent = await request(api.url)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/messages`)
      .set('Authorization', agentAuth)
      .send({ text: 'Your order shipped' })
      .expect(201);
    const agent = connect(api.url, '/agent', { token: t.agent.token });
    await agent.connected;
    await enqueueDurably(h().enqueue, outboundSmsQueue, {
      tenantId: t.tenant,
      messageId: sent.body.data.id,
    });

    const view = await eventually(
      async () => {
        const res = await request(api.url)
          .get('/nexus/v3/agent/undelivered')
          .set('Authorization', agentAuth)
          .expect(200);
        return res.body.data.items.length === 1 ? res.body.data.items : undefined;
      },
      10_000,
      'the undelivered view',
    );
    expect(view[0]).toMatchObject({
      id: session.interactionId,
      reason: 'provider refused: 21610 unsubscribed recipient',
    });
    await eventually(
      () => agent.received.some(e => e.name === 'undelivered'),
      5_000,
      'the undelivered event',
    );
    const event = agent.received.find(e => e.name === 'undelivered');
    expect(EVENT_DATA['interaction.undelivered'].safeParse(event?.data).success).toBe(true);
    // A failure without a code of its own: the generic one, on the view and the event.
    expect(view[0].code).toBe('NEXUS_ERR_WORK_FAILED');
    expect((event?.data as { code?: unknown } | undefined)?.code).toBe('NEXUS_ERR_WORK_FAILED');
    // The failure is also an operational undelivered record, replayable.
    const records = await request(api.url)
      .get('/nexus/v3/undelivered?queue=outbound-sms')
      .set('Authorization', `Bearer ${h().config.adminToken}`)
      .expect(200);
    expect(records.body.data.items).toHaveLength(1);

    // The agent sends it again (the conversation page's "Send again"): followed up, the
    // conversation leaves the view.
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/messages`)
      .set('Authorization', agentAuth)
      .send({ text: 'Your order shipped', clientMessageId: `resend-${sent.body.data.id}` })
      .expect(201);
    const after = await request(api.url)
      .get('/nexus/v3/agent/undelivered')
      .set('Authorization', agentAuth)
      .expect(200);
    expect(after.body.data.items).toEqual([]);
    agent.socket.disconnect();
  });
});
