import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { connect, provisionChatTenant, type Received } from '../helpers/chat.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';

const startWorkers = (h: Harness) =>
  h.startWorkers({
    processors: { inbound: createInboundProcessor({ publisher: h.publisher }) },
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

    customer.socket.disconnect();
    agentSocket.socket.disconnect();
  });
});
