/**
 * `npm run bench:webhooks-fairness` (also part of `npm run bench`): what one target that never
 * answers, with a backlog, does to another target's deliveries. The hub runs twice in the same
 * run: with its defaults (the per-target limits), then with those limits lifted, as it ran before
 * it had them. Each time a silent target gets a backlog of first attempts, then a healthy target
 * gets a steady stream of events; the figure is the healthy target's delivery latency (event
 * written → request received). See docs/webhooks.md#fairness-between-targets.
 *
 * Environment: BENCH_FAIRNESS_BACKLOG (1000 deliveries for the silent target),
 * BENCH_FAIRNESS_RATE (50 events/s for the healthy one), BENCH_FAIRNESS_SECONDS (10),
 * BENCH_FAIRNESS_TIMEOUT_MS (2000, the webhook timeout).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import pg from 'pg';
import { json } from './http.js';
import { percentile, sleep, waitFor } from './measure.js';
import { ADMIN_TOKEN, freePort, hubEnvironment, run, stopAll, waitHttp } from './systems.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const BACKLOG = env('BENCH_FAIRNESS_BACKLOG', 1_000);
const RATE = env('BENCH_FAIRNESS_RATE', 50);
const SECONDS = env('BENCH_FAIRNESS_SECONDS', 10);
const TIMEOUT_MS = env('BENCH_FAIRNESS_TIMEOUT_MS', 2_000);
const CONCURRENCY = 50;
/** How long the healthy target's last deliveries may take before the run gives up on them. */
const DRAIN_LIMIT_MS = 180_000;

async function listen(server: Server): Promise<string> {
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/hooks`;
}

interface Result {
  setting: string;
  written: number;
  delivered: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  silentRequests: number;
  mostSilentOpen: number;
}

async function runOnce(setting: string, limits: Record<string, string>): Promise<Result> {
  // The silent receiver takes every request and never answers.
  let silentRequests = 0;
  let open = 0;
  let mostSilentOpen = 0;
  const silent = createServer((req, res) => {
    silentRequests++;
    mostSilentOpen = Math.max(mostSilentOpen, ++open);
    req.resume();
    res.on('close', () => open--);
  });
  // The healthy receiver answers at once and notes when each event's delivery arrived.
  const arrived = new Map<number, number>();
  const healthy = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const seq = (JSON.parse(Buffer.concat(chunks).toString()) as { seq: number }).seq;
      if (!arrived.has(seq)) arrived.set(seq, performance.now());
      res.writeHead(200).end();
    });
  });
  healthy.keepAliveTimeout = 60_000;
  const silentUrl = await listen(silent);
  const healthyUrl = await listen(healthy);

  const shared = await hubEnvironment('nexus_bench_fairness');
  const dbUrl = shared.DATABASE_URL as string;
  const base = {
    ...shared,
    NEXUS_EGRESS_ALLOW: '127.0.0.1',
    NEXUS_WEBHOOK_CONCURRENCY: String(CONCURRENCY),
    NEXUS_WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
    ...limits,
  };
  const port = await freePort();
  const api = run('bin/api.ts', { ...base, PORT: String(port) });
  const workers = [];
  const pool = new pg.Pool({ connectionString: dbUrl, max: 2 });
  try {
    await waitHttp(`http://127.0.0.1:${port}/health/live`);
    const auth = { Authorization: `Bearer ${ADMIN_TOKEN}` };
    const services = `http://127.0.0.1:${port}/nexus/v3/provisioning/services/bench`;
    await json('POST', `http://127.0.0.1:${port}/nexus/v3/provisioning/tenants`, auth, {
      id: 'bench',
      name: 'bench',
    });
    // The silent target takes `read` events, the healthy one `message.created`.
    await json('PUT', `${services}/WebhookTransportTarget-silent`, auth, {
      url: silentUrl,
      data: { events: ['read'], retrySchedule: [600] },
    });
    await json('PUT', `${services}/WebhookTransportTarget-crm`, auth, {
      url: healthyUrl,
      data: { events: ['message.created'] },
    });
    await stopAll([api]);
    const interactions = [randomUUID(), randomUUID()];
    for (const id of interactions) {
      await pool.query(
        `INSERT INTO interactions (id, tenant_id, media, subtype) VALUES ($1, 'bench', 'chat', 'InboundNew')`,
        [id],
      );
    }
    // The backlog, in one statement, before the worker starts.
    await pool.query(
      `INSERT INTO events (id, tenant_id, interaction_id, seq, type, payload)
       SELECT gen_random_uuid(), 'bench', $1, g, 'read',
              jsonb_build_object('participant', jsonb_build_object('id', 'c', 'type', 'customer',
                'nickname', NULL), 'seq', g)
       FROM generate_series(1, $2::int) g`,
      [interactions[0], BACKLOG],
    );
    workers.push(
      run('bin/worker.ts', {
        ...base,
        NEXUS_MIGRATE_ON_START: 'false',
        NEXUS_WORKER_QUEUES: 'webhooks',
      }),
    );
    await waitFor(() => silentRequests > 0, 60_000, `${setting}: the silent backlog started`);

    // The healthy target's stream: RATE events a second, written every 100 ms.
    const writtenAt = new Map<number, number>();
    const perTick = Math.max(1, Math.round(RATE / 10));
    let seq = 0;
    const ticks = Math.round(SECONDS * 10);
    for (let tick = 0; tick < ticks; tick++) {
      const from = seq + 1;
      seq += perTick;
      const at = performance.now();
      await pool.query(
        `INSERT INTO events (id, tenant_id, interaction_id, seq, type, payload)
         SELECT gen_random_uuid(), 'bench', $1, g, 'message.created',
                jsonb_build_object('message', jsonb_build_object('id', gen_random_uuid(),
                  'type', 'Text', 'text', 'hello', 'clientMessageId', NULL, 'createdAt', now()),
                  'from', jsonb_build_object('id', 'c', 'type', 'customer', 'nickname', 'Bench'))
         FROM generate_series($2::int, $3::int) g`,
        [interactions[1], from, seq],
      );
      for (let s = from; s <= seq; s++) writtenAt.set(s, at);
      await sleep(Math.max(0, at + 100 - performance.now()));
    }
    await waitFor(
      () => arrived.size >= seq,
      DRAIN_LIMIT_MS,
      `${setting}: healthy deliveries`,
    ).catch(() => undefined);
    const latencies = [...writtenAt]
      .map(([s, at]) => (arrived.get(s) ?? Number.NaN) - at)
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
    return {
      setting,
      written: seq,
      delivered: latencies.length,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: latencies.at(-1) ?? Number.NaN,
      silentRequests,
      mostSilentOpen,
    };
  } finally {
    await pool.end();
    await stopAll([api, ...workers]);
    silent.closeAllConnections();
    healthy.closeAllConnections();
    silent.close();
    healthy.close();
  }
}

const results = [
  await runOnce('defaults', {}),
  await runOnce('limits lifted', {
    NEXUS_WEBHOOK_TARGET_CONCURRENCY: String(CONCURRENCY),
    NEXUS_WEBHOOK_TARGET_BATCHES: '1000000',
  }),
];
const f = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '-');
for (const r of results) {
  console.log(
    `webhooks fairness ${r.setting.padEnd(13)} healthy target: ${r.delivered}/${r.written} delivered, latency p50 ${f(r.p50Ms)} ms p99 ${f(r.p99Ms)} ms max ${f(r.maxMs)} ms; silent target: ${r.silentRequests} requests, at most ${r.mostSilentOpen} open`,
  );
}
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/webhooks-fairness-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(
  file,
  JSON.stringify(
    {
      backlog: BACKLOG,
      rate: RATE,
      seconds: SECONDS,
      timeoutMs: TIMEOUT_MS,
      concurrency: CONCURRENCY,
      results,
    },
    null,
    2,
  ),
);
console.log(`results: ${file}`);
process.exit(0);
