import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { buildApp, type BuiltApp } from '../../api/app.js';
import { authRejectedTotal } from '../../lib/metrics.js';
import { SecretBox } from '../../lib/secrets.js';
import { InvalidationBus } from '../../lib/invalidation.js';
import { ServiceDirectory } from '../../db/service-directory.js';
import { createHarness, eventually, type Harness } from '../helpers/harness.js';
import { startIdentityProvider, type IdentityProvider } from '../helpers/identity-provider.js';

const A = 'tenant-a';

const rejected = async (code: string) =>
  (await authRejectedTotal.get()).values.find(value => value.labels.code === code)?.value ?? 0;
const B = 'tenant-b';

interface Fixture {
  admin: string;
  /** Provisioning keys of A and B. */
  keyA: string;
  keyB: string;
  /** A chat key of B and its id. */
  chatKeyB: { id: string; key: string };
}

async function provision(app: BuiltApp, adminToken: string): Promise<Fixture> {
  const admin = `Bearer ${adminToken}`;
  for (const id of [A, B]) {
    await request(app)
      .post('/nexus/v3/provisioning/tenants')
      .set('Authorization', admin)
      .send({ id, name: id })
      .expect(201);
  }
  const key = async (tenant: string, permissions: string[]) =>
    (
      await request(app)
        .post('/nexus/v3/apikeys')
        .set('Authorization', admin)
        .send({ tenant, name: `${tenant} ${permissions.join(' ')}`, permissions })
        .expect(201)
    ).body as { id: string; key: string };
  const keyA = (await key(A, ['nexus:provisioning:*'])).key;
  const keyB = (await key(B, ['nexus:provisioning:*'])).key;
  const chatKeyB = await key(B, ['nexus:consumer:chat']);
  await request(app)
    .post(`/nexus/v3/provisioning/services/${B}/SMS`)
    .set('x-api-key', keyB)
    .send({ url: 'N/A', data: { provider: 'Async' } })
    .expect(201);
  await request(app)
    .put(`/nexus/v3/provisioning/channels/${B}/chat.Main`)
    .set('x-api-key', keyB)
    .send({ channelId: '15550001', endpoint: 'chat.Main' })
    .expect(201);
  return { admin, keyA, keyB, chatKeyB };
}

describe('authorization', () => {
  let idp: IdentityProvider;
  let h: Harness;
  const extraBuses: InvalidationBus[] = [];

  beforeAll(async () => {
    idp = await startIdentityProvider();
  });
  afterAll(() => idp.close());
  beforeEach(async () => {
    h = await createHarness({ NEXUS_JWT_ISSUER: idp.issuer, NEXUS_JWT_JWKS_URL: idp.jwksUrl });
  });
  afterEach(async () => {
    for (const bus of extraBuses.splice(0)) await bus.close();
    await h.close();
  });

  /** Another API replica: its own app, caches and invalidation subscription. */
  async function replica(): Promise<BuiltApp> {
    const bus = InvalidationBus.create(h.config, h.redis, h.log, 'replica');
    extraBuses.push(bus);
    await eventually(() => bus.live, 5_000, 'the replica bus');
    return buildApp({
      config: h.config,
      log: h.log,
      db: h.db,
      queues: h.queues,
      redis: h.redis,
      bus,
    });
  }

  it("keeps every route of tenant B away from tenant A's key", async () => {
    const app = h.app();
    const f = await provision(app, h.config.adminToken);
    const asA = (req: request.Test) => req.set('x-api-key', f.keyA);
    // Chat: a session and an agent in each tenant.
    const chatKeyA = (
      await request(app)
        .post('/nexus/v3/apikeys')
        .set('Authorization', f.admin)
        .send({ tenant: A, name: 'chat', permissions: ['nexus:consumer:chat'] })
        .expect(201)
    ).body.key as string;
    const session = async (key: string, endpoint: string) =>
      (
        await request(app)
          .post('/nexus/v3/chat/sessions')
          .set('x-api-key', key)
          .send({ data: { nickname: 'n', endpoint } })
          .expect(201)
      ).body.data as { id: string; clientToken: string; interactionId: string };
    const agent = async (tenant: string) => {
      const created = await request(app)
        .post('/nexus/v3/agents')
        .set('Authorization', f.admin)
        .set('x-ccid', tenant)
        .send({ username: `agent-${tenant}`, name: 'Agent' })
        .expect(201);
      const token = await request(app)
        .post(`/nexus/v3/agents/${created.body.data.id}/tokens`)
        .set('Authorization', f.admin)
        .set('x-ccid', tenant)
        .expect(201);
      return { id: created.body.data.id as string, token: `Bearer ${token.body.data.token}` };
    };
    const agentA = await agent(A);
    const agentB = await agent(B);
    await request(app)
      .put(`/nexus/v3/provisioning/endpoints/${B}/Sales`)
      .set('x-api-key', f.keyB)
      .send({})
      .expect(201);
    await request(app)
      .put(`/nexus/v3/provisioning/queues/${B}/Sales`)
      .set('x-api-key', f.keyB)
      .send({ endpoints: ['Sales'], agents: [agentB.id] })
      .expect(201);
    await request(app)
      .put(`/nexus/v3/provisioning/endpoints/${A}/Front`)
      .set('Authorization', f.admin)
      .send({})
      .expect(201);
    await request(app)
      .put(`/nexus/v3/provisioning/queues/${A}/Front`)
      .set('Authorization', f.admin)
      .send({ endpoints: ['Front'] })
      .expect(201);
    const sessionA = await session(chatKeyA, 'Front');
    const sessionB = await session(f.chatKeyB.key, 'Sales');
    const asAgentA = (req: request.Test) => req.set('Authorization', agentA.token);
    const withTokenA = (req: request.Test) => req.set('x-nexus-client-key', sessionA.clientToken);
    const chatAttempts = (prefix: string): Record<string, () => request.Test> => ({
      [`POST ${prefix}/sessions`]: () =>
        request(app)
          .post(`${prefix}/sessions`)
          .set('x-api-key', chatKeyA)
          .set('x-ccid', B)
          .send({ data: { nickname: 'x' } }),
      [`GET ${prefix}/sessions/{sessionId}/messages`]: () =>
        withTokenA(request(app).get(`${prefix}/sessions/${sessionB.id}/messages`)),
      [`POST ${prefix}/sessions/{sessionId}/messages`]: () =>
        withTokenA(request(app).post(`${prefix}/sessions/${sessionB.id}/messages`)).send({
          data: { text: 'x' },
        }),
      [`POST ${prefix}/sessions/{sessionId}/typing`]: () =>
        withTokenA(request(app).post(`${prefix}/sessions/${sessionB.id}/typing`)).send({}),
      [`POST ${prefix}/sessions/{sessionId}/read`]: () =>
        withTokenA(request(app).post(`${prefix}/sessions/${sessionB.id}/read`)).send({
          data: { seq: 1 },
        }),
      [`POST ${prefix}/sessions/{sessionId}/end`]: () =>
        withTokenA(request(app).post(`${prefix}/sessions/${sessionB.id}/end`)),
    });
    const attempts: Record<string, () => request.Test> = {
      ...chatAttempts('/nexus/v3/chat'),
      ...chatAttempts('/chat/v3/chat'),
      'POST /nexus/v3/agents': () =>
        asA(request(app).post('/nexus/v3/agents'))
          .set('x-ccid', B)
          .send({ username: 'mole', name: 'x' }),
      'GET /nexus/v3/agents/{id}': () => asA(request(app).get(`/nexus/v3/agents/${agentB.id}`)),
      'PATCH /nexus/v3/agents/{id}': () =>
        asA(request(app).patch(`/nexus/v3/agents/${agentB.id}`)).send({ enabled: false }),
      'POST /nexus/v3/agents/{id}/tokens': () =>
        asA(request(app).post(`/nexus/v3/agents/${agentB.id}/tokens`)),
      'PUT /nexus/v3/agents/{id}/password': () =>
        asA(request(app).put(`/nexus/v3/agents/${agentB.id}/password`)).send({
          password: 'correct horse battery',
        }),
      'DELETE /nexus/v3/agents/{id}/password': () =>
        asA(request(app).delete(`/nexus/v3/agents/${agentB.id}/password`)),
      'PUT /nexus/v3/provisioning/endpoints/{ccid}/{name}': () =>
        asA(request(app).put(`/nexus/v3/provisioning/endpoints/${B}/Sales`)).send({}),
      'GET /nexus/v3/provisioning/endpoints/{ccid}': () =>
        asA(request(app).get(`/nexus/v3/provisioning/endpoints/${B}`)),
      'DELETE /nexus/v3/provisioning/endpoints/{ccid}/{name}': () =>
        asA(request(app).delete(`/nexus/v3/provisioning/endpoints/${B}/Sales`)),
      'PUT /nexus/v3/provisioning/queues/{ccid}/{name}': () =>
        asA(request(app).put(`/nexus/v3/provisioning/queues/${B}/Sales`)).send({}),
      'GET /nexus/v3/provisioning/queues/{ccid}': () =>
        asA(request(app).get(`/nexus/v3/provisioning/queues/${B}`)),
      'GET /nexus/v3/provisioning/queues/{ccid}/{name}': () =>
        asA(request(app).get(`/nexus/v3/provisioning/queues/${B}/Sales`)),
      'DELETE /nexus/v3/provisioning/queues/{ccid}/{name}': () =>
        asA(request(app).delete(`/nexus/v3/provisioning/queues/${B}/Sales`)),
      'GET /nexus/v3/contacts/{id}': () =>
        asAgentA(request(app).get(`/nexus/v3/contacts/${sessionB.interactionId}`)),
      'GET /nexus/v3/agent/interactions/{id}': () =>
        asAgentA(request(app).get(`/nexus/v3/agent/interactions/${sessionB.interactionId}`)),
      'POST /nexus/v3/agent/interactions/{id}/join': () =>
        asAgentA(request(app).post(`/nexus/v3/agent/interactions/${sessionB.interactionId}/join`)),
      'POST /nexus/v3/agent/interactions/{id}/accept': () =>
        asAgentA(
          request(app).post(`/nexus/v3/agent/interactions/${sessionB.interactionId}/accept`),
        ),
      'POST /nexus/v3/agent/interactions/{id}/reject': () =>
        asAgentA(
          request(app).post(`/nexus/v3/agent/interactions/${sessionB.interactionId}/reject`),
        ),
      'POST /nexus/v3/agent/interactions/{id}/park': () =>
        asAgentA(request(app).post(`/nexus/v3/agent/interactions/${sessionB.interactionId}/park`)),
      'POST /nexus/v3/agent/interactions/{id}/transfer': () =>
        asAgentA(
          request(app).post(`/nexus/v3/agent/interactions/${sessionB.interactionId}/transfer`),
        ).send({ queue: 'Sales' }),
      'POST /nexus/v3/agent/interactions/{id}/messages': () =>
        asAgentA(
          request(app).post(`/nexus/v3/agent/interactions/${sessionB.interactionId}/messages`),
        ).send({ text: 'x' }),
      'POST /nexus/v3/agent/interactions/{id}/typing': () =>
        asAgentA(
          request(app).post(`/nexus/v3/agent/interactions/${sessionB.interactionId}/typing`),
        ).send({}),
      'POST /nexus/v3/agent/interactions/{id}/read': () =>
        asAgentA(
          request(app).post(`/nexus/v3/agent/interactions/${sessionB.interactionId}/read`),
        ).send({ seq: 1 }),
      'POST /nexus/v3/agent/interactions/{id}/done': () =>
        asAgentA(request(app).post(`/nexus/v3/agent/interactions/${sessionB.interactionId}/done`)),
      'GET /nexus/v3/agent/interactions/{id}/emails': () =>
        asAgentA(request(app).get(`/nexus/v3/agent/interactions/${sessionB.interactionId}/emails`)),
      'GET /nexus/v3/agent/interactions/{id}/media/{mediaId}': () =>
        asAgentA(
          request(app).get(
            `/nexus/v3/agent/interactions/${sessionB.interactionId}/media/00000000-0000-4000-8000-000000000000`,
          ),
        ),
      'POST /nexus/v3/provisioning/tenants': () =>
        asA(request(app).post('/nexus/v3/provisioning/tenants')).send({ id: B, name: 'x' }),
      'GET /nexus/v3/provisioning/tenants/{id}': () =>
        asA(request(app).get(`/nexus/v3/provisioning/tenants/${B}`)),
      'PATCH /nexus/v3/provisioning/tenants/{id}': () =>
        asA(request(app).patch(`/nexus/v3/provisioning/tenants/${B}`)).send({ name: 'pwned' }),
      'DELETE /nexus/v3/provisioning/tenants/{id}': () =>
        asA(request(app).delete(`/nexus/v3/provisioning/tenants/${B}`)),
      'POST /nexus/v3/apikeys': () =>
        asA(request(app).post('/nexus/v3/apikeys')).send({
          tenant: B,
          name: 'x',
          permissions: ['nexus:consumer:chat'],
        }),
      'GET /nexus/v3/apikeys/{id}': () =>
        asA(request(app).get(`/nexus/v3/apikeys/${f.chatKeyB.id}`)),
      'PATCH /nexus/v3/apikeys/{id}': () =>
        asA(request(app).patch(`/nexus/v3/apikeys/${f.chatKeyB.id}`)).send({ enabled: false }),
      'DELETE /nexus/v3/apikeys/{id}': () =>
        asA(request(app).delete(`/nexus/v3/apikeys/${f.chatKeyB.id}`)),
      'GET /nexus/v3/apikeys': () => asA(request(app).get(`/nexus/v3/apikeys?tenant=${B}`)),
      'POST /nexus/v3/provisioning/services/{ccid}/{serviceName}': () =>
        asA(request(app).post(`/nexus/v3/provisioning/services/${B}/SMS`)).send({
          data: { provider: 'mGage' },
        }),
      'PUT /nexus/v3/provisioning/services/{ccid}/{serviceName}': () =>
        asA(request(app).put(`/nexus/v3/provisioning/services/${B}/SMS`)).send({
          data: { provider: 'mGage' },
        }),
      'PATCH /nexus/v3/provisioning/services/{ccid}/{serviceName}': () =>
        asA(request(app).patch(`/nexus/v3/provisioning/services/${B}/SMS`)).send({
          data: { provider: 'mGage' },
        }),
      'GET /nexus/v3/provisioning/services/{ccid}/{serviceName}': () =>
        asA(request(app).get(`/nexus/v3/provisioning/services/${B}/SMS`)),
      'DELETE /nexus/v3/provisioning/services/{ccid}/{serviceName}': () =>
        asA(request(app).delete(`/nexus/v3/provisioning/services/${B}/SMS`)),
      'GET /nexus/v3/provisioning/services/{ccid}': () =>
        asA(request(app).get(`/nexus/v3/provisioning/services/${B}`)),
      'POST /nexus/v3/provisioning/channels/{ccid}/{name}': () =>
        asA(request(app).post(`/nexus/v3/provisioning/channels/${B}/chat.Main`)).send({
          channelId: '1',
          endpoint: 'x',
        }),
      'PUT /nexus/v3/provisioning/channels/{ccid}/{name}': () =>
        asA(request(app).put(`/nexus/v3/provisioning/channels/${B}/chat.Main`)).send({
          channelId: '1',
          endpoint: 'x',
        }),
      'GET /nexus/v3/provisioning/channels/{ccid}/{name}': () =>
        asA(request(app).get(`/nexus/v3/provisioning/channels/${B}/chat.Main`)),
      'DELETE /nexus/v3/provisioning/channels/{ccid}/{name}': () =>
        asA(request(app).delete(`/nexus/v3/provisioning/channels/${B}/chat.Main`)),
      'GET /nexus/v3/provisioning/channels/{ccid}': () =>
        asA(request(app).get(`/nexus/v3/provisioning/channels/${B}`)),
      'GET /nexus/v3/undelivered': () => asA(request(app).get(`/nexus/v3/undelivered?tenant=${B}`)),
      'POST /nexus/v3/sms/campaigns/{ccid}/{campaign}/records': () =>
        asA(request(app).post(`/nexus/v3/sms/campaigns/${B}/spring/records`)).send({
          records: [{ id: 'r1', from: '15550001', to: '+15557770000', text: 'hi' }],
        }),
      'GET /nexus/v3/sms/campaigns/{ccid}/{campaign}/replies': () =>
        asA(request(app).get(`/nexus/v3/sms/campaigns/${B}/spring/replies`)),
      'GET /nexus/v3/sms/campaigns/{ccid}/{campaign}/records': () =>
        asA(request(app).get(`/nexus/v3/sms/campaigns/${B}/spring/records`)),
      'GET /nexus/v3/sms/consent/{ccid}': () =>
        asA(request(app).get(`/nexus/v3/sms/consent/${B}?address=%2B15557770000`)),
      'POST /nexus/v3/email/campaigns/{ccid}/{campaign}/records': () =>
        asA(request(app).post(`/nexus/v3/email/campaigns/${B}/spring/records`)).send({
          records: [{ id: 'r1', from: 'a@b.example', to: 'c@d.example', subject: 's', text: 't' }],
        }),
      'GET /nexus/v3/email/campaigns/{ccid}/{campaign}/records': () =>
        asA(request(app).get(`/nexus/v3/email/campaigns/${B}/spring/records`)),
      'GET /nexus/v3/email/suppressions/{ccid}': () =>
        asA(request(app).get(`/nexus/v3/email/suppressions/${B}`)),
      'GET /nexus/v3/email/suppressions/{ccid}/{address}': () =>
        asA(request(app).get(`/nexus/v3/email/suppressions/${B}/c@d.example`)),
      'PUT /nexus/v3/email/suppressions/{ccid}/{address}': () =>
        asA(request(app).put(`/nexus/v3/email/suppressions/${B}/c@d.example`)).send({}),
      'DELETE /nexus/v3/email/suppressions/{ccid}/{address}': () =>
        asA(request(app).delete(`/nexus/v3/email/suppressions/${B}/c@d.example`)),
      'GET /nexus/v3/webhooks/{ccid}/targets': () =>
        asA(request(app).get(`/nexus/v3/webhooks/${B}/targets`)),
      'POST /nexus/v3/webhooks/{ccid}/targets/{name}/enable': () =>
        asA(request(app).post(`/nexus/v3/webhooks/${B}/targets/WebhookTransportTarget-crm/enable`)),
      'POST /nexus/v3/webhooks/{ccid}/targets/{name}/replay': () =>
        asA(
          request(app).post(`/nexus/v3/webhooks/${B}/targets/WebhookTransportTarget-crm/replay`),
        ).send({ since: '2026-01-01T00:00:00Z' }),
      'GET /nexus/v3/webhooks/{ccid}/deliveries': () =>
        asA(request(app).get(`/nexus/v3/webhooks/${B}/deliveries`)),
      'GET /nexus/v3/webhooks/{ccid}/deliveries/{id}': () =>
        asA(request(app).get(`/nexus/v3/webhooks/${B}/deliveries/1`)),
      'POST /nexus/v3/webhooks/{ccid}/deliveries/{id}/replay': () =>
        asA(request(app).post(`/nexus/v3/webhooks/${B}/deliveries/1/replay`)),
      'POST /nexus/v3/undelivered/{id}/replay': () =>
        asA(request(app).post('/nexus/v3/undelivered/1/replay')),
      // The AI connector's routes need a cluster key: a tenant's is refused.
      'GET /nexus/v3/provisioning/services/{ccid}/WebhookTransportTarget-ai-connector/secret': () =>
        asA(
          request(app).get(
            `/nexus/v3/provisioning/services/${B}/WebhookTransportTarget-ai-connector/secret`,
          ),
        ),
      'POST /nexus/v3/ai/{ccid}/interactions/{id}/suggestions': () =>
        asA(
          request(app).post(`/nexus/v3/ai/${B}/interactions/${sessionB.interactionId}/suggestions`),
        ).send({
          messageId: sessionB.interactionId,
          connector: 'c',
          provider: 'p',
          suggestions: [],
        }),
      'GET /nexus/v3/ai/{ccid}/interactions/{id}': () =>
        asA(request(app).get(`/nexus/v3/ai/${B}/interactions/${sessionB.interactionId}`)),
      'POST /nexus/v3/ai/{ccid}/interactions/{id}/bot/messages': () =>
        asA(
          request(app).post(
            `/nexus/v3/ai/${B}/interactions/${sessionB.interactionId}/bot/messages`,
          ),
        ).send({ replyTo: sessionB.interactionId, connector: 'c', texts: ['x'] }),
      'POST /nexus/v3/ai/{ccid}/interactions/{id}/bot/handoff': () =>
        asA(
          request(app).post(`/nexus/v3/ai/${B}/interactions/${sessionB.interactionId}/bot/handoff`),
        ).send({ reason: 'intent' }),
      'POST /nexus/v3/undelivered/replay': () =>
        asA(request(app).post('/nexus/v3/undelivered/replay')).send({
          since: '2026-01-01T00:00:00Z',
          tenant: B,
        }),
    };
    // Routes that answer only the caller's own tenant, whatever it asks.
    const scoped = {
      'GET /nexus/v3/agent/queues': async () => {
        // A's queue only, never B's Sales.
        const res = await asAgentA(request(app).get('/nexus/v3/agent/queues')).expect(200);
        expect(res.body.data.items.map((q: { name: string }) => q.name)).toEqual(['Front']);
      },
      'GET /nexus/v3/agent/presence': async () => {
        await asAgentA(request(app).get('/nexus/v3/agent/presence')).expect(200);
      },
      'POST /nexus/v3/agent/presence': async () => {
        const res = await asAgentA(request(app).post('/nexus/v3/agent/presence'))
          .send({ ready: true })
          .expect(200);
        expect(res.body.data).toMatchObject({ ready: true, load: 0 });
        // Only agent A changed.
        const b = await h.db.oneFirst(
          sql.type(
            z.object({ ready: z.boolean() }),
          )`SELECT ready FROM agents WHERE id = ${agentB.id}`,
        );
        expect(b).toBe(false);
      },
      'GET /nexus/v3/agents': async () => {
        const res = await asA(request(app).get('/nexus/v3/agents')).expect(200);
        expect(res.body.data.items.map((a: { id: string }) => a.id)).toEqual([agentA.id]);
      },
      'GET /nexus/v3/agent/offers': async () => {
        const res = await asAgentA(request(app).get('/nexus/v3/agent/offers')).expect(200);
        expect(res.body.data.items).toEqual([]);
      },
      'GET /nexus/v3/agent/undelivered': async () => {
        const res = await asAgentA(request(app).get('/nexus/v3/agent/undelivered')).expect(200);
        expect(res.body.data.items).toEqual([]);
      },
      'GET /nexus/v3/agent/interactions': async () => {
        const res = await asAgentA(request(app).get('/nexus/v3/agent/interactions')).expect(200);
        expect(res.body.data.items.map((i: { id: string }) => i.id)).toEqual([
          sessionA.interactionId,
        ]);
      },
      'POST /nexus/v3/agent/outbound/sms': async () => {
        // B's number is no sender of A's (it reads as unknown), and A has none to default to.
        const named = await asAgentA(request(app).post('/nexus/v3/agent/outbound/sms'))
          .send({ to: '+15557770000', text: 'hi', from: '15550001' })
          .expect(400);
        expect(named.body.status.field).toBe('body.from');
        expect(named.body.status.message).not.toMatch(/Async|chat\.Main|tenant-b/);
        await asAgentA(request(app).post('/nexus/v3/agent/outbound/sms'))
          .send({ to: '+15557770000', text: 'hi' })
          .expect(400);
        const stored = await h.db.oneFirst(
          sql.type(z.object({ n: z.number() }))`
            SELECT count(*)::int AS n FROM interactions WHERE tenant_id = ${B}`,
        );
        expect(stored).toBe(1); // B's own chat session only
      },
      'GET /nexus/v3/agent/consent/sms': async () => {
        const res = await asAgentA(request(app).get('/nexus/v3/agent/consent/sms'))
          .query({ address: '+15557770000', from: '15550001' })
          .expect(400);
        expect(res.body.status.field).toBe('query.from');
      },
      'POST /nexus/v3/agent/outbound/email': async () => {
        // B's email domain is no sender of A's (it reads as unknown), and A has none to default to.
        await request(app)
          .put(`/nexus/v3/provisioning/channels/${B}/cxc.Mail`)
          .set('x-api-key', f.keyB)
          .send({ channelId: 'mail.b.example', channelType: 'email' })
          .expect(201);
        const mail = { to: 'c@d.example', subject: 'hi', text: 'hi' };
        const named = await asAgentA(request(app).post('/nexus/v3/agent/outbound/email'))
          .send({ ...mail, from: 'mail.b.example' })
          .expect(400);
        expect(named.body.status.field).toBe('body.from');
        expect(named.body.status.message).not.toMatch(/cxc\.Mail|tenant-b/);
        const unnamed = await asAgentA(request(app).post('/nexus/v3/agent/outbound/email'))
          .send(mail)
          .expect(400);
        expect(unnamed.body.status.message).toBe(
          'body.from: the tenant has no email channel to send from',
        );
        const stored = await h.db.one(
          sql.type(z.object({ interactions: z.number(), mails: z.number() }))`
            SELECT (SELECT count(*) FROM interactions WHERE tenant_id = ${B})::int AS interactions,
                   (SELECT count(*) FROM email_messages)::int AS mails`,
        );
        expect(stored).toEqual({ interactions: 1, mails: 0 }); // B's own chat session only
      },
      'GET /nexus/v3/agent/consent/email': async () => {
        // B's suppression list is B's own: A's agent reads the address as mailable.
        await request(app)
          .put(`/nexus/v3/email/suppressions/${B}/c@d.example`)
          .set('x-api-key', f.keyB)
          .send({})
          .expect(200);
        const res = await asAgentA(request(app).get('/nexus/v3/agent/consent/email'))
          .query({ address: 'c@d.example' })
          .expect(200);
        expect(res.body.data).toEqual({
          address: 'c@d.example',
          suppressed: false,
          reason: null,
          since: null,
        });
      },
      'GET /nexus/v3/provisioning/tenants': async () => {
        const res = await asA(request(app).get('/nexus/v3/provisioning/tenants')).expect(200);
        const items = res.body.data.items as { id: string }[];
        expect(items.map(t => t.id)).toEqual([A]);
      },
      'POST /nexus/v3/sms/message': async () => {
        const smsKeyA = (
          await request(app)
            .post('/nexus/v3/apikeys')
            .set('Authorization', f.admin)
            .send({ tenant: A, name: 'aggregator', permissions: ['nexus:sms:webhook'] })
            .expect(201)
        ).body.key as string;
        const mo = { device_address: '+15557770000', inbound_address: '15550001', message: 'hi' };
        // B's number is unknown to A; naming B as the user with A's key is refused.
        const own = await request(app)
          .post('/nexus/v3/sms/message')
          .auth(A, smsKeyA)
          .type('form')
          .send(mo)
          .expect(404);
        expect(own.body.status.code).toBe('NEXUS_ERR_SMS_UNKNOWN_CHANNEL');
        await request(app).post('/nexus/v3/sms/message').auth(B, smsKeyA).send(mo).expect(403);
        const stored = await h.db.oneFirst(
          sql.type(z.object({ n: z.number() }))`
            SELECT count(*)::int AS n FROM interactions WHERE tenant_id = ${B}`,
        );
        expect(stored).toBe(1); // B's own chat session only
      },
      'GET /nexus/v3/sms/message': async () => {
        // The same handler as the POST: A's credentials never reach B's numbers.
        await asA(request(app).get('/nexus/v3/sms/message'))
          .query({ device_address: '+15557770000', inbound_address: '15550001', message: 'hi' })
          .expect(403);
      },
      'POST /nexus/v3/sms/receipt': async () => {
        // A receipt only ever looks up messages of the caller's own tenant (sms.test.ts).
        await asA(request(app).post('/nexus/v3/sms/receipt'))
          .send({ messageId: 'x', status: 'delivered' })
          .expect(403);
      },
      'GET /nexus/v3/agent/me': async () => {
        const res = await asAgentA(request(app).get('/nexus/v3/agent/me')).expect(200);
        expect(res.body.data).toMatchObject({ id: agentA.id, tenant: A });
      },
      'POST /auth/v3/agent/renew': async () => {
        // A's token renews A's, and only in A.
        const res = await asAgentA(request(app).post('/auth/v3/agent/renew')).expect(200);
        const me = await request(app)
          .get('/nexus/v3/agent/me')
          .set('Authorization', `Bearer ${res.body.data.token}`)
          .expect(200);
        expect(me.body.data).toMatchObject({ id: agentA.id, tenant: A });
      },
      'POST /auth/v3/agent/token': async () => {
        // A password set in A signs in only in A.
        await request(app)
          .put(`/nexus/v3/agents/${agentA.id}/password`)
          .set('x-api-key', f.keyA)
          .send({ password: 'correct horse battery' })
          .expect(204);
        const signIn = (ccid: string) =>
          request(app)
            .post('/auth/v3/agent/token')
            .send({ ccid, username: `agent-${A}`, password: 'correct horse battery' });
        expect((await signIn(A).expect(200)).body.data.agent).toMatchObject({
          id: agentA.id,
          tenant: A,
        });
        await signIn(B).expect(401);
      },
      'GET /nexus/v3/apikeys/current': async () => {
        const res = await asA(request(app).get('/nexus/v3/apikeys/current')).expect(200);
        expect(res.body.tenant).toBe(A);
      },
    };
    const publicRoutes = [
      'GET /health/live',
      'GET /health/ready',
      'GET /health/detail',
      'GET /nexus/v3/openapi.json',
      // The agent pages' settings: the desktops' origins, which the pages' CSP publishes anyway.
      'GET /ux/config.json',
      // Signed by the hub in the URL it gave Kannel (tested in sms.test.ts).
      'GET /nexus/v3/sms/receipt/kannel',
      'POST /nexus/v3/sms/receipt/kannel',
      // Signed with the channel's api secret of the tenant named by x-ccid (sms.test.ts).
      'POST /nexus/v3/channels/{channelId}/messages',
      'POST /nexus/v3/channels/{channelId}/receipts',
      'POST /nexus/v3/channels/{channelId}/media',
      // Signed as the above (email-conversations.test.ts, email-feedback.test.ts).
      'POST /nexus/v3/channels/{channelId}/emails',
      'POST /nexus/v3/channels/{channelId}/email-receipts',
      // Basic credentials from the tenant's SparkPostEmail secret (email-feedback.test.ts).
      'POST /nexus/v3/email/sparkpost/{ccid}/events',
      // Signed by the hub for one mail in its List-Unsubscribe header (email-campaigns.test.ts).
      'GET /nexus/v3/email/unsubscribe/{ccid}/{id}',
      'POST /nexus/v3/email/unsubscribe/{ccid}/{id}',
    ];
    // Every documented route has a case here: a new route must say how it keeps tenants apart.
    expect([...Object.keys(attempts), ...Object.keys(scoped), ...publicRoutes].sort()).toEqual(
      [...app.api.operations()].sort(),
    );

    for (const [operation, attempt] of Object.entries(attempts)) {
      const res = await attempt();
      // Client-token routes answer the widget's AUTHENTICATION_REQUIRED (401).
      const refusals = operation.includes('/sessions/{sessionId}') ? [401] : [403, 404];
      expect(refusals, `${operation} answered ${res.status}`).toContain(res.status);
      expect(JSON.stringify(res.body)).not.toMatch(/15550001|Async|chat\.Main|tenant-b .*chat/);
    }
    for (const check of Object.values(scoped)) await check();

    // Tenant B is untouched.
    const asB = (req: request.Test) => req.set('x-api-key', f.keyB);
    expect(
      (await asB(request(app).get(`/nexus/v3/provisioning/queues/${B}/Sales`)).expect(200)).body
        .data,
    ).toMatchObject({ endpoints: ['Sales'], agents: [agentB.id] });
    const transcriptB = await request(app)
      .get(`/nexus/v3/chat/sessions/${sessionB.id}/messages`)
      .set('x-nexus-client-key', sessionB.clientToken)
      .expect(200);
    expect(transcriptB.body.data).toMatchObject({ messages: [], state: 'open' });
    expect(
      (await request(app).get(`/nexus/v3/agents/${agentB.id}`).set('Authorization', agentB.token))
        .status,
    ).toBe(403);
    expect(
      (await asB(request(app).get(`/nexus/v3/agents/${agentB.id}`)).expect(200)).body.data,
    ).toMatchObject({ enabled: true });
    expect(
      (await asB(request(app).get(`/nexus/v3/provisioning/endpoints/${B}`)).expect(200)).body.data
        .items,
    ).toHaveLength(1);
    expect(
      (await asB(request(app).get(`/nexus/v3/provisioning/tenants/${B}`)).expect(200)).body.data,
    ).toMatchObject({ name: B, enabled: true });
    expect(
      (await asB(request(app).get(`/nexus/v3/provisioning/services/${B}/SMS`)).expect(200)).body
        .data,
    ).toMatchObject({ version: 1, data: { provider: 'Async' } });
    expect(
      (await asB(request(app).get(`/nexus/v3/provisioning/channels/${B}/chat.Main`)).expect(200))
        .body.data,
    ).toMatchObject({ channelId: '15550001' });
    expect(
      (await asB(request(app).get(`/nexus/v3/apikeys/${f.chatKeyB.id}`)).expect(200)).body,
    ).toMatchObject({ enabled: true, revoked: false });
    // A's key with x-ccid of B is refused outright.
    const spoof = await request(app)
      .get(`/nexus/v3/provisioning/services/${A}`)
      .set('x-api-key', f.keyA)
      .set('x-ccid', B)
      .expect(403);
    expect(spoof.body.status.field).toBe('header.x-ccid');
  });

  it('refuses a revoked or disabled key on another replica within one second', async () => {
    const appA = h.app();
    const appB = await replica();
    const f = await provision(appA, h.config.adminToken);
    const chat = f.chatKeyB.key;
    // Replica B has the key cached.
    await request(appB).get('/nexus/v3/apikeys/current').set('x-api-key', chat).expect(200);
    await request(appB).get('/nexus/v3/apikeys/current').set('x-api-key', chat).expect(200);

    await request(appA)
      .patch(`/nexus/v3/apikeys/${f.chatKeyB.id}`)
      .set('Authorization', f.admin)
      .send({ enabled: false })
      .expect(200);
    let started = Date.now();
    await eventually(
      async () =>
        (await request(appB).get('/nexus/v3/apikeys/current').set('x-api-key', chat)).status ===
        401,
      1_000,
      'disabled on B',
    );
    const disabledAfter = Date.now() - started;

    await request(appA)
      .patch(`/nexus/v3/apikeys/${f.chatKeyB.id}`)
      .set('Authorization', f.admin)
      .send({ enabled: true })
      .expect(200);
    await eventually(
      async () =>
        (await request(appB).get('/nexus/v3/apikeys/current').set('x-api-key', chat)).status ===
        200,
      1_000,
      'enabled on B',
    );

    await request(appA)
      .delete(`/nexus/v3/apikeys/${f.chatKeyB.id}`)
      .set('Authorization', f.admin)
      .expect(200);
    started = Date.now();
    await eventually(
      async () => {
        const res = await request(appB).get('/nexus/v3/apikeys/current').set('x-api-key', chat);
        return res.status === 401 && res.body.status.message === 'The API key is revoked';
      },
      1_000,
      'revoked on B',
    );
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(disabledAfter).toBeLessThan(1_000);

    // Disabling the tenant stops its keys on every replica too.
    await request(appB)
      .get(`/nexus/v3/provisioning/services/${B}`)
      .set('x-api-key', f.keyB)
      .expect(200);
    await request(appA)
      .delete(`/nexus/v3/provisioning/tenants/${B}`)
      .set('Authorization', f.admin)
      .expect(200);
    await eventually(
      async () => {
        const res = await request(appB)
          .get(`/nexus/v3/provisioning/services/${B}`)
          .set('x-api-key', f.keyB);
        return res.status === 403 && res.body.status.code === 'NEXUS_ERR_TENANT_DISABLED';
      },
      1_000,
      'tenant disabled on B',
    );
  });

  it('answers the 121st request in a minute with 429, counted across replicas', async () => {
    const appA = h.app();
    const appB = await replica();
    const f = await provision(appA, h.config.adminToken);
    const chat = f.chatKeyB.key;
    for (let i = 0; i < 120; i++) {
      const res = await request(i % 2 ? appA : appB)
        .get('/nexus/v3/apikeys/current')
        .set('x-api-key', chat);
      expect(res.status, `request ${i + 1}`).toBe(200);
      expect(res.headers['ratelimit-limit']).toBe('120');
      expect(res.headers['ratelimit-remaining']).toBe(String(119 - i));
    }
    const rejectedBefore = await rejected('NEXUS_ERR_RATE_LIMITED');
    const limited = await request(appA)
      .get('/nexus/v3/apikeys/current')
      .set('x-api-key', chat)
      .expect(429);
    expect(await rejected('NEXUS_ERR_RATE_LIMITED')).toBe(rejectedBefore + 1);
    expect(limited.body.status.code).toBe('NEXUS_ERR_RATE_LIMITED');
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limited.headers['ratelimit-remaining']).toBe('0');
    expect(limited.headers['ratelimit-policy']).toBe('120;w=60');
    // Other keys keep their own budget.
    await request(appB).get('/nexus/v3/apikeys/current').set('x-api-key', f.keyB).expect(200);

    // A key's own capacity and frequency apply, and the window moves on.
    const small = await request(appA)
      .post('/nexus/v3/apikeys')
      .set('Authorization', f.admin)
      .send({
        tenant: A,
        name: 'small',
        permissions: ['nexus:consumer:chat'],
        capacity: 2,
        frequency: 1,
      })
      .expect(201);
    for (let i = 0; i < 2; i++) {
      await request(appA)
        .get('/nexus/v3/apikeys/current')
        .set('x-api-key', small.body.key)
        .expect(200);
    }
    await request(appB)
      .get('/nexus/v3/apikeys/current')
      .set('x-api-key', small.body.key)
      .expect(429);
    await eventually(
      async () =>
        (await request(appB).get('/nexus/v3/apikeys/current').set('x-api-key', small.body.key))
          .status === 200,
      3_000,
      'the next window',
    );
  });

  it('checks key state, operator tokens and roles', async () => {
    const app = h.app();
    const f = await provision(app, h.config.adminToken);
    const current = (key: string) =>
      request(app).get('/nexus/v3/apikeys/current').set('x-api-key', key);

    expect((await current('not-a-key').expect(401)).body.status).toMatchObject({
      code: 'NEXUS_ERR_UNAUTHORIZED',
      field: 'header.x-api-key',
    });
    expect((await request(app).get('/nexus/v3/apikeys').expect(401)).body.status.message).toMatch(
      /Missing credentials/,
    );
    await h.db.query(
      sql.unsafe`UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = ${f.chatKeyB.id}`,
    );
    await h.bus.publish({ kind: 'apikey', id: f.chatKeyB.id });
    expect((await current(f.chatKeyB.key).expect(401)).body.status.message).toBe(
      'The API key has expired',
    );
    // A chat key cannot provision.
    const chatA = await request(app)
      .post('/nexus/v3/apikeys')
      .set('Authorization', f.admin)
      .send({ tenant: A, name: 'c', permissions: ['nexus:consumer:chat'] })
      .expect(201);
    const denied = await request(app)
      .get(`/nexus/v3/provisioning/services/${A}`)
      .set('x-api-key', chatA.body.key)
      .expect(403);
    expect(denied.body.status.message).toBe(
      'The credentials lack the permission nexus:provisioning:*',
    );

    const tenantToken = await idp.sign({ sub: 'a-admin', ccid: A, role: 'admin' });
    const ok = (
      await request(app)
        .get(`/nexus/v3/provisioning/services/${A}`)
        .set('Authorization', tenantToken)
        .expect(200)
    ).body;
    expect(ok.status.code).toBe(0);
    await request(app)
      .get(`/nexus/v3/provisioning/services/${B}`)
      .set('Authorization', `Bearer ${tenantToken}`)
      .expect(403);
    await request(app)
      .post('/nexus/v3/apikeys')
      .set('Authorization', tenantToken)
      .send({ tenant: '*', name: 'c', permissions: ['nexus:cluster:*'] })
      .expect(403);
    await request(app)
      .patch(`/nexus/v3/provisioning/tenants/${A}`)
      .set('Authorization', tenantToken)
      .send({ enabled: false })
      .expect(403);
    await request(app)
      .delete(`/nexus/v3/provisioning/tenants/${A}`)
      .set('Authorization', tenantToken)
      .expect(403);
    await request(app).get('/nexus/v3/undelivered').set('Authorization', tenantToken).expect(403);

    const refused = [
      await idp.sign({ ccid: A, role: 'admin' }, { expiresIn: '-1m' }),
      await idp.sign({ ccid: A, role: 'admin' }, { issuer: 'https://someone-else/' }),
      await idp.signWithStrangerKey({ ccid: A, role: 'admin', iss: idp.issuer }),
      'not.a.jwt',
      'random-opaque-token',
    ];
    for (const token of refused) {
      const res = await request(app)
        .get(`/nexus/v3/provisioning/services/${A}`)
        .set('Authorization', `Bearer ${token}`)
        .expect(401);
      expect(res.body.status).toMatchObject({
        code: 'NEXUS_ERR_UNAUTHORIZED',
        field: 'header.authorization',
      });
    }
    // A token with no operator role, or a tenant role with no tenant.
    await request(app)
      .get(`/nexus/v3/provisioning/services/${A}`)
      .set('Authorization', await idp.sign({ ccid: A, role: 'agent' }))
      .expect(403);
    await request(app)
      .get(`/nexus/v3/provisioning/services/${A}`)
      .set('Authorization', await idp.sign({ role: 'admin' }))
      .expect(403);
    // An operator JWT with role agent acts as the agent whose username is its subject.
    await request(app)
      .post('/nexus/v3/agents')
      .set('Authorization', f.admin)
      .set('x-ccid', A)
      .send({ username: 'alice', name: 'Alice' })
      .expect(201);
    const agentJwt = await idp.sign({ sub: 'alice', ccid: A, role: 'agent' });
    await request(app)
      .get('/nexus/v3/agent/interactions')
      .set('Authorization', agentJwt)
      .expect(200);
    await request(app)
      .get(`/nexus/v3/provisioning/services/${A}`)
      .set('Authorization', agentJwt)
      .expect(403);
    const stranger = await idp.sign({ sub: 'mallory', ccid: A, role: 'agent' });
    await request(app)
      .get('/nexus/v3/agent/interactions')
      .set('Authorization', stranger)
      .expect(401);
    const cluster = await idp.sign({ role: ['cluster'] });
    await request(app)
      .get(`/nexus/v3/provisioning/services/${B}`)
      .set('Authorization', cluster)
      .expect(200);
  });

  it('lets workers see service changes without a restart', async () => {
    const app = h.app();
    const f = await provision(app, h.config.adminToken);
    const workerBus = InvalidationBus.create(h.config, h.redis, h.log, 'worker');
    extraBuses.push(workerBus);
    await eventually(() => workerBus.live);
    const directory = new ServiceDirectory(h.db, new SecretBox(h.config.secretKey), workerBus);
    expect(await directory.get(B, 'SMS')).toMatchObject({
      data: { provider: 'Async' },
      version: 1,
    });
    expect(await directory.get(B, 'mGageSMS')).toBeUndefined();

    await request(app)
      .post(`/nexus/v3/provisioning/services/${B}/mGageSMS`)
      .set('x-api-key', f.keyB)
      .send({ url: 'https://directtext.example', secret: { username: 'u', password: 'p' } })
      .expect(201);
    await request(app)
      .put(`/nexus/v3/provisioning/services/${B}/SMS`)
      .set('x-api-key', f.keyB)
      .send({ data: { provider: 'mGage' } })
      .expect(200);
    await eventually(
      async () => (await directory.get(B, 'SMS'))?.version === 2,
      1_000,
      'the new SMS service',
    );
    expect(await directory.get(B, 'SMS')).toMatchObject({ data: { provider: 'mGage' } });
    expect(await directory.get(B, 'mGageSMS')).toMatchObject({
      secret: { username: 'u', password: 'p' },
    });
    await request(app)
      .delete(`/nexus/v3/provisioning/services/${B}/mGageSMS`)
      .set('x-api-key', f.keyB)
      .expect(200);
    await eventually(
      async () => (await directory.get(B, 'mGageSMS')) === undefined,
      1_000,
      'deleted',
    );
    const rows = await h.db.oneFirst(
      sql.type(
        z.object({ n: z.number() }),
      )`SELECT count(*)::int AS n FROM services WHERE tenant_id = ${B}`,
    );
    expect(rows).toBe(1);
  });
});
