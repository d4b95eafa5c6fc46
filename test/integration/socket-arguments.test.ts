import { sql } from 'slonik';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { connect, provisionChatTenant } from '../helpers/chat.js';
import { eventually, useHarness } from '../helpers/harness.js';

/**
 * Socket requests with arguments the handlers did not expect (found by the fuzz run, test/fuzz/):
 * a second payload where the acknowledgement goes was called as a function, a TypeError outside
 * any request that ended the process. Now each is a request without an ack, and the hub goes on.
 */
describe('socket requests with extra arguments', () => {
  const h = useHarness();
  const uncaught: unknown[] = [];
  const record = (error: unknown) => uncaught.push(error);
  beforeEach(() => {
    uncaught.length = 0;
    process.on('uncaughtException', record);
  });
  afterEach(() => {
    process.off('uncaughtException', record);
  });

  it('take a second payload for no ack, on both namespaces, and answer the next request', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app, 'args-tenant');
    const session = (
      await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname: 'Ann', endpoint: 'GlobalChatSwitchboard' } })
        .expect(201)
    ).body.data as { clientToken: string; interactionId: string };
    const customer = connect(api.url, '/chat', { token: session.clientToken });
    const agent = connect(api.url, '/agent', { token: t.agent.token });
    await Promise.all([customer.connected, agent.connected]);

    customer.socket.emit('read', { seq: 1 }, { seq: 2 });
    customer.socket.emit('message', { text: 'hi' }, 'not an ack');
    for (const event of ['token', 'presence', 'subscribe', 'message']) {
      agent.socket.emit(event, { interactionId: session.interactionId, text: 'hi' }, 42);
    }

    // The sockets still answer (socket.io keeps the order of one socket's packets).
    const sent = await customer.socket.timeout(5_000).emitWithAck('message', { text: 'hello' });
    expect(sent.status).toEqual({ code: 0 });
    // A read names an event the chat has: wait for the first (the worker numbers them).
    await eventually(
      async () =>
        (await h().db.oneFirst(
          sql.type(z.object({ last_seq: z.number() }))`
            SELECT last_seq FROM interactions WHERE id = ${session.interactionId}`,
        )) >= 1,
      15_000,
      'the chat numbered',
    );
    const read = await customer.socket.timeout(5_000).emitWithAck('read', { seq: 1 });
    expect(read).toEqual({ status: { code: 0 }, data: { seq: 1 } });
    const presence = await agent.socket.timeout(5_000).emitWithAck('presence', { ready: false });
    expect(presence.status).toEqual({ code: 0 });
    await eventually(async () => (await request(api.url).get('/health/live')).status === 200);
    expect(uncaught).toEqual([]);
    customer.socket.close();
    agent.socket.close();
  });
});
