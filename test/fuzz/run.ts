import { createHash, createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { sql } from 'slonik';
import { io, type Socket } from 'socket.io-client';
import request from 'supertest';
import { z } from 'zod';
import { SOCKET_PATH } from '../../api/realtime/index.js';
import { createAgent, provisionChatTenant } from '../helpers/chat.js';
import type { Harness } from '../helpers/harness.js';
import {
  FUZZ_NUMBER,
  KNOWN,
  operationsOf,
  requestsFor,
  socketEmits,
  type FuzzRequest,
  type Known,
  type OpenApiDocument,
  type Operation,
  type SocketEmit,
} from './generate.js';

/**
 * The fuzz run: one hub served in-process on the harness's databases, provisioned with a tenant
 * and every kind of credential, then driven operation by operation with the requests of
 * test/fuzz/generate.ts. Each request must answer below 500, leave the process without an
 * uncaught error, and, when a write (POST, PUT, PATCH, DELETE) answers 4xx, leave the row count
 * of every table as it was. The socket namespaces get hostile events after the HTTP run, and
 * `GET /health/live` must answer 200 all along.
 *
 * Seeded: operation `op` runs with the seed `FUZZ_SEED + hash(op)`, so one operation replays alone
 * (`FUZZ_ONLY`) with the seed and path a failure prints.
 */

export interface FuzzOptions {
  seed: number;
  /** HTTP requests to generate in all (spread evenly over the operations). */
  runs: number;
  /** Socket events to emit. */
  socketRuns: number;
  /** Logs every answer (status, code, field, the input's kind and the path). */
  verbose?: boolean;
  /** Only the operations whose `METHOD /path` contains this. */
  only?: string;
  /** Replays one counterexample: fast-check's path, with `only` naming its operation. */
  path?: string;
  log?: (line: string) => void;
}

export interface FuzzFailure {
  operation: string;
  seed: number;
  path?: string;
  counterexample: string;
  error: string;
}

export interface FuzzReport {
  seed: number;
  requests: number;
  byClass: Record<string, number>;
  byOperation: Record<string, Record<string, number>>;
  socketEvents: number;
  failures: FuzzFailure[];
  ms: number;
}

const TENANT = 'fuzz';
const VICTIM = 'fuzz-victim';
const NUMBER = FUZZ_NUMBER;
const API_SECRET = 'api-secret-of-the-fuzz-channel';
const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/**
 * Tables that keep a record of a refusal by design, with the refusal's code: an inbound SMS to a
 * number no channel has answers 404 and is kept in `sms_rejections` (docs/errors.md).
 */
const REFUSAL_LEDGERS: Record<string, string> = {
  sms_rejections: 'NEXUS_ERR_SMS_UNKNOWN_CHANNEL',
};
/** A new chat session (the old one may have ended) every so many requests. */
const REFRESH_EVERY = 50;

interface Context {
  url: string;
  admin: string;
  values: Record<Known, string>;
  agentToken: string;
  chatKey: string;
  smsKey: string;
  clientToken: string;
}

/** Runs the fuzz; resolves with what it found (it throws only when the setup fails). */
export async function runFuzz(h: Harness, options: FuzzOptions): Promise<FuzzReport> {
  const started = Date.now();
  const log = options.log ?? (() => undefined);
  const errors: string[] = [];
  const onError = (error: unknown) =>
    errors.push(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  try {
    const served = await h.serve();
    const context = await provision(h, served.url, served.app);
    const document = (await request(served.url).get('/nexus/v3/openapi.json').expect(200))
      .body as OpenApiDocument;
    const operations = operationsOf(document).filter(
      operation => !options.only || operation.key.includes(options.only),
    );
    const counts = await rowCounter(h);
    const report: FuzzReport = {
      seed: options.seed,
      requests: 0,
      byClass: {},
      byOperation: {},
      socketEvents: 0,
      failures: [],
      ms: 0,
    };
    const perOperation = Math.max(1, Math.ceil(options.runs / Math.max(1, operations.length)));
    for (const operation of operations) {
      const seed = operationSeed(options.seed, operation.key);
      const tally: Record<string, number> = (report.byOperation[operation.key] = {});
      await refreshSession(context);
      const details = await fc.check(
        fc.asyncProperty(requestsFor(operation), async generated => {
          if (report.requests > 0 && report.requests % REFRESH_EVERY === 0) {
            await refreshSession(context);
          }
          report.requests += 1;
          const outcome = await send(context, operation, generated, counts);
          const status = outcome.status === 0 ? 'error' : `${Math.floor(outcome.status / 100)}xx`;
          report.byClass[status] = (report.byClass[status] ?? 0) + 1;
          tally[status] = (tally[status] ?? 0) + 1;
          if (outcome.code) tally[outcome.code] = (tally[outcome.code] ?? 0) + 1;
          if (options.verbose) {
            log(
              `${outcome.status} ${outcome.code ?? ''} ${outcome.field ?? ''} ${generated.kind} ${generated.credential} ${operation.method} ${generated.path.slice(0, 160)}?${generated.query.slice(0, 160)} ${typeof generated.body === 'string' ? generated.body.slice(0, 200) : ''}`,
            );
          }
          if (report.requests % 100 === 0) await assertLive(context.url);
          const uncaught = errors.splice(0);
          if (uncaught.length > 0) throw new Error(`uncaught in the process: ${uncaught[0]}`);
          if (outcome.problem) throw new Error(outcome.problem);
        }),
        { seed, numRuns: perOperation, path: options.path, endOnFailure: false },
      );
      if (details.failed) {
        const failure = failureOf(operation.key, options.seed, details);
        report.failures.push(failure);
        log(
          `FAIL ${failure.operation}: ${failure.error}\n  replay: FUZZ_SEED=${failure.seed} FUZZ_ONLY='${failure.operation}' FUZZ_PATH='${failure.path}'\n  counterexample: ${failure.counterexample}`,
        );
      }
    }
    report.socketEvents = await fuzzSockets(context, options, report, errors);
    await assertLive(context.url);
    report.ms = Date.now() - started;
    log(summary(report));
    return report;
  } finally {
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  }
}

/** A per-operation seed: the run's seed and the operation's name, so filtering keeps it. */
export function operationSeed(seed: number, key: string): number {
  return (seed + createHash('sha256').update(key).digest().readUInt32BE(0)) | 0;
}

/** The tenants, keys, agents, channel and chat session the requests name. */
async function provision(
  h: Harness,
  url: string,
  app: Parameters<typeof provisionChatTenant>[1],
): Promise<Context> {
  const admin = `Bearer ${h.config.adminToken}`;
  const t = await provisionChatTenant(h, app, TENANT);
  const victimAgent = await createAgent(h, url, TENANT, 'bob', 'Bob');
  const smsKey = (
    await request(url)
      .post('/nexus/v3/apikeys')
      .set('Authorization', admin)
      .send({
        tenant: TENANT,
        name: 'aggregator',
        permissions: ['nexus:sms:webhook'],
        capacity: 1_000_000,
      })
      .expect(201)
  ).body.key as string;
  const victim = await request(url)
    .post('/nexus/v3/provisioning/tenants')
    .set('Authorization', admin)
    .send({ id: VICTIM, name: VICTIM })
    .expect(201);
  const victimKey = await request(url)
    .get('/nexus/v3/apikeys/current')
    .set('x-api-key', victim.body.data.xapikey as string)
    .expect(200);
  const chatKey = await request(url)
    .get('/nexus/v3/apikeys/current')
    .set('x-api-key', t.chatKey)
    .expect(200);
  // Thousands of requests a minute on one key: its rate limit is not what the run looks at.
  await request(url)
    .patch(`/nexus/v3/apikeys/${chatKey.body.id}`)
    .set('Authorization', admin)
    .send({ capacity: 1_000_000 })
    .expect(200);
  const context: Context = {
    url,
    admin,
    agentToken: t.agent.token,
    chatKey: t.chatKey,
    smsKey,
    clientToken: '',
    values: {
      tenant: TENANT,
      victimTenant: VICTIM,
      agentId: t.agent.id,
      victimAgentId: victimAgent.id,
      apiKeyId: String(chatKey.body.id),
      victimApiKeyId: String(victimKey.body.id),
      sessionId: '',
      interactionId: '',
      channelId: NUMBER,
      deliveryId: '1',
    },
  };
  await refreshSession(context);
  return context;
}

/**
 * Puts back what the run's requests rely on, which valid requests may have replaced (a PUT of
 * the queue `Main` with other endpoints, of the `Async` service with another secret): the chat
 * endpoint and its queue, the SMS channel and its gateway's signing secret.
 */
async function restoreFixtures(context: Context): Promise<void> {
  const put = async (path: string, body: object) => {
    const answer = await request(context.url)
      .put(`/nexus/v3/provisioning/${path}`)
      .set('Authorization', context.admin)
      .send(body);
    if (answer.status !== 200 && answer.status !== 201) {
      throw new Error(
        `restoring ${path} answered ${answer.status}: ${JSON.stringify(answer.body)}`,
      );
    }
  };
  // Another channel the run created may hold the SMS number now: it goes.
  const channels = await request(context.url)
    .get(`/nexus/v3/provisioning/channels/${TENANT}`)
    .set('Authorization', context.admin)
    .expect(200);
  for (const channel of channels.body.data.items as { name: string; channelId?: string }[]) {
    if (channel.channelId === NUMBER && channel.name !== 'chat.SMS_Main') {
      await request(context.url)
        .delete(`/nexus/v3/provisioning/channels/${TENANT}/${encodeURIComponent(channel.name)}`)
        .set('Authorization', context.admin)
        .expect(200);
    }
  }
  await put(`endpoints/${TENANT}/GlobalChatSwitchboard`, {});
  await put(`queues/${TENANT}/Main`, { endpoints: ['GlobalChatSwitchboard'] });
  await put(`channels/${TENANT}/chat.SMS_Main`, {
    channelId: NUMBER,
    endpoint: 'GlobalChatSwitchboard',
    provider: 'Async',
  });
  await put(`services/${TENANT}/Async`, {
    url: 'N/A',
    data: { channels: [{ channelId: NUMBER, webhook: { url: 'https://gateway.example/hook' } }] },
    secret: {
      channels: [{ channelId: NUMBER, webhook: { secret: 'w' }, api: { secret: API_SECRET } }],
    },
  });
}

/** The fixtures restored, a new customer chat joined by the agent: what the requests name. */
async function refreshSession(context: Context): Promise<void> {
  await restoreFixtures(context);
  const started = await request(context.url)
    .post('/nexus/v3/chat/sessions')
    .set('x-api-key', context.chatKey)
    .send({ data: { nickname: 'Ann', endpoint: 'GlobalChatSwitchboard' } })
    .expect(201);
  const session = started.body.data as { id: string; clientToken: string; interactionId: string };
  context.values.sessionId = session.id;
  context.values.interactionId = session.interactionId;
  context.clientToken = session.clientToken;
  await request(context.url)
    .post(`/nexus/v3/agent/interactions/${session.interactionId}/join`)
    .set('Authorization', `Bearer ${context.agentToken}`)
    .expect(200);
}

/** Replaces the `{{name}}` placeholders with the run's values. */
function filled(text: string, context: Context, inUrl = true): string {
  return text.replace(/\{\{(\w+)\}\}/g, (whole, name: string) => {
    if (!(KNOWN as readonly string[]).includes(name)) return whole;
    const value = context.values[name as Known];
    return inUrl ? encodeURIComponent(value) : value;
  });
}

function headersOf(
  operation: Operation,
  generated: FuzzRequest,
  context: Context,
  body: Buffer | undefined,
): Record<string, string> {
  const headers: Record<string, string> = {};
  if (generated.contentType) headers['content-type'] = generated.contentType;
  switch (generated.credential) {
    case 'admin':
      headers.authorization = context.admin;
      // The operator names the tenant where the path does not (and must not contradict it).
      if (!operation.path.includes('{ccid}')) headers['x-ccid'] = TENANT;
      break;
    case 'agent':
      headers.authorization = `Bearer ${context.agentToken}`;
      break;
    case 'chatKey':
      headers['x-api-key'] = context.chatKey;
      break;
    case 'smsKey':
      headers.authorization = `Basic ${Buffer.from(`${TENANT}:${context.smsKey}`).toString('base64')}`;
      break;
    case 'client':
      headers['x-nexus-client-key'] = context.clientToken;
      break;
    case 'signed':
      headers['x-ccid'] = TENANT;
      headers['x-hub-signature'] = `sha1=${createHmac('sha1', API_SECRET)
        .update(body ?? Buffer.alloc(0))
        .digest('hex')}`;
      break;
    case 'bogus':
      headers.authorization = 'Bearer not-a-token';
      headers['x-api-key'] = 'not-a-key';
      headers['x-nexus-client-key'] = 'not-a-client-token';
      break;
    case 'none':
  }
  for (const [name, value] of Object.entries(generated.headers)) {
    headers[name] = filled(value, context, false);
  }
  return headers;
}

interface Outcome {
  status: number;
  /** The error code and field of a 4xx answer. */
  code?: string;
  field?: string;
  problem?: string;
}

async function send(
  context: Context,
  operation: Operation,
  generated: FuzzRequest,
  counts: RowCounter,
): Promise<Outcome> {
  const path =
    filled(generated.path, context) +
    (generated.query ? `?${filled(generated.query, context)}` : '');
  const body =
    generated.body === undefined
      ? undefined
      : typeof generated.body === 'string'
        ? Buffer.from(filled(generated.body, context, false))
        : Buffer.from(generated.body);
  const write = WRITES.has(operation.method);
  const before = write ? await counts() : undefined;
  let status: number;
  let code: string | undefined;
  let field: string | undefined;
  try {
    ({ status, code, field } = await exchange(
      context.url,
      generated.method,
      path,
      headersOf(operation, generated, context, body),
      body,
    ));
  } catch (error) {
    return {
      status: 0,
      problem: `no answer: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
  if (status >= 500) return { status, problem: `answered ${status}` };
  if (before && status >= 400) {
    const after = await counts();
    const changed = Object.keys(after).filter(
      table => after[table] !== before[table] && REFUSAL_LEDGERS[table] !== code,
    );
    if (changed.length > 0) {
      return {
        status,
        code,
        problem: `answered ${status} but stored rows: ${changed.map(table => `${table} ${before[table]} -> ${after[table]}`).join(', ')}`,
      };
    }
  }
  return { status, code, field };
}

/** One request over its own connection, the bytes exactly as generated; resolves with the status. */
function exchange(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer | undefined,
): Promise<{ status: number; code?: string; field?: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const outgoing = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method,
        path,
        headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) },
        agent: false,
        timeout: 30_000,
      },
      incoming => {
        const chunks: Buffer[] = [];
        incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
        incoming.on('end', () => {
          const status = incoming.statusCode ?? 0;
          let answer: { status?: { code?: unknown; field?: unknown } } | undefined;
          try {
            answer =
              status >= 400
                ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof answer)
                : undefined;
          } catch {
            answer = undefined;
          }
          const code = answer?.status?.code;
          const field = answer?.status?.field;
          resolve({
            status,
            code: typeof code === 'string' ? code : undefined,
            field: typeof field === 'string' ? field : undefined,
          });
        });
        incoming.on('error', reject);
      },
    );
    outgoing.on('timeout', () => outgoing.destroy(new Error('no answer within 30 s')));
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

async function assertLive(url: string): Promise<void> {
  const { status } = await exchange(url, 'GET', '/health/live', {}, undefined);
  if (status !== 200) throw new Error(`GET /health/live answered ${status}`);
}

type RowCounter = () => Promise<Record<string, number>>;

/**
 * Rows in every table of the schema, in one statement. A write that answers 4xx must leave every
 * count as it was (requests run one at a time, and no worker runs, so nothing else writes).
 */
async function rowCounter(h: Harness): Promise<RowCounter> {
  const tables = await h.db.anyFirst(sql.type(z.object({ table_name: z.string() }))`
    SELECT table_name FROM information_schema.tables
    WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`);
  const query = sql.type(
    z.object({ counts: z.record(z.number()) }),
  )`SELECT json_build_object(${sql.join(
    tables.map(
      table => sql.fragment`${table}::text, (SELECT count(*) FROM ${sql.identifier([table])})`,
    ),
    sql.fragment`, `,
  )}) AS counts`;
  return () => h.db.oneFirst(query);
}

/** Hostile events on both socket namespaces, and hostile handshakes; the hub stays live. */
async function fuzzSockets(
  context: Context,
  options: FuzzOptions,
  report: FuzzReport,
  errors: string[],
): Promise<number> {
  if (options.socketRuns <= 0) return 0;
  const sockets: Record<SocketEmit['namespace'], Socket> = {
    '/agent': await socketOf(context.url, '/agent', { token: context.agentToken }),
    '/chat': await socketOf(context.url, '/chat', { token: context.clientToken }),
  };
  let emitted = 0;
  try {
    // Handshakes with hostile auth: refused or accepted, never a crash.
    for (const auth of [
      { token: { __proto__: 1 } },
      { token: 'x'.repeat(100_000) },
      { token: context.agentToken, lastSeqs: { a: 'x', [context.values.interactionId]: 1e308 } },
      { token: context.clientToken, lastSeq: '-1' },
      { token: '\u0000' },
      null,
    ]) {
      for (const namespace of ['/agent', '/chat'] as const) {
        const socket = io(`${context.url}${namespace}`, {
          path: SOCKET_PATH,
          auth: auth as Record<string, unknown>,
          transports: ['websocket'],
          reconnection: false,
        });
        await new Promise<void>(resolve => {
          socket.once('connect', () => resolve());
          socket.once('connect_error', () => resolve());
          setTimeout(resolve, 2_000);
        });
        socket.close();
      }
    }
    const details = await fc.check(
      fc.asyncProperty(socketEmits(), async emit => {
        emitted += 1;
        let socket = sockets[emit.namespace];
        if (!socket.connected) {
          // The server may drop a socket that sent garbage; the next one starts afresh.
          socket = sockets[emit.namespace] = await socketOf(context.url, emit.namespace, {
            token: emit.namespace === '/agent' ? context.agentToken : context.clientToken,
          });
        }
        const payload = JSON.parse(
          filled(JSON.stringify(emit.payload), context, false),
        ) as unknown[];
        await socket
          .timeout(500)
          .emitWithAck(emit.event, ...payload)
          .catch(() => undefined);
        if (emitted % 50 === 0) await assertLive(context.url);
        const uncaught = errors.splice(0);
        if (uncaught.length > 0) throw new Error(`uncaught in the process: ${uncaught[0]}`);
      }),
      { seed: options.seed, numRuns: options.socketRuns, endOnFailure: true },
    );
    if (details.failed) {
      report.failures.push(failureOf('socket events', options.seed, details));
    }
  } finally {
    sockets['/agent'].close();
    sockets['/chat'].close();
  }
  return emitted;
}

function socketOf(
  url: string,
  namespace: '/agent' | '/chat',
  auth: Record<string, unknown>,
): Promise<Socket> {
  const socket = io(`${url}${namespace}`, {
    path: SOCKET_PATH,
    auth,
    transports: ['websocket'],
    reconnection: false,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', reject);
  });
}

/** A value for a report: long strings and arrays cut to what a reader needs. */
function shown(value: unknown): string {
  const text = JSON.stringify(value, (_key, item: unknown) => {
    if (typeof item === 'string' && item.length > 120) {
      return `${item.slice(0, 60)}…(${item.length} chars)`;
    }
    if (Array.isArray(item) && item.length > 40) {
      return [...item.slice(0, 20), `…(${item.length} items)`];
    }
    return item;
  });
  return text ?? String(value);
}

/** Totals per status class and per operation. */
export function summary(report: FuzzReport): string {
  const classes = (tally: Record<string, number>) =>
    Object.entries(tally)
      .sort()
      .map(([name, count]) => `${name} ${count}`)
      .join(', ');
  return [
    `fuzz: seed ${report.seed}, ${report.requests} HTTP requests, ${report.socketEvents} socket events, ${(report.ms / 1000).toFixed(1)} s`,
    `  by status class: ${classes(report.byClass)}`,
    `  failures: ${report.failures.length}`,
    ...Object.entries(report.byOperation).map(([key, tally]) => `  ${key}: ${classes(tally)}`),
  ].join('\n');
}

/** A failed property's report: what failed, how to replay it, and the shrunk counterexample. */
function failureOf(
  operation: string,
  seed: number,
  details: {
    counterexamplePath: string | null;
    counterexample: unknown[] | null;
    errorInstance: unknown;
  },
): FuzzFailure {
  return {
    operation,
    seed,
    path: details.counterexamplePath ?? undefined,
    counterexample: shown(details.counterexample?.[0]),
    error:
      details.errorInstance instanceof Error
        ? details.errorInstance.message
        : String(details.errorInstance),
  };
}
