import { sql } from 'slonik';
import type { Socket } from 'socket.io-client';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { holdLocks } from '../helpers/locks.js';
import { connect, provisionChatTenant } from '../helpers/chat.js';
import { useHarness } from '../helpers/harness.js';

/**
 * A socket write that times out on a busy chat answers its ack with the same coded, retryable
 * error as the HTTP route (503 NEXUS_ERR_DB_BUSY), never NEXUS_ERR_INTERNAL, and stores nothing.
 */

const LOCK_TIMEOUT_MS = 1_000;

const emitWithAck = (socket: Socket, event: string, payload: unknown) =>
  new Promise<{ status: { code: unknown; message?: string } }>(resolve => {
    socket.emit(event, payload, resolve);
  });

describe('socket writes on a busy chat', () => {
  const h = useHarness({ DB_LOCK_TIMEOUT_MS: String(LOCK_TIMEOUT_MS) });

  it('answer NEXUS_ERR_DB_BUSY (customer and agent), store nothing, and work once the lock goes', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app, 'busy-sockets');
    const session = (
      await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname: 'Cy', endpoint: 'GlobalChatSwitchboard' } })
        .expect(201)
    ).body.data as { clientToken: string; interactionId: string };
    const customer = connect(api.url, '/chat', { token: session.clientToken });
    const agent = connect(api.url, '/agent', { token: t.agent.token });
    await Promise.all([customer.connected, agent.connected]);
    const stored = () =>
      h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM messages WHERE interaction_id = ${session.interactionId}`);

    try {
      // A customer message to a chat locked FOR UPDATE: the intake's slow path times out.
      const strong = await holdLocks(h(), [session.interactionId], 'for-update');
      const fromCustomer = await emitWithAck(customer.socket, 'message', {
        text: 'hello',
        clientMessageId: 'c-1',
      });
      strong.release();
      await strong.done;
      expect(fromCustomer.status.code).toBe('NEXUS_ERR_DB_BUSY');

      // An agent message to a chat a frozen worker holds with the numbering lock.
      const numbering = await holdLocks(h(), [session.interactionId], 'numbering');
      const fromAgent = await emitWithAck(agent.socket, 'message', {
        interactionId: session.interactionId,
        text: 'hi there',
        clientMessageId: 'a-1',
      });
      numbering.release();
      await numbering.done;
      expect(fromAgent.status.code).toBe('NEXUS_ERR_DB_BUSY');
      expect(await stored()).toBe(0);

      // The retries, with the locks gone, are stored once each.
      const retried = await emitWithAck(customer.socket, 'message', {
        text: 'hello',
        clientMessageId: 'c-1',
      });
      expect(retried.status.code).toBe(0);
      const agentRetried = await emitWithAck(agent.socket, 'message', {
        interactionId: session.interactionId,
        text: 'hi there',
        clientMessageId: 'a-1',
      });
      expect(agentRetried.status.code).toBe(0);
      expect(await stored()).toBe(2);
    } finally {
      customer.socket.close();
      agent.socket.close();
    }
  }, 60_000);
});
