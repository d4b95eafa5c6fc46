import { sql } from 'slonik';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createAgent, provisionChatTenant } from '../helpers/chat.js';
import { eventually, useHarness } from '../helpers/harness.js';
import { startHubProcess, type HubProcess } from '../helpers/processes.js';

describe('routing across processes', () => {
  const h = useHarness();
  const processes: HubProcess[] = [];
  afterEach(() => {
    for (const p of processes.splice(0)) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  });

  it('two worker processes route 200 chats arriving at once: each offered once, capacity never exceeded', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app, undefined, { queue: false });
    const admin = { Authorization: `Bearer ${h().config.adminToken}`, 'x-ccid': t.tenant };
    const agents = [{ id: t.agent.id, token: t.agent.token }];
    for (let i = 1; i < 10; i++) {
      agents.push(await createAgent(h(), api.url, t.tenant, `a${i}`, `A${i}`));
    }
    await request(api.url)
      .put(`/nexus/v3/provisioning/queues/${t.tenant}/Sales`)
      .set(admin)
      .send({ endpoints: ['GlobalChatSwitchboard'], agents: agents.map(a => a.id) })
      .expect(201);
    for (const agent of agents) {
      await request(api.url)
        .post('/nexus/v3/agent/presence')
        .set('Authorization', `Bearer ${agent.token}`)
        .send({ ready: true, capacity: 5 })
        .expect(200);
    }
    const workers = await Promise.all([
      startHubProcess(h(), 'worker', { NEXUS_WORKER_QUEUES: 'inbound' }),
      startHubProcess(h(), 'worker', { NEXUS_WORKER_QUEUES: 'inbound' }),
    ]);
    processes.push(...workers);

    // 200 chats at once, on a key whose rate limit allows it.
    const burstKey = (
      await request(api.url)
        .post('/nexus/v3/apikeys')
        .set(admin)
        .send({
          tenant: t.tenant,
          name: 'burst',
          permissions: ['nexus:consumer:chat'],
          capacity: 1_000,
        })
        .expect(201)
    ).body.key as string;
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        request(api.url)
          .post('/nexus/v3/chat/sessions')
          .set('x-api-key', burstKey)
          .send({ data: { nickname: `C${i}`, endpoint: 'GlobalChatSwitchboard' } })
          .expect(201),
      ),
    );
    const loads = () =>
      h().db.anyFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM interactions
        WHERE routing_state IN ('offered', 'assigned') AND state = 'open' GROUP BY assigned_agent_id`);
    const byToken = new Map(agents.map(a => [a.id, a.token]));
    let finished = 0;
    while (finished < 200) {
      // Wait for the offers the free capacity allows, then accept and finish them.
      const offers = (await eventually(
        async () => {
          const rows = await h().db.any(sql.type(z.object({ id: z.string(), agent: z.string() }))`
          SELECT id, assigned_agent_id::text AS agent FROM interactions
          WHERE routing_state = 'offered' AND state = 'open'`);
          const expected = Math.min(50, 200 - finished);
          return rows.length === expected ? rows : undefined;
        },
        20_000,
        `offers after ${finished} finished`,
      )) as readonly { id: string; agent: string }[];
      expect((await loads()).every(n => n <= 5)).toBe(true);
      for (const offer of offers) {
        const token = byToken.get(offer.agent) as string;
        await request(api.url)
          .post(`/nexus/v3/agent/interactions/${offer.id}/accept`)
          .set('Authorization', `Bearer ${token}`)
          .expect(200);
      }
      for (const offer of offers) {
        const token = byToken.get(offer.agent) as string;
        await request(api.url)
          .post(`/nexus/v3/agent/interactions/${offer.id}/done`)
          .set('Authorization', `Bearer ${token}`)
          .expect(200);
      }
      finished += offers.length;
    }
    const offeredTwice = await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM (SELECT interaction_id FROM routing_decisions WHERE decision = 'offered'
        GROUP BY interaction_id HAVING count(*) > 1) d`);
    expect(offeredTwice).toBe(0);
    const accepted = await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM routing_decisions WHERE decision = 'accepted'`);
    expect(accepted).toBe(200);
    expect(await Promise.all(workers.map(w => w.stop()))).toEqual([0, 0]);
  });
});
