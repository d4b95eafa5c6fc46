import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { CUSTOMER_EVENT_DATA, CUSTOMER_EVENT_TYPES } from '../../api/chat/customer-events.js';
import { socketFills } from '../../lib/metrics.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { acceptOffers, connect, createAgent, provisionChatTenant } from '../helpers/chat.js';
import { eventually, useHarness } from '../helpers/harness.js';

const gapFills = async () =>
  (await socketFills.get()).values.find(v => v.labels.trigger === 'gap')?.value ?? 0;

describe('what customers see', () => {
  const h = useHarness();

  it('a routed, accepted and transferred chat shows the customer no routing internals, and every customer-facing event once, in order', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app, 'cx-tenant', { queue: false });
    const admin = { Authorization: `Bearer ${h().config.adminToken}` };
    const bob = await createAgent(h(), api.url, t.tenant, 'bob', 'Bob');
    const agents = [t.agent, bob];
    await request(api.url)
      .put(`/nexus/v3/provisioning/queues/${t.tenant}/Sales`)
      .set(admin)
      .send({ endpoints: ['GlobalChatSwitchboard'], agents: agents.map(a => a.id) })
      .expect(201);
    await h().startWorkers({
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
    const sockets = agents.map(a => connect(api.url, '/agent', { token: a.token }));
    await Promise.all(sockets.map(s => s.connected));
    acceptOffers(
      api.url,
      // Not strict: Alice's feed of the chat also shows her the offer to Bob, which she cannot take.
      sockets.map((s, i) => ({ socket: s.socket, token: (agents[i] as { token: string }).token })),
    );
    // Alice only at first: the chat is offered to her.
    await request(api.url)
      .post('/nexus/v3/agent/presence')
      .set('Authorization', `Bearer ${t.agent.token}`)
      .send({ ready: true })
      .expect(200);

    const session = (
      await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname: 'Cy', endpoint: 'GlobalChatSwitchboard' } })
        .expect(201)
    ).body.data as { id: string; clientToken: string; interactionId: string };
    const customer = connect(api.url, '/chat', { token: session.clientToken });
    await customer.connected;
    const fillsBefore = await gapFills();

    const agentAuth = (token: string) => `Bearer ${token}`;
    const assignedTo = (agentId: string) =>
      eventually(
        () =>
          sockets.some(s =>
            s.received.some(
              e =>
                e.name === 'assigned' &&
                (e.data?.agent as { id?: string } | undefined)?.id === agentId,
            ),
          ),
        15_000,
        `assigned to ${agentId}`,
      );
    await assignedTo(t.agent.id);
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/messages`)
      .set('Authorization', agentAuth(t.agent.token))
      .send({ text: 'Hello from Alice' })
      .expect(201);
    await request(api.url)
      .post(`/nexus/v3/chat/sessions/${session.id}/messages`)
      .set('x-nexus-client-key', session.clientToken)
      .send({ data: { text: 'Hi', clientMessageId: 'cy-1' } })
      .expect(202);
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/typing`)
      .set('Authorization', agentAuth(t.agent.token))
      .send({ typing: true })
      .expect(200);
    // Alice hands the chat to Bob: queued again, offered to Bob, accepted.
    await request(api.url)
      .post('/nexus/v3/agent/presence')
      .set('Authorization', agentAuth(bob.token))
      .send({ ready: true })
      .expect(200);
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/transfer`)
      .set('Authorization', agentAuth(t.agent.token))
      .send({ agentId: bob.id })
      .expect(200);
    await assignedTo(bob.id);
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/messages`)
      .set('Authorization', agentAuth(bob.token))
      .send({ text: 'Bob here' })
      .expect(201);
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/read`)
      .set('Authorization', agentAuth(bob.token))
      .send({ seq: 1 })
      .expect(200);
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/done`)
      .set('Authorization', agentAuth(bob.token))
      .expect(200);

    // The whole log holds the routing events; the customer's view none of them.
    const full = (
      await request(api.url)
        .get(`/nexus/v3/agent/interactions/${session.interactionId}?after=0&limit=500`)
        .set('Authorization', agentAuth(bob.token))
        .expect(200)
    ).body.data as { events: { seq: number; type: string }[] };
    const allTypes = full.events.map(e => e.type);
    for (const internal of ['interaction.offered', 'interaction.assigned', 'interaction.queued']) {
      expect(allTypes).toContain(internal);
    }
    const expected = full.events.filter(e =>
      (CUSTOMER_EVENT_TYPES as readonly string[]).includes(e.type),
    );
    const lastSeq = full.events.at(-1)?.seq ?? 0;

    await eventually(
      () => customer.received.some(e => e.type === 'interaction.finished'),
      10_000,
      'the end at the customer',
    );
    const transcript = (
      await request(api.url)
        .get(`/nexus/v3/chat/sessions/${session.id}/messages?after=0`)
        .set('x-nexus-client-key', session.clientToken)
        .expect(200)
    ).body.data as { messages: { seq: number; type: string; data: object }[]; lastSeq: number };
    const socketEvents = customer.received.filter(e => e.seq !== undefined);

    for (const [what, events] of [
      ['transcript', transcript.messages],
      ['socket', socketEvents],
    ] as const) {
      // Every customer-facing event once, in seq order; nothing else.
      expect(
        events.map(e => e.seq),
        what,
      ).toEqual(expected.map(e => e.seq));
      expect(
        events.map(e => e.type),
        what,
      ).toEqual(expected.map(e => e.type));
      for (const event of events) {
        const schema = CUSTOMER_EVENT_DATA[event.type as keyof typeof CUSTOMER_EVENT_DATA];
        const parsed = schema.safeParse(event.data);
        expect(
          parsed.success,
          `${what} ${event.type}: ${JSON.stringify(parsed.error?.issues[0])}`,
        ).toBe(true);
      }
      // No agent id, queue, routing reason or offer anywhere.
      const text = JSON.stringify(events);
      for (const secret of [t.agent.id, bob.id, 'Sales', 'reason', 'expiresAt', 'contactId']) {
        expect(text, `${what} carries ${secret}`).not.toContain(secret);
      }
      expect(text).toContain('Alice');
      expect(text).toContain('Bob here');
    }
    // The customer's own message keeps its client id; typing shows the agent by name only.
    const mine = transcript.messages.find(
      e => (e.data as { message?: { text?: string } }).message?.text === 'Hi',
    );
    expect(mine?.data).toMatchObject({ message: { clientMessageId: 'cy-1' } });
    const typing = customer.received.find(e => e.name === 'typing') as
      Record<string, unknown> | undefined;
    expect(typing).toMatchObject({ participant: { type: 'agent', nickname: 'Alice' } });
    expect(JSON.stringify(typing)).not.toContain(t.agent.id);
    // Skipped events are read, not gaps: no gap fill, and paging goes on from lastSeq.
    expect(transcript.lastSeq).toBe(lastSeq);
    expect(await gapFills()).toBe(fillsBefore);
    const page = (
      await request(api.url)
        .get(`/nexus/v3/chat/sessions/${session.id}/messages?after=0&limit=3`)
        .set('x-nexus-client-key', session.clientToken)
        .expect(200)
    ).body.data as { messages: { seq: number }[]; lastSeq: number };
    expect(page.lastSeq).toBe(3);

    customer.socket.disconnect();
    for (const s of sockets) s.socket.disconnect();
  });
});
