import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, provisionChatTenant, type Received } from '../helpers/chat.js';
import { eventually, useHarness } from '../helpers/harness.js';
import { startHubProcess, type HubProcess } from '../helpers/processes.js';

const messages = (received: Received[]) => received.filter(event => event.name === 'message');

describe('chat across processes', () => {
  const h = useHarness();
  const processes: HubProcess[] = [];
  afterEach(async () => {
    for (const p of processes.splice(0)) {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  });

  it('two API processes and a worker process: customer on one, agent on the other', async () => {
    const [apiA, apiB, worker] = await Promise.all([
      startHubProcess(h(), 'api'),
      startHubProcess(h(), 'api'),
      startHubProcess(h(), 'worker', { NEXUS_WORKER_QUEUES: 'inbound' }),
    ]);
    processes.push(apiA, apiB, worker);
    const urlA = apiA.url as string;
    const urlB = apiB.url as string;
    const t = await provisionChatTenant(h(), h().app());

    const agent = connect(urlB, '/agent', { token: t.agent.token });
    await agent.connected;
    const started = await request(urlA)
      .post('/nexus/v3/chat/sessions')
      .set('x-api-key', t.chatKey)
      .type('form')
      .send({ 'data[nickname]': 'Gus', 'data[endpoint]': 'GlobalChatSwitchboard' })
      .expect(201);
    const session = started.body.data as { id: string; clientToken: string; interactionId: string };
    await eventually(
      () => agent.received.some(e => e.name === 'interaction'),
      15_000,
      'STARTED on the other API',
    );
    await request(urlB)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/join`)
      .set('Authorization', `Bearer ${t.agent.token}`)
      .expect(200);
    let customer = connect(urlA, '/chat', { token: session.clientToken });
    await customer.connected;
    const before: Received[] = [];

    for (let i = 0; i < 50; i++) {
      await request(urlA)
        .post(`/nexus/v3/chat/sessions/${session.id}/messages`)
        .set('x-nexus-client-key', session.clientToken)
        .type('form')
        .send({ 'data[type]': 'Text', 'data[text]': `c${i}`, 'data[clientMessageId]': `c${i}` })
        .expect(202);
      await request(urlB)
        .post(`/nexus/v3/agent/interactions/${session.interactionId}/messages`)
        .set('Authorization', `Bearer ${t.agent.token}`)
        .send({ text: `a${i}` })
        .expect(201);
      if (i === 25) {
        customer.socket.disconnect();
        before.push(...customer.received);
        const lastSeq = Math.max(
          0,
          ...before.filter(e => e.seq !== undefined).map(e => e.seq as number),
        );
        // It comes back through the other API.
        customer = connect(urlB, '/chat', { token: session.clientToken, lastSeq });
        await customer.connected;
      }
    }
    await eventually(
      () => messages([...before, ...customer.received]).length === 100,
      20_000,
      '100 at the customer',
    );
    await eventually(() => messages(agent.received).length === 100, 20_000, '100 at the agent');
    const all = [...before, ...customer.received]
      .filter(e => e.seq !== undefined)
      .map(e => e.seq as number);
    expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
    const agentSeqs = agent.received
      .filter(e => e.name !== 'interaction' && e.seq !== undefined)
      .map(e => e.seq as number);
    expect(agentSeqs).toEqual(
      Array.from({ length: agentSeqs.length }, (_, i) => (agentSeqs[0] ?? 1) + i),
    );

    customer.socket.disconnect();
    agent.socket.disconnect();
    expect(await Promise.all([apiA.stop(), apiB.stop(), worker.stop()])).toEqual([0, 0, 0]);
  });
});
