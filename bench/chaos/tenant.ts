import { createServer, type Server } from 'node:http';
import { io, type Socket } from 'socket.io-client';
import { json } from '../http.js';
import { waitFor } from '../measure.js';
import { ADMIN_TOKEN } from '../systems.js';

export const TENANT = 'chaos';
export const SMS_NUMBER = '+18005550100';
const TARGET = 'crm';

/** One arrival at an observer: the id the suite counts by, and the id the hub stamped on it. */
export interface Arrival {
  /** The message (chat, SMS) or event (webhook) the arrival is about. */
  key: string;
  /** The hub's id of this delivery: event id (socket), webhook-id (webhook), message id (SMS). */
  stamp: string;
}

/** Everything an observer saw, by key: each arrival's stamp. */
export class Arrivals {
  readonly byKey = new Map<string, string[]>();
  add(arrival: Arrival): void {
    const stamps = this.byKey.get(arrival.key);
    if (stamps) stamps.push(arrival.stamp);
    else this.byKey.set(arrival.key, [arrival.stamp]);
  }
  get size(): number {
    return this.byKey.size;
  }
}

/**
 * An HTTP server standing in for a subscriber's webhook receiver or the SMS provider's API:
 * records every request it answers 200 to; while `hang` is on, it takes requests and never
 * answers them (they are not counted: the hub did not get them through).
 */
export interface Receiver {
  readonly url: string;
  readonly arrivals: Arrivals;
  /** Requests taken while hanging. */
  readonly hung: number;
  hang(on: boolean): void;
  close(): Promise<void>;
}

async function startReceiver(
  record: (headers: Record<string, string | string[] | undefined>, body: string) => Arrival[],
  answer: () => string,
): Promise<Receiver> {
  const arrivals = new Arrivals();
  let hanging = false;
  let hung = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (hanging) {
        hung++;
        return;
      }
      try {
        for (const arrival of record(req.headers, Buffer.concat(chunks).toString('utf8'))) {
          arrivals.add(arrival);
        }
      } catch {
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(answer());
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    arrivals,
    get hung() {
      return hung;
    },
    hang(on) {
      hanging = on;
      // Requests left hanging end when the receiver comes back, as a restarted one's would.
      if (!on) server.closeAllConnections();
    },
    close: () =>
      new Promise<void>(resolve => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The webhook receiver: arrivals by event id, stamped with their `webhook-id`. */
export const startWebhookReceiver = () =>
  startReceiver(
    (headers, body) => {
      const event = JSON.parse(body) as { id: string };
      return [{ key: event.id, stamp: String(headers['webhook-id']) }];
    },
    () => '{}',
  );

/** The SMS provider (the `Async` gateway's API): arrivals by the hub's message id. */
export function startSmsGateway(): Promise<Receiver> {
  let sent = 0;
  return startReceiver(
    (_headers, body) => {
      const request = JSON.parse(body) as { messages: { id: string }[] };
      return request.messages.map(m => ({ key: m.id, stamp: m.id }));
    },
    () => JSON.stringify({ messageId: `gw-${++sent}` }),
  );
}

/** A chat session of a customer, joined by one of the agents. */
export interface Session {
  id: string;
  clientToken: string;
  interactionId: string;
}

export interface Agent {
  id: string;
  token: string;
  socket: Socket;
  /** Customer messages at the socket: by message id, each arrival's event id. */
  readonly messages: Arrivals;
}

export interface Tenant {
  chatKey: string;
  sessions: Session[];
  agents: Agent[];
  close(): void;
}

/**
 * Provisions the chaos tenant through the first API: a chat key, an endpoint and queue, agents
 * with tokens, a webhook target subscribed to `message.created` (format `events`, short retry
 * schedule), an SMS number on the `Async` provider pointed at the gateway; then starts the chat
 * sessions, has the agents join them, and connects one socket per agent (agent `i` on API
 * `i mod N`), which reconnects by itself and catches up from the last seq it read.
 */
export async function provisionTenant(options: {
  apiUrls: string[];
  sessions: number;
  agents: number;
  webhookUrl: string;
  gatewayUrl: string;
}): Promise<Tenant> {
  const base = options.apiUrls[0] as string;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const operator = { ...admin, 'x-ccid': TENANT };
  await json('POST', `${base}/nexus/v3/provisioning/tenants`, admin, { id: TENANT, name: 'Chaos' });
  const key = await json<{ key: string }>('POST', `${base}/nexus/v3/apikeys`, admin, {
    tenant: TENANT,
    name: 'chaos chat key',
    permissions: ['nexus:consumer:chat'],
    capacity: 1_000_000,
    frequency: 1,
  });
  await json('PUT', `${base}/nexus/v3/provisioning/endpoints/${TENANT}/Chat`, admin, {});
  await json('PUT', `${base}/nexus/v3/provisioning/queues/${TENANT}/Chat`, admin, {
    endpoints: ['Chat'],
  });
  await json(
    'PUT',
    `${base}/nexus/v3/provisioning/services/${TENANT}/WebhookTransportTarget-${TARGET}`,
    admin,
    {
      url: `${options.webhookUrl}/hooks`,
      data: {
        events: ['message.created'],
        format: 'events',
        retrySchedule: [1, 1, 2, 2, 3, 5, 5, 5, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10],
      },
      secret: 'chaos-webhook-secret',
    },
  );
  await json('PUT', `${base}/nexus/v3/provisioning/services/${TENANT}/Async`, admin, {
    url: 'N/A',
    data: {
      channels: [{ channelId: SMS_NUMBER, webhook: { url: `${options.gatewayUrl}/outbound` } }],
    },
    secret: {
      channels: [
        { channelId: SMS_NUMBER, webhook: { secret: 'webhook-secret' }, api: { secret: 'api' } },
      ],
    },
  });
  await json('PUT', `${base}/nexus/v3/provisioning/endpoints/${TENANT}/SmsDesk`, admin, {});
  await json('PUT', `${base}/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Main`, admin, {
    channelId: SMS_NUMBER,
    endpoint: 'SmsDesk',
    provider: 'Async',
  });
  const agents: { id: string; token: string }[] = [];
  for (let i = 0; i < options.agents; i++) {
    const agent = await json<{ data: { id: string } }>(
      'POST',
      `${base}/nexus/v3/agents`,
      operator,
      {
        username: `agent${i}`,
        name: `Agent ${i}`,
      },
    );
    const token = await json<{ data: { token: string } }>(
      'POST',
      `${base}/nexus/v3/agents/${agent.data.id}/tokens`,
      operator,
    );
    agents.push({ id: agent.data.id, token: token.data.token });
  }
  await json('PUT', `${base}/nexus/v3/provisioning/queues/${TENANT}/Sms`, admin, {
    endpoints: ['SmsDesk'],
    agents: agents.map(a => a.id),
  });
  const sessions: Session[] = [];
  for (let i = 0; i < options.sessions; i += 20) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(20, options.sessions - i) }, () =>
        json<{ data: Session }>(
          'POST',
          `${base}/nexus/v3/chat/sessions`,
          { 'x-api-key': key.key },
          { data: { nickname: 'Chaos', endpoint: 'Chat' } },
        ),
      ),
    );
    sessions.push(...batch.map(s => s.data));
  }
  await Promise.all(
    sessions.map((session, i) =>
      json('POST', `${base}/nexus/v3/agent/interactions/${session.interactionId}/join`, {
        authorization: `Bearer ${(agents[i % agents.length] as { token: string }).token}`,
      }),
    ),
  );
  const connected = agents.map((agent, i) =>
    agentSocket(options.apiUrls[i % options.apiUrls.length] as string, agent),
  );
  await Promise.all(
    connected.map(
      a =>
        new Promise<void>((resolve, reject) => {
          a.socket.once('connect', () => resolve());
          a.socket.once('connect_error', reject);
        }),
    ),
  );
  return {
    chatKey: key.key,
    sessions,
    agents: connected,
    close() {
      for (const a of connected) a.socket.close();
    },
  };
}

interface SocketEvent {
  id?: string;
  seq?: number;
  interactionId?: string;
  data?: { message?: { id?: string }; from?: { type?: string } };
}

/** An agent's socket, reconnecting forever, resuming each interaction after its last seq. */
function agentSocket(url: string, agent: { id: string; token: string }): Agent {
  const lastSeqs = new Map<string, number>();
  const messages = new Arrivals();
  const socket = io(`${url}/agent`, {
    path: '/nexus/v3/socket.io',
    auth: cb => cb({ token: agent.token, lastSeqs: Object.fromEntries(lastSeqs) }),
    transports: ['websocket'],
    reconnectionDelay: 200,
    reconnectionDelayMax: 2_000,
  });
  socket.onAny((name: string, event: SocketEvent) => {
    if (!event || typeof event !== 'object') return;
    if (event.interactionId && typeof event.seq === 'number') {
      lastSeqs.set(
        event.interactionId,
        Math.max(lastSeqs.get(event.interactionId) ?? 0, event.seq),
      );
    }
    if (name !== 'message' || event.data?.from?.type !== 'customer') return;
    const messageId = event.data.message?.id;
    if (messageId) messages.add({ key: messageId, stamp: event.id ?? '' });
  });
  return { ...agent, socket, messages };
}

/** Waits until the socket of every agent is connected (after a fault it reconnects by itself). */
export async function socketsConnected(tenant: Tenant, timeoutMs: number): Promise<void> {
  await waitFor(() => tenant.agents.every(a => a.socket.connected), timeoutMs, 'agent sockets');
}
