/**
 * `npm run bench:webhooks` (also part of `npm run bench`): webhook deliveries per second to a
 * loopback receiver, the hub against a bare BullMQ → HTTP POST pipeline, measured in the same run.
 * A backlog of events is written at once and drained; the figure is deliveries / wall time from
 * the write to the last delivery. See docs/performance.md.
 *
 * Environment: BENCH_WEBHOOK_EVENTS (20000), BENCH_WEBHOOK_CONCURRENCY (400 per worker process),
 * BENCH_WORKER_PROCESSES (1 for each system), BENCH_SYSTEMS (baseline,hub), BENCH_BUILT (see
 * systems.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { cpuSeconds, cpuSecondsOf, sleep, waitFor } from './measure.js';
import { json } from './http.js';
import {
  ADMIN_TOKEN,
  freePort,
  hubEnvironment,
  REDIS_URL,
  run,
  stopAll,
  waitHttp,
} from './systems.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const EVENTS = env('BENCH_WEBHOOK_EVENTS', 20_000);
const CONCURRENCY = env('BENCH_WEBHOOK_CONCURRENCY', 400);
const WORKERS = env('BENCH_WORKER_PROCESSES', 1);
const SYSTEMS = (process.env.BENCH_SYSTEMS ?? 'baseline,hub').split(',');
// Enough for the workers to open their keep-alive connections and warm up before the measurement.
const WARMUP = 2_000;
const TEXT = 'x'.repeat(180);

/** The receiver: counts requests, connections and distinct webhook ids, remembers the last arrival. */
const seen = new Set<string>();
let requests = 0;
let connections = 0;
let lastAt = 0;
const receiver = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    requests++;
    seen.add(String(req.headers['webhook-id']));
    lastAt = performance.now();
    res.writeHead(200);
    res.end();
  });
});
receiver.keepAliveTimeout = 60_000;
receiver.on('connection', () => connections++);
await new Promise<void>(resolve => receiver.listen(0, '127.0.0.1', resolve));
const target = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hooks`;
const reset = () => {
  seen.clear();
  requests = 0;
  connections = 0;
  lastAt = 0;
};

interface Driver {
  name: string;
  processes: { role: string; pid: number }[];
  /** Writes `count` events (or jobs) at once; resolves when written. */
  write(count: number): Promise<void>;
  delivered(): Promise<number>;
  /** PostgreSQL's write transactions and WAL bytes so far (the hub's only). */
  postgres?(): Promise<{ transactions: number; walBytes: number }>;
  stop(): Promise<void>;
}

async function startHub(): Promise<Driver> {
  const shared = await hubEnvironment('nexus_bench_webhooks');
  const dbUrl = shared.DATABASE_URL as string;
  const base = {
    ...shared,
    DB_POOL_SIZE: '20',
    NEXUS_EGRESS_ALLOW: '127.0.0.1',
    NEXUS_WEBHOOK_CONCURRENCY: String(CONCURRENCY),
    // One target: its share of the places is all of them (by default a target gets half, which
    // keeps the other half for other targets; docs/webhooks.md#fairness-between-targets).
    NEXUS_WEBHOOK_TARGET_CONCURRENCY:
      process.env.NEXUS_WEBHOOK_TARGET_CONCURRENCY ?? String(CONCURRENCY),
  };
  // Provision through the API, then stop it: only the workers run during the measurement.
  const port = await freePort();
  const api = run('bin/api.ts', { ...base, PORT: String(port) });
  await waitHttp(`http://127.0.0.1:${port}/health/live`);
  const auth = { Authorization: `Bearer ${ADMIN_TOKEN}` };
  await json('POST', `http://127.0.0.1:${port}/nexus/v3/provisioning/tenants`, auth, {
    id: 'bench',
    name: 'bench',
  });
  await json(
    'PUT',
    `http://127.0.0.1:${port}/nexus/v3/provisioning/services/bench/WebhookTransportTarget-crm`,
    auth,
    { url: target, secret: `whsec_${randomBytes(24).toString('base64')}` },
  );
  await stopAll([api]);
  const children = Array.from({ length: WORKERS }, () =>
    run('bin/worker.ts', {
      ...base,
      NEXUS_MIGRATE_ON_START: 'false',
      NEXUS_WORKER_QUEUES: 'webhooks',
    }),
  );
  const pool = new pg.Pool({ connectionString: dbUrl, max: 2 });
  const interaction = randomUUID();
  await pool.query(
    `INSERT INTO interactions (id, tenant_id, media, subtype) VALUES ($1, 'bench', 'chat', 'InboundNew')`,
    [interaction],
  );
  let seq = 0;
  return {
    name: 'hub',
    processes: children.map((child, i) => ({
      role: `worker${WORKERS > 1 ? i + 1 : ''}`,
      pid: child.pid as number,
    })),
    async write(count) {
      const from = seq + 1;
      seq += count;
      // One statement, as a burst of conversation writes would: the trigger fans them out.
      await pool.query(
        `WITH s AS (UPDATE interactions SET last_seq = $3 WHERE id = $1)
         INSERT INTO events (id, tenant_id, interaction_id, seq, type, payload)
         SELECT gen_random_uuid(), 'bench', $1, g, 'message.created',
                jsonb_build_object('message', jsonb_build_object('id', gen_random_uuid(),
                  'type', 'Text', 'text', $4::text, 'clientMessageId', NULL,
                  'createdAt', now()), 'from', jsonb_build_object('id', 'c', 'type', 'customer',
                  'nickname', 'Bench'))
         FROM generate_series($2::int, $3::int) g`,
        [interaction, from, seq, TEXT],
      );
    },
    async delivered() {
      const { rows } = await pool.query<{ n: string }>(
        "SELECT count(*) AS n FROM webhook_deliveries WHERE state = 'delivered'",
      );
      return Number(rows[0]?.n);
    },
    async postgres() {
      // Every transaction that writes takes a transaction id; reads do not (nor does this one).
      const { rows } = await pool.query<{ xid: string; wal: string }>(
        `SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xid,
                (pg_current_wal_lsn() - '0/0')::text AS wal`,
      );
      return { transactions: Number(rows[0]?.xid), walBytes: Number(rows[0]?.wal) };
    },
    async stop() {
      await pool.end();
      await stopAll(children);
    },
  };
}

function startBaseline(): Driver {
  const prefix = `{bw${randomBytes(3).toString('hex')}}`;
  const children = Array.from({ length: WORKERS }, () =>
    run('bench/baseline/webhook-worker.ts', {
      REDIS_URL,
      BASELINE_PREFIX: prefix,
      BASELINE_TARGET: target,
      BASELINE_CONCURRENCY: String(CONCURRENCY),
      NODE_ENV: 'production',
    }),
  );
  const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue('webhooks', { connection, prefix });
  let next = 0;
  let completed = 0;
  return {
    name: 'baseline',
    processes: children.map((child, i) => ({
      role: `worker${WORKERS > 1 ? i + 1 : ''}`,
      pid: child.pid as number,
    })),
    async write(count) {
      for (let done = 0; done < count; done += 1_000) {
        const batch = Array.from({ length: Math.min(1_000, count - done) }, () => {
          const id = `evt-${++next}`;
          return {
            name: 'webhooks',
            data: {
              id,
              type: 'message.created',
              tenant: 'bench',
              seq: next,
              data: { message: { id, type: 'Text', text: TEXT }, from: { id: 'c' } },
            },
            opts: { jobId: id, removeOnComplete: { count: 1_000 } },
          };
        });
        await queue.addBulk(batch);
      }
      completed += count;
    },
    delivered() {
      // The baseline keeps no delivery record: the receiver's count is the only one.
      return Promise.resolve(Math.min(completed, seen.size));
    },
    async stop() {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      connection.disconnect();
      await stopAll(children);
    },
  };
}

interface Result {
  system: string;
  events: number;
  seconds: number;
  /** How long writing the backlog took (the events and their fan-out, or the jobs). */
  writeSeconds: number;
  deliveriesPerSecond: number;
  duplicates: number;
  /** TCP connections the receiver accepted during the measurement (keep-alive reuses them). */
  connections: number;
  cpu: Record<string, number>;
  cpuMsPerDelivery: number;
  /** Per 1,000 deliveries: PostgreSQL transactions that wrote, and WAL written (kB). */
  postgres?: { transactions: number; walKb: number };
}

async function measure(driver: Driver): Promise<Result> {
  // Warm-up: connections, caches and JIT, outside the measurement.
  reset();
  await driver.write(WARMUP);
  await waitFor(() => seen.size >= WARMUP, 120_000, `${driver.name} warm-up`);
  await sleep(500);
  reset();
  const cpuNow = (): Record<string, number> => ({
    ...Object.fromEntries(driver.processes.map(p => [p.role, cpuSeconds(p.pid)])),
    postgres: cpuSecondsOf('postgres'),
    redis: cpuSecondsOf('redis-server'),
    'loadgen+receiver': cpuSeconds(process.pid),
  });
  const before = cpuNow();
  const pgBefore = await driver.postgres?.();
  const started = performance.now();
  await driver.write(EVENTS);
  const writeSeconds = (performance.now() - started) / 1000;
  await waitFor(() => seen.size >= EVENTS, 600_000, `${driver.name}: every delivery`);
  const seconds = (lastAt - started) / 1000;
  await waitFor(
    async () => (await driver.delivered()) >= EVENTS + (driver.name === 'hub' ? WARMUP : 0),
    60_000,
    'recorded',
  );
  const after = cpuNow();
  const pgAfter = await driver.postgres?.();
  const cpu = Object.fromEntries(
    Object.entries(after).map(([role, s]) => [role, (s - (before[role] ?? 0)) / seconds]),
  );
  const cpuTotal = Object.entries(after)
    .filter(([role]) => role !== 'loadgen+receiver')
    .reduce((sum, [role, s]) => sum + s - (before[role] ?? 0), 0);
  return {
    system: driver.name,
    events: EVENTS,
    seconds,
    writeSeconds,
    deliveriesPerSecond: EVENTS / seconds,
    duplicates: requests - seen.size,
    connections,
    cpu,
    cpuMsPerDelivery: (cpuTotal * 1000) / EVENTS,
    ...(pgBefore && pgAfter
      ? {
          postgres: {
            transactions: ((pgAfter.transactions - pgBefore.transactions) * 1000) / EVENTS,
            walKb: (pgAfter.walBytes - pgBefore.walBytes) / EVENTS,
          },
        }
      : {}),
  };
}

const results: Result[] = [];
for (const name of SYSTEMS) {
  process.stderr.write(`webhooks: starting ${name}...\n`);
  const driver = name === 'hub' ? await startHub() : startBaseline();
  try {
    results.push(await measure(driver));
  } finally {
    await driver.stop();
  }
}
receiver.close();

const f = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
for (const r of results) {
  console.log(
    `webhooks ${r.system.padEnd(8)} ${f(r.deliveriesPerSecond)} deliveries/s (${r.events} in ${f(r.seconds, 2)} s, written in ${f(r.writeSeconds, 2)} s), duplicates ${r.duplicates}, connections ${r.connections}, cpu ${Object.entries(
      r.cpu,
    )
      .map(([k, v]) => `${k} ${f(v, 2)}`)
      .join(' ')}, ${f(r.cpuMsPerDelivery, 3)} ms CPU per delivery (without the receiver)${
      r.postgres
        ? `; per 1,000 deliveries PostgreSQL ${f(r.postgres.transactions, 1)} write transactions, ${f(r.postgres.walKb)} kB WAL`
        : ''
    }`,
  );
}
const hub = results.find(r => r.system === 'hub');
const base = results.find(r => r.system === 'baseline');
const ratio = hub && base ? hub.deliveriesPerSecond / base.deliveriesPerSecond : undefined;
if (ratio !== undefined) console.log(`webhooks: hub/baseline deliveries ${f(ratio, 2)}x`);
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/webhooks-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(
  file,
  JSON.stringify(
    { events: EVENTS, concurrency: CONCURRENCY, workers: WORKERS, results, ratio },
    null,
    2,
  ),
);
console.log(`results: ${file}`);
process.exit(0);
