import { io, type Socket } from 'socket.io-client';
import request from 'supertest';
import type { BuiltApp } from '../../api/app.js';
import { SOCKET_PATH } from '../../api/realtime/index.js';
import type { Harness } from './harness.js';

export interface ChatTenant {
  tenant: string;
  chatKey: string;
  agent: { id: string; token: string };
}

/**
 * A tenant with its chat key, an endpoint and one agent with a token, provisioned by API. Unless
 * `queue` is false, the endpoint leads to the routing queue `Main`, which no agent serves (chats
 * wait there; any agent may still join them): a chat's endpoint must lead to a queue.
 */
export async function provisionChatTenant(
  h: Harness,
  app: BuiltApp,
  tenant = 'chat-tenant',
  options: { queue?: boolean } = {},
): Promise<ChatTenant> {
  const admin = `Bearer ${h.config.adminToken}`;
  const created = await request(app)
    .post('/nexus/v3/provisioning/tenants')
    .set('Authorization', admin)
    .send({ id: tenant, name: tenant })
    .expect(201);
  await request(app)
    .put(`/nexus/v3/provisioning/endpoints/${tenant}/GlobalChatSwitchboard`)
    .set('Authorization', admin)
    .send({})
    .expect(201);
  if (options.queue !== false) {
    await request(app)
      .put(`/nexus/v3/provisioning/queues/${tenant}/Main`)
      .set('Authorization', admin)
      .send({ endpoints: ['GlobalChatSwitchboard'] })
      .expect(201);
  }
  const agent = await createAgent(h, app, tenant, 'alice', 'Alice');
  return {
    tenant,
    chatKey: created.body.data.xapikey as string,
    agent,
  };
}

/** An agent of the tenant and a token for it, through the API (operator credentials). */
export async function createAgent(
  h: Harness,
  app: BuiltApp | string,
  tenant: string,
  username: string,
  name: string,
): Promise<{ id: string; token: string }> {
  const operator = { Authorization: `Bearer ${h.config.adminToken}`, 'x-ccid': tenant };
  const created = await request(app)
    .post('/nexus/v3/agents')
    .set(operator)
    .send({ username, name })
    .expect(201);
  const token = await request(app)
    .post(`/nexus/v3/agents/${created.body.data.id}/tokens`)
    .set(operator)
    .expect(201);
  return { id: created.body.data.id as string, token: token.body.data.token as string };
}

/** Each agent accepts every offer its socket hears (`strict`: and each accept answers 200). */
export function acceptOffers(
  url: string,
  agents: readonly { socket: Socket; token: string }[],
  strict = false,
): void {
  for (const agent of agents) {
    agent.socket.on('offer', (event: { interactionId: string }) => {
      const accept = request(url)
        .post(`/nexus/v3/agent/interactions/${event.interactionId}/accept`)
        .set('Authorization', `Bearer ${agent.token}`);
      void (strict ? accept.expect(200) : accept).then(() => undefined);
    });
  }
}

/** Every event a socket received, by name, in arrival order. */
export interface Received {
  name: string;
  seq?: number;
  type?: string;
  data?: Record<string, unknown>;
  interactionId?: string;
}

export function connect(
  url: string,
  namespace: '/chat' | '/agent',
  auth: Record<string, unknown>,
): { socket: Socket; received: Received[]; connected: Promise<void> } {
  const socket = io(`${url}${namespace}`, {
    path: SOCKET_PATH,
    auth,
    transports: ['websocket'],
    reconnection: false,
  });
  const received: Received[] = [];
  socket.onAny((name: string, payload: Received) => received.push({ ...payload, name }));
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  return { socket, received, connected };
}

/** A customer's chat session, as the widget keeps it. */
export interface CustomerChat {
  sessionId: string;
  token: string;
  interactionId: string;
}

/** Starts a chat on the tenant's `GlobalChatSwitchboard` endpoint (form fields, as the widget). */
export async function startCustomerChat(
  url: string,
  chatKey: string,
  nickname: string,
): Promise<CustomerChat> {
  const started = await request(url)
    .post('/nexus/v3/chat/sessions')
    .set('x-api-key', chatKey)
    .type('form')
    .send({ 'data[nickname]': nickname, 'data[endpoint]': 'GlobalChatSwitchboard' })
    .expect(201);
  const data = started.body.data as { id: string; clientToken: string; interactionId: string };
  return { sessionId: data.id, token: data.clientToken, interactionId: data.interactionId };
}

/** Sends a customer message (text `text <clientMessageId>`): the response and how long it took. */
export async function sendCustomerMessage(
  url: string,
  chat: CustomerChat,
  clientMessageId: string,
) {
  const started = Date.now();
  const response = await request(url)
    .post(`/nexus/v3/chat/sessions/${chat.sessionId}/messages`)
    .set('x-nexus-client-key', chat.token)
    .type('form')
    .send({
      'data[type]': 'Text',
      'data[text]': `text ${clientMessageId}`,
      'data[clientMessageId]': clientMessageId,
    });
  return { response, ms: Date.now() - started };
}
