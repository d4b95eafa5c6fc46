import { existsSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { io, type Socket } from 'socket.io-client';
import { http, json } from './http.js';
import { sleep, waitFor } from './measure.js';

const ADMIN_URL =
  process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const ADMIN_TOKEN = 'bench-admin-token-0123456789';

export interface Delivery {
  clientMessageId: string;
  at: number;
}

/** A suggestion of the AI connector reaching an agent's socket, for the customer message it answers. */
export interface Suggestion {
  clientMessageId: string;
  at: number;
}

/** A system under test: processes, sessions, agents listening, and the send call. */
export interface System {
  readonly name: string;
  readonly processes: { role: string; pid: number }[];
  send(sessionIndex: number, text: string, clientMessageId: string): Promise<number>;
  persisted(): Promise<number>;
  onDelivered(listener: (delivery: Delivery) => void): void;
  /** With the AI connector attached: its suggestions as the agents receive them. */
  onSuggestion?(listener: (suggestion: Suggestion) => void): void;
  stop(): Promise<void>;
}

function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function freshDatabase(name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return databaseUrl(name);
}

/** BENCH_PROFILE=1 writes a V8 CPU profile per process into bench/results/profiles. */
const PROFILE =
  process.env.BENCH_PROFILE === '1' ? ['--cpu-prof', '--cpu-prof-dir=bench/results/profiles'] : [];

/**
 * The hub's processes run its compiled entry points, as production does (the bench scripts run
 * `npm run build` first); BENCH_BUILT=0 runs them from source through tsx instead. The bench's
 * own baselines always run through tsx: compiled, they measured the same (docs/performance.md).
 */
const BUILT = process.env.BENCH_BUILT !== '0';

export function run(entry: string, env: Record<string, string>): ChildProcess {
  const hub = !entry.startsWith('bench/');
  const compiled = `dist/${entry.replace(/\.ts$/, '.js')}`;
  if (hub && BUILT && !existsSync(compiled)) {
    throw new Error(`${compiled} is missing: run \`npm run build\` first, or set BENCH_BUILT=0`);
  }
  const args = hub && BUILT ? [compiled] : ['--import', 'tsx', entry];
  const child = spawn(process.execPath, [...PROFILE, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  child.stdout?.resume();
  return child;
}

export async function waitHttp(url: string): Promise<void> {
  await waitFor(
    async () => (await http('GET', url, {}).catch(() => ({ status: 0 }))).status > 0,
    60_000,
    url,
  );
}

export async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      child =>
        new Promise<void>(resolve => {
          if (child.exitCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

function connectAll(sockets: Socket[]): Promise<void> {
  return Promise.all(
    sockets.map(
      socket =>
        new Promise<void>((resolve, reject) => {
          socket.once('connect', () => resolve());
          socket.once('connect_error', reject);
        }),
    ),
  ).then(() => undefined);
}

export interface Shape {
  sessions: number;
  agents: number;
  apiProcesses: number;
  workerProcesses: number;
}

/**
 * What every hub process of one bench system shares: a fresh database, queues under a prefix of
 * their own, production mode, the bench's admin token, quiet logs, metrics on a free port.
 */
export async function hubEnvironment(database: string): Promise<Record<string, string>> {
  return {
    NODE_ENV: 'production',
    DATABASE_URL: await freshDatabase(database),
    REDIS_URL,
    NEXUS_QUEUE_PREFIX: `{b${randomBytes(4).toString('hex')}}`,
    NEXUS_ADMIN_TOKEN: ADMIN_TOKEN,
    NEXUS_SECRET_KEY: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'warn',
    METRICS_PORT: '0',
    HOST: '127.0.0.1',
  };
}

/** A port nothing listens on now. */
export async function freePort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>(resolve => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise(resolve => probe.close(resolve));
  return port;
}

/**
 * The bench's tenant `bench`: a chat key without a practical rate limit, and the endpoint `Bench`
 * leading to a queue no agent serves (nothing is offered; the bench's agents join their chats).
 * Answers the chat key.
 */
export async function provisionBenchTenant(base: string): Promise<{ key: string }> {
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  await json('POST', `${base}/nexus/v3/provisioning/tenants`, admin, {
    id: 'bench',
    name: 'Bench',
  });
  const key = await json<{ key: string }>('POST', `${base}/nexus/v3/apikeys`, admin, {
    tenant: 'bench',
    name: 'bench chat key',
    permissions: ['nexus:consumer:chat'],
    capacity: 1_000_000,
    frequency: 1,
  });
  await json('PUT', `${base}/nexus/v3/provisioning/endpoints/bench/Bench`, admin, {});
  await json('PUT', `${base}/nexus/v3/provisioning/queues/bench/Bench`, admin, {
    endpoints: ['Bench'],
  });
  return key;
}

/** What the AI connector attached to the bench hub knows: intents with canned replies. */
const ASSIST_TRAINING = {
  language: 'en',
  intents: [
    {
      name: 'track-order',
      examples: ['where is my parcel', 'track my order', 'my package is late'],
    },
    { name: 'opening-hours', examples: ['when are you open', 'what are your opening hours'] },
    { name: 'refund', examples: ['i want my money back', 'how do i get a refund'] },
  ],
};
const ASSIST_REPLIES = {
  'track-order': ['Your parcel left our depot this morning.'],
  'opening-hours': ['We are open 8:00 to 20:00, every day.'],
  refund: ['Refunds reach your account within five days.'],
};

/**
 * The hub: `bin/api.ts` and `bin/worker.ts` processes, provisioned through its public API. With
 * `athena`, the AI connector (`bin/athena.ts`, API and worker in one process) is attached as the
 * guide registers it, with the built-in NLU: every customer message also reaches it as a signed
 * webhook, and its suggestion reaches the agent's socket.
 */
export async function startHub(
  shape: Shape,
  port: number,
  options: { athena?: boolean } = {},
): Promise<System> {
  const shared = await hubEnvironment('nexus_bench');
  const dbUrl = shared.DATABASE_URL as string;
  const env = {
    ...shared,
    NEXUS_WORKER_CONCURRENCY: '50',
    DB_POOL_SIZE: '20',
    NEXUS_CHAT_SESSION_LIMIT: '10000/1',
    // The hub's webhook deliveries reach the connector on loopback.
    ...(options.athena ? { NEXUS_EGRESS_ALLOW: '127.0.0.1' } : {}),
  };
  const children: ChildProcess[] = [];
  const processes: { role: string; pid: number }[] = [];
  const urls: string[] = [];
  for (let i = 0; i < shape.apiProcesses; i++) {
    const child = run('bin/api.ts', {
      ...env,
      PORT: String(port + i),
      NEXUS_MIGRATE_ON_START: i === 0 ? 'true' : 'false',
    });
    children.push(child);
    urls.push(`http://127.0.0.1:${port + i}`);
    await waitHttp(`${urls[i]}/health/live`);
    processes.push({ role: `api${shape.apiProcesses > 1 ? i + 1 : ''}`, pid: child.pid as number });
  }
  for (let i = 0; i < shape.workerProcesses; i++) {
    const child = run('bin/worker.ts', { ...env, NEXUS_MIGRATE_ON_START: 'false' });
    children.push(child);
    processes.push({
      role: `worker${shape.workerProcesses > 1 ? i + 1 : ''}`,
      pid: child.pid as number,
    });
  }
  const base = urls[0] as string;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const key = await provisionBenchTenant(base);
  if (options.athena) {
    const cluster = await json<{ key: string }>('POST', `${base}/nexus/v3/apikeys`, admin, {
      tenant: '*',
      name: 'athena',
      permissions: ['nexus:cluster:*'],
      capacity: 1_000_000,
      frequency: 1,
    });
    const athenaPort = await freePort();
    const athena = run('bin/athena.ts', {
      ...env,
      PORT: String(athenaPort),
      NEXUS_MIGRATE_ON_START: 'false',
      ATHENA_NEXUS_URL: base,
      ATHENA_NEXUS_API_KEY: cluster.key,
    });
    children.push(athena);
    const athenaUrl = `http://127.0.0.1:${athenaPort}`;
    await waitHttp(`${athenaUrl}/health/live`);
    processes.push({ role: 'athena', pid: athena.pid as number });
    await json(
      'POST',
      `${base}/nexus/v3/provisioning/services/bench/WebhookTransportTarget-ai-connector`,
      admin,
      { url: `${athenaUrl}/nexus/v3/agent-assist-chat/messages` },
    );
    await json('PUT', `${athenaUrl}/nexus/v3/ai/bench/providers/default`, admin, {
      provider: 'builtin',
      training: ASSIST_TRAINING,
      data: { replies: ASSIST_REPLIES },
    });
  }
  const agents: { id: string; token: string }[] = [];
  for (let i = 0; i < shape.agents; i++) {
    const agent = await json<{ data: { id: string } }>(
      'POST',
      `${base}/nexus/v3/agents`,
      { ...admin, 'x-ccid': 'bench' },
      { username: `agent${i}`, name: `Agent ${i}` },
    );
    const token = await json<{ data: { token: string } }>(
      'POST',
      `${base}/nexus/v3/agents/${agent.data.id}/tokens`,
      { ...admin, 'x-ccid': 'bench' },
    );
    agents.push({ id: agent.data.id, token: token.data.token });
  }
  const sessions: { id: string; clientToken: string; interactionId: string; url: string }[] = [];
  for (let i = 0; i < shape.sessions; i += 25) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(25, shape.sessions - i) }, () =>
        json<{ data: { id: string; clientToken: string; interactionId: string } }>(
          'POST',
          `${base}/nexus/v3/chat/sessions`,
          { 'x-api-key': key.key },
          { data: { nickname: 'Bench', endpoint: 'Bench' } },
        ),
      ),
    );
    sessions.push(
      ...batch.map((s, j) => ({ ...s.data, url: urls[(i + j) % urls.length] as string })),
    );
  }
  await Promise.all(
    sessions.map((session, i) => {
      const agent = agents[i % agents.length] as { token: string };
      return json('POST', `${base}/nexus/v3/agent/interactions/${session.interactionId}/join`, {
        authorization: `Bearer ${agent.token}`,
      });
    }),
  );
  const sockets = agents.map((agent, i) =>
    io(`${urls[i % urls.length]}/agent`, {
      path: '/nexus/v3/socket.io',
      auth: { token: agent.token },
      transports: ['websocket'],
    }),
  );
  await connectAll(sockets);
  const listeners: ((delivery: Delivery) => void)[] = [];
  const suggestionListeners: ((suggestion: Suggestion) => void)[] = [];
  // A suggestion names the hub's message id; the message's event gave its client id.
  const clientIds = new Map<string, string>();
  for (const socket of sockets) {
    socket.on(
      'message',
      (event: {
        data: {
          message: { id: string; clientMessageId: string | null };
          from: { type: string };
        };
      }) => {
        if (event.data.from.type !== 'customer' || !event.data.message.clientMessageId) return;
        const delivery = {
          clientMessageId: event.data.message.clientMessageId,
          at: performance.now(),
        };
        if (options.athena) clientIds.set(event.data.message.id, delivery.clientMessageId);
        for (const listener of listeners) listener(delivery);
      },
    );
    socket.on('suggestion', (event: { data: { messageId: string } }) => {
      const clientMessageId = clientIds.get(event.data.messageId);
      if (!clientMessageId) return;
      clientIds.delete(event.data.messageId);
      const suggestion = { clientMessageId, at: performance.now() };
      for (const listener of suggestionListeners) listener(suggestion);
    });
  }
  const pool = new pg.Pool({ connectionString: dbUrl, max: 2 });
  // Let the session-start jobs finish before measuring.
  await waitFor(
    async () => {
      const { rows } = await pool.query<{ n: string }>(
        'SELECT count(*) AS n FROM interactions WHERE started_event_at IS NOT NULL',
      );
      return Number(rows[0]?.n) === shape.sessions;
    },
    120_000,
    'the sessions to start',
  );
  if (options.athena) {
    // The sessions' start and the agents' joins are webhooks to the connector too: let them
    // all be delivered before measuring.
    await waitFor(
      async () => {
        const { rows } = await pool.query<{ n: string }>(
          `SELECT (SELECT count(*) FROM webhook_deliveries WHERE state = 'pending')
                + (SELECT count(*) FROM webhook_dispatch_queue) AS n`,
        );
        return Number(rows[0]?.n) === 0;
      },
      120_000,
      'the set-up events delivered to the connector',
    );
  }
  await sleep(500);

  return {
    name: options.athena ? 'hub+athena' : 'hub',
    processes,
    async send(index, text, clientMessageId) {
      const session = sessions[index % sessions.length] as (typeof sessions)[number];
      const res = await http(
        'POST',
        `${session.url}/nexus/v3/chat/sessions/${session.id}/messages`,
        { 'content-type': 'application/json', 'x-nexus-client-key': session.clientToken },
        JSON.stringify({ data: { type: 'Text', text, clientMessageId } }),
      );
      return res.status;
    },
    async persisted() {
      const { rows } = await pool.query<{ n: string }>(
        "SELECT count(*) AS n FROM messages WHERE sender_type = 'customer' AND seq IS NOT NULL",
      );
      return Number(rows[0]?.n);
    },
    onDelivered: listener => listeners.push(listener),
    onSuggestion: listener => suggestionListeners.push(listener),
    async stop() {
      for (const socket of sockets) socket.close();
      await pool.end();
      await stopAll(children);
    },
  };
}

/** The bare reference pipeline of bench/baseline. */
export async function startBaseline(shape: Shape, port: number): Promise<System> {
  const dbUrl = await freshDatabase('nexus_bench_baseline');
  const prefix = `{bb${randomBytes(3).toString('hex')}}`;
  const env = { DATABASE_URL: dbUrl, REDIS_URL, BASELINE_PREFIX: prefix, NODE_ENV: 'production' };
  const children: ChildProcess[] = [];
  const processes: { role: string; pid: number }[] = [];
  const urls: string[] = [];
  for (let i = 0; i < shape.apiProcesses; i++) {
    const child = run('bench/baseline/api.ts', { ...env, PORT: String(port + i) });
    children.push(child);
    urls.push(`http://127.0.0.1:${port + i}`);
    await waitHttp(`${urls[i]}/`);
    processes.push({ role: `api${shape.apiProcesses > 1 ? i + 1 : ''}`, pid: child.pid as number });
  }
  for (let i = 0; i < shape.workerProcesses; i++) {
    const child = run('bench/baseline/worker.ts', env);
    children.push(child);
    processes.push({
      role: `worker${shape.workerProcesses > 1 ? i + 1 : ''}`,
      pid: child.pid as number,
    });
  }
  const pool = new pg.Pool({ connectionString: dbUrl, max: 2 });
  await waitFor(
    async () => {
      const { rows } = await pool.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_tables WHERE tablename = 'baseline_messages'",
      );
      return Number(rows[0]?.n) === 1;
    },
    60_000,
    'the baseline worker',
  );
  const sessions = Array.from({ length: shape.sessions }, (_, i) => ({
    id: randomUUID(),
    url: urls[i % urls.length] as string,
  }));
  const sockets = Array.from({ length: shape.agents }, (_, i) =>
    io(`${urls[i % urls.length]}/`, { transports: ['websocket'] }),
  );
  await connectAll(sockets);
  await Promise.all(
    sockets.map((socket, a) =>
      socket.timeout(10_000).emitWithAck(
        'join',
        sessions.filter((_, i) => i % sockets.length === a).map(s => s.id),
      ),
    ),
  );
  const listeners: ((delivery: Delivery) => void)[] = [];
  for (const socket of sockets) {
    socket.on('message', (event: { clientMessageId: string }) => {
      const delivery = { clientMessageId: event.clientMessageId, at: performance.now() };
      for (const listener of listeners) listener(delivery);
    });
  }
  return {
    name: 'baseline',
    processes,
    async send(index, text, clientMessageId) {
      const session = sessions[index % sessions.length] as (typeof sessions)[number];
      const res = await http(
        'POST',
        `${session.url}/messages`,
        { 'content-type': 'application/json' },
        JSON.stringify({ sessionId: session.id, text, clientMessageId }),
      );
      return res.status;
    },
    async persisted() {
      const { rows } = await pool.query<{ n: string }>(
        'SELECT count(*) AS n FROM baseline_messages',
      );
      return Number(rows[0]?.n);
    },
    onDelivered: listener => listeners.push(listener),
    async stop() {
      for (const socket of sockets) socket.close();
      await pool.end();
      await stopAll(children);
    },
  };
}
