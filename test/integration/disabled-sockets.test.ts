import { sql } from 'slonik';
import { io, type Socket } from 'socket.io-client';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { SOCKET_PATH } from '../../api/realtime/index.js';
import {
  provisionChatTenant,
  sendCustomerMessage,
  startCustomerChat,
  type ChatTenant,
  type CustomerChat,
} from '../helpers/chat.js';
import { eventually, useHarness } from '../helpers/harness.js';

/**
 * A disabled agent or tenant loses what it holds open (docs/permissions.md, "Sockets and
 * tenants"): the agent's sockets on every replica are told `expired` and closed within a second
 * of the change and a new one is refused; a disabled tenant's customer and agent sockets are
 * closed, a new customer socket is refused and its customers' messages are refused with 403
 * NEXUS_ERR_TENANT_DISABLED, nothing stored; enabled again, its customers write again.
 */

const TENANT = 'tenant-off';

describe('disabled agents and tenants lose their sockets', () => {
  const h = useHarness();
  const sockets: Socket[] = [];
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.close();
  });

  /**
   * A socket on its own connection (a customer's and an agent's are never one browser's),
   * closed after the test, with when it was disconnected and the `expired` it heard.
   */
  const open = (url: string, namespace: '/chat' | '/agent', auth: Record<string, unknown>) => {
    const socket = io(`${url}${namespace}`, {
      path: SOCKET_PATH,
      auth,
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
    });
    sockets.push(socket);
    const state: { disconnectedAt?: number; expired?: unknown } = {};
    socket.on('disconnect', () => (state.disconnectedAt = Date.now()));
    socket.on('expired', (payload: unknown) => (state.expired = payload));
    const connected = new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    return { socket, connected, state };
  };

  /** Why a handshake was refused: the `connect_error`'s code, or 'connected'. */
  const refusedWith = async (
    url: string,
    namespace: '/chat' | '/agent',
    auth: Record<string, unknown>,
  ) => {
    const attempt = open(url, namespace, auth);
    try {
      await attempt.connected;
      return 'connected';
    } catch (error) {
      return (error as { data?: { code?: unknown } }).data?.code;
    }
  };

  /** A request's ack, or 'none' when nothing answers within `ms`. */
  const ask = async (socket: Socket, event: string, payload: unknown, ms = 5_000) => {
    try {
      return (await socket.timeout(ms).emitWithAck(event, payload)) as {
        status: { code: unknown };
      };
    } catch {
      return 'none';
    }
  };

  const messagesOn = (interactionId: string) =>
    h().db.oneFirst(sql.type(z.object({ count: z.number() }))`
      SELECT count(*)::int AS count FROM messages WHERE interaction_id = ${interactionId}`);

  const admin = (tenant: string) => ({
    Authorization: `Bearer ${h().config.adminToken}`,
    'x-ccid': tenant,
  });

  /** Two API replicas, a tenant provisioned on the first and a customer's chat on it. */
  async function setup(): Promise<{
    one: Awaited<ReturnType<ReturnType<typeof h>['serve']>>;
    two: Awaited<ReturnType<ReturnType<typeof h>['serve']>>;
    t: ChatTenant;
    chat: CustomerChat;
  }> {
    const one = await h().serve();
    const two = await h().serve();
    const t = await provisionChatTenant(h(), one.app, TENANT);
    const chat = await startCustomerChat(one.url, t.chatKey, 'Dora');
    return { one, two, t, chat };
  }

  it("closes a disabled agent's sockets on every replica and refuses its token", async () => {
    const { one, two, t, chat } = await setup();
    const here = open(one.url, '/agent', { token: t.agent.token });
    const there = open(two.url, '/agent', { token: t.agent.token });
    await Promise.all([here.connected, there.connected]);
    // The sockets work before (the checks below are not vacuous).
    for (const socket of [here.socket, there.socket]) {
      expect(await ask(socket, 'subscribe', { interactionId: chat.interactionId })).toMatchObject({
        status: { code: 0 },
      });
    }
    const stored = await messagesOn(chat.interactionId);

    const disabledAt = Date.now();
    await request(one.url)
      .patch(`/nexus/v3/agents/${t.agent.id}`)
      .set(admin(TENANT))
      .send({ enabled: false })
      .expect(200);
    for (const socket of [here, there]) {
      await eventually(() => socket.state.disconnectedAt, 2_000, 'the agent socket to close');
      expect(socket.state.disconnectedAt! - disabledAt).toBeLessThan(1_000);
      // The agent pages sign out on `expired`.
      expect(socket.state.expired).toMatchObject({ code: 'NEXUS_ERR_UNAUTHORIZED' });
    }

    // Nothing more goes through: the old sockets are closed, a new one is refused, the HTTP API
    // refuses the token.
    for (const socket of [here.socket, there.socket]) {
      expect(socket.connected).toBe(false);
      expect(
        await ask(socket, 'message', { interactionId: chat.interactionId, text: 'ghost' }, 500),
      ).toBe('none');
      expect(await ask(socket, 'presence', { ready: true }, 500)).toBe('none');
    }
    for (const url of [one.url, two.url]) {
      expect(await refusedWith(url, '/agent', { token: t.agent.token })).toBe(
        'NEXUS_ERR_UNAUTHORIZED',
      );
    }
    await request(two.url)
      .get('/nexus/v3/agent/me')
      .set('Authorization', `Bearer ${t.agent.token}`)
      .expect(401);
    expect(await messagesOn(chat.interactionId)).toBe(stored);
  });

  it("leaves an agent's sockets open on a change that does not disable it", async () => {
    const { one, two, t } = await setup();
    const there = open(two.url, '/agent', { token: t.agent.token });
    await there.connected;
    await request(one.url)
      .patch(`/nexus/v3/agents/${t.agent.id}`)
      .set(admin(TENANT))
      .send({ name: 'Alice B.' })
      .expect(200);
    expect(await ask(there.socket, 'presence', { ready: true })).toMatchObject({
      status: { code: 0 },
    });
    expect(there.socket.connected).toBe(true);
    // Bad input changes nothing and closes nothing.
    const bad = await request(one.url)
      .patch(`/nexus/v3/agents/${t.agent.id}`)
      .set(admin(TENANT))
      .send({ enabled: 'no' })
      .expect(400);
    expect(bad.body.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field: 'body.enabled' });
    expect(await ask(there.socket, 'presence', { ready: true })).toMatchObject({
      status: { code: 0 },
    });
  });

  it("closes a disabled tenant's sockets, refuses its customers, and lets them write once enabled again", async () => {
    const { one, two, t, chat } = await setup();
    const customerHere = open(one.url, '/chat', { token: chat.token });
    const customerThere = open(two.url, '/chat', { token: chat.token });
    const agentThere = open(two.url, '/agent', { token: t.agent.token });
    await Promise.all([customerHere, customerThere, agentThere].map(s => s.connected));
    expect(await ask(customerThere.socket, 'message', { text: 'before' })).toMatchObject({
      status: { code: 0 },
    });
    expect((await sendCustomerMessage(one.url, chat, 'before-http')).response.status).toBe(202);
    const stored = await messagesOn(chat.interactionId);

    const disabledAt = Date.now();
    await request(one.url)
      .delete(`/nexus/v3/provisioning/tenants/${TENANT}`)
      .set('Authorization', `Bearer ${h().config.adminToken}`)
      .expect(200);
    // At once on the replica that disabled it, within the bus's latency on the other.
    for (const [name, url] of [
      ['one', one.url],
      ['two', two.url],
    ] as const) {
      const { response } = await sendCustomerMessage(url, chat, `after-${name}`);
      expect({ status: response.status, code: response.body.status?.code }).toEqual({
        status: 403,
        code: 'NEXUS_ERR_TENANT_DISABLED',
      });
    }
    for (const socket of [customerHere, customerThere, agentThere]) {
      await eventually(() => socket.state.disconnectedAt, 2_000, 'the socket to close');
      expect(socket.state.disconnectedAt! - disabledAt).toBeLessThan(1_000);
    }
    expect(agentThere.state.expired).toMatchObject({ code: 'NEXUS_ERR_TENANT_DISABLED' });
    for (const url of [one.url, two.url]) {
      expect(await refusedWith(url, '/chat', { token: chat.token })).toBe(
        'NEXUS_ERR_TENANT_DISABLED',
      );
      expect(await refusedWith(url, '/agent', { token: t.agent.token })).toBe(
        'NEXUS_ERR_TENANT_DISABLED',
      );
    }
    expect(await ask(customerThere.socket, 'message', { text: 'ghost' }, 500)).toBe('none');
    expect(await messagesOn(chat.interactionId)).toBe(stored);

    // Enabled again: its customers write again, on either replica.
    await request(one.url)
      .patch(`/nexus/v3/provisioning/tenants/${TENANT}`)
      .set('Authorization', `Bearer ${h().config.adminToken}`)
      .send({ enabled: true })
      .expect(200);
    expect((await sendCustomerMessage(one.url, chat, 'again-1')).response.status).toBe(202);
    await eventually(
      async () => (await sendCustomerMessage(two.url, chat, 'again-2')).response.status === 202,
      2_000,
      'the other replica to hear the tenant is enabled',
    );
    const again = open(two.url, '/chat', { token: chat.token });
    await again.connected;
    expect(await ask(again.socket, 'message', { text: 'again-3' })).toMatchObject({
      status: { code: 0 },
    });
    expect(await messagesOn(chat.interactionId)).toBe(stored + 3);
  });

  it('closes what a missed change left open when a replica resubscribes', async () => {
    const { two, chat } = await setup();
    const customer = open(two.url, '/chat', { token: chat.token });
    await customer.connected;
    // Disabled behind the bus's back (as if its message were lost while a replica was away).
    await h().db.query(sql.unsafe`UPDATE tenants SET enabled = false WHERE id = ${TENANT}`);
    expect(customer.socket.connected).toBe(true);
    // What every replica's bus does when its subscription comes back.
    await h().bus.publish({ kind: 'all' });
    await eventually(() => customer.state.disconnectedAt, 2_000, 'the socket to close');
    expect(await refusedWith(two.url, '/chat', { token: chat.token })).toBe(
      'NEXUS_ERR_TENANT_DISABLED',
    );
    const { response } = await sendCustomerMessage(two.url, chat, 'after');
    expect(response.status).toBe(403);
    expect(response.body.status.code).toBe('NEXUS_ERR_TENANT_DISABLED');
  });
});
