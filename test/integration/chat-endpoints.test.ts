import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { provisionChatTenant } from '../helpers/chat.js';
import { eventually, useHarness } from '../helpers/harness.js';

describe('chat endpoints', () => {
  const h = useHarness();

  it('refuses a chat that would not be routed (no endpoint, unknown, or leading to no queue) and stores nothing', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app);
    const admin = { Authorization: `Bearer ${h().config.adminToken}` };
    // An endpoint no queue serves.
    await request(api.url)
      .put(`/nexus/v3/provisioning/endpoints/${t.tenant}/Orphan`)
      .set(admin)
      .send({})
      .expect(201);
    const count = () =>
      h().db.one(sql.type(z.object({ sessions: z.number(), interactions: z.number() }))`
        SELECT (SELECT count(*)::int FROM chat_sessions) AS sessions,
               (SELECT count(*)::int FROM interactions) AS interactions`);
    const start = (data: Record<string, string>) =>
      request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .type('form')
        .send(Object.fromEntries(Object.entries(data).map(([k, v]) => [`data[${k}]`, v])));
    for (const [what, data] of [
      ['no endpoint', { nickname: 'Zed' }],
      ['an empty endpoint', { nickname: 'Zed', endpoint: '' }],
      ['an unknown endpoint', { nickname: 'Zed', endpoint: 'Nowhere' }],
      ['an endpoint without a queue', { nickname: 'Zed', endpoint: 'Orphan' }],
    ] as const) {
      const res = await start(data).expect(400);
      expect(res.body.status, what).toMatchObject({
        code: 'INVALID_ENDPOINT',
        field: 'body.data.endpoint',
      });
    }
    expect(await count()).toEqual({ sessions: 0, interactions: 0 });

    // An endpoint that leads to a queue: the chat waits in it.
    await h().startWorkers({
      processors: { inbound: createInboundProcessor({ db: h().db, publisher: h().publisher }) },
      select: ['inbound'],
    });
    const started = await start({ nickname: 'Amy', endpoint: 'GlobalChatSwitchboard' }).expect(201);
    const interactionId = started.body.data.interactionId as string;
    const routed = await eventually(
      () =>
        h().db.maybeOne(sql.type(z.object({ queue_name: z.string(), routing_state: z.string() }))`
          SELECT queue_name, routing_state FROM interactions
          WHERE id = ${interactionId} AND routing_state IS NOT NULL`),
      10_000,
      'the chat queued',
    );
    expect(routed).toEqual({ queue_name: 'Main', routing_state: 'queued' });
  });

  it('answers 201 when an endpoint is created and 200 when it is replaced', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app);
    const put = () =>
      request(api.url)
        .put(`/nexus/v3/provisioning/endpoints/${t.tenant}/Desk`)
        .set('Authorization', `Bearer ${h().config.adminToken}`)
        .send({ description: 'front desk' });
    expect((await put().expect(201)).body.data).toMatchObject({ name: 'Desk' });
    expect((await put().expect(200)).body.data).toMatchObject({ description: 'front desk' });
  });

  it('pages the open interactions with a cursor', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname: `P${i}`, endpoint: 'GlobalChatSwitchboard' } })
        .expect(201);
      ids.push(res.body.data.interactionId as string);
    }
    const list = (query: string) =>
      request(api.url)
        .get(`/nexus/v3/agent/interactions${query}`)
        .set('Authorization', `Bearer ${t.agent.token}`);
    const seen: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const res = await list(`?limit=2${after ? `&after=${after}` : ''}`).expect(200);
      const data = res.body.data as { items: { id: string }[]; next: string | null };
      seen.push(...data.items.map(item => item.id));
      after = data.next;
      if (!after) break;
    }
    expect(seen).toEqual(ids);
    expect((await list('').expect(200)).body.data.items).toHaveLength(5);
    for (const [query, field] of [
      ['?after=nope', 'query.after'],
      ['?after=00000000-0000-4000-8000-000000000000', 'query.after'],
      ['?limit=0', 'query.limit'],
      ['?limit=501', 'query.limit'],
    ] as const) {
      const res = await list(query).expect(400);
      expect(res.body.status, query).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field });
    }
  });
});
