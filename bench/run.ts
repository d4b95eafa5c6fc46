/**
 * `npm run bench`: the chat pipeline of the hub against a bare reference pipeline, measured in the
 * same run on the same machine. See docs/performance.md.
 *
 * Environment: BENCH_SECONDS (10), BENCH_SENDERS (50), BENCH_SESSIONS (500), BENCH_AGENTS (5),
 * BENCH_RATE (1000 messages/s for chat-paced), BENCH_API_PROCESSES (1), BENCH_WORKER_PROCESSES (1),
 * BENCH_SYSTEMS (baseline,hub), BENCH_SCENARIOS (chat-max,chat-paced).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import {
  cpuSeconds,
  cpuSecondsOf,
  Latencies,
  printTable,
  peakRssMiB,
  sleep,
  waitFor,
} from './measure.js';
import { startBaseline, startHub, type Shape, type System } from './systems.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const SECONDS = env('BENCH_SECONDS', 10);
const SENDERS = env('BENCH_SENDERS', 50);
const RATE = env('BENCH_RATE', 1000);
const shape: Shape = {
  sessions: env('BENCH_SESSIONS', 500),
  agents: env('BENCH_AGENTS', 5),
  apiProcesses: env('BENCH_API_PROCESSES', 1),
  workerProcesses: env('BENCH_WORKER_PROCESSES', 1),
};
const SYSTEMS = (process.env.BENCH_SYSTEMS ?? 'baseline,hub').split(',');
const SCENARIOS = (process.env.BENCH_SCENARIOS ?? 'chat-max,chat-paced').split(',');
const TEXT = 'x'.repeat(180);

interface Result {
  system: string;
  scenario: string;
  accepted: number;
  errors: number;
  persisted: number;
  delivered: number;
  acceptedPerSecond: number;
  deliveredPerSecond: number;
  http: { p50: number; p99: number };
  endToEnd: { p50: number; p99: number };
  cpu: Record<string, number>;
  peakRssMiB: Record<string, number>;
  countsAgree: boolean;
}

let runId = 0;

async function scenario(system: System, name: string): Promise<Result> {
  const sentAt = new Map<string, number>();
  const delivered = new Set<string>();
  const httpLatency = new Latencies();
  const e2e = new Latencies();
  let accepted = 0;
  let errors = 0;
  let lastDelivery = 0;
  const persistedBefore = await system.persisted();
  const tag = `${name}-${++runId}-`;
  system.onDelivered(delivery => {
    if (!delivery.clientMessageId.startsWith(tag)) return;
    if (delivered.has(delivery.clientMessageId)) return;
    delivered.add(delivery.clientMessageId);
    const sent = sentAt.get(delivery.clientMessageId);
    if (sent !== undefined) e2e.add(delivery.at - sent);
    lastDelivery = delivery.at;
  });

  let counter = 0;
  const sendOne = async () => {
    const id = `${tag}${counter}`;
    const session = counter++;
    const started = performance.now();
    sentAt.set(id, started);
    try {
      const status = await system.send(session, TEXT, id);
      httpLatency.add(performance.now() - started);
      if (status === 202) accepted++;
      else errors++;
    } catch {
      errors++;
    }
  };

  // The system's processes, and what they share the machine with.
  const cpuNow = (): Record<string, number> => ({
    ...Object.fromEntries(system.processes.map(p => [p.role, cpuSeconds(p.pid)])),
    postgres: cpuSecondsOf('postgres'),
    redis: cpuSecondsOf('redis-server'),
    loadgen: cpuSeconds(process.pid),
  });
  const cpuBefore = cpuNow();
  const startedAt = performance.now();
  const endAt = startedAt + SECONDS * 1000;
  if (name === 'chat-max') {
    await Promise.all(
      Array.from({ length: SENDERS }, async () => {
        while (performance.now() < endAt) await sendOne();
      }),
    );
  } else {
    // Open loop: sends leave on schedule, whatever the answers do.
    const inflight: Promise<void>[] = [];
    const total = RATE * SECONDS;
    for (let i = 0; i < total; i++) {
      const due = startedAt + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      inflight.push(sendOne());
    }
    await Promise.all(inflight);
  }
  const windowEnd = performance.now();
  const sentCount = counter;
  await waitFor(
    async () =>
      delivered.size >= accepted && (await system.persisted()) - persistedBefore >= accepted,
    120_000,
    'every accepted message to be persisted and delivered',
  ).catch((error: unknown) => console.error(String(error)));
  await sleep(300);
  const wall = Math.max(windowEnd, lastDelivery) - startedAt;
  const cpu = Object.fromEntries(
    Object.entries(cpuNow()).map(([role, seconds]) => [
      role,
      (seconds - (cpuBefore[role] ?? 0)) / (wall / 1000),
    ]),
  );
  const persisted = (await system.persisted()) - persistedBefore;
  return {
    system: system.name,
    scenario: name,
    accepted,
    errors: errors + (sentCount - accepted - errors),
    persisted,
    delivered: delivered.size,
    acceptedPerSecond: accepted / ((windowEnd - startedAt) / 1000),
    deliveredPerSecond: delivered.size / (wall / 1000),
    http: httpLatency.summary(),
    endToEnd: e2e.summary(),
    cpu,
    peakRssMiB: Object.fromEntries(system.processes.map(p => [p.role, peakRssMiB(p.pid)])),
    countsAgree: accepted === persisted && accepted === delivered.size,
  };
}

const results: Result[] = [];
for (const name of SYSTEMS) {
  process.stderr.write(`starting ${name}...\n`);
  const system =
    name === 'hub' ? await startHub(shape, 47_100) : await startBaseline(shape, 47_200);
  try {
    for (const s of SCENARIOS) {
      process.stderr.write(`  ${name} ${s}...\n`);
      results.push(await scenario(system, s));
      await sleep(1_000);
    }
  } finally {
    await system.stop();
  }
}

const f = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const rows = [
  [
    'system',
    'scenario',
    'accepted/s',
    'delivered/s',
    'http p50',
    'http p99',
    'e2e p50',
    'e2e p99',
    'errors',
    'accepted=persisted=delivered',
    'cpu (cores)',
    'peak RSS MiB',
  ],
  ...results.map(r => [
    r.system,
    r.scenario,
    f(r.acceptedPerSecond),
    f(r.deliveredPerSecond),
    f(r.http.p50, 1),
    f(r.http.p99, 1),
    f(r.endToEnd.p50, 1),
    f(r.endToEnd.p99, 1),
    String(r.errors),
    `${r.accepted}/${r.persisted}/${r.delivered}${r.countsAgree ? '' : ' MISMATCH'}`,
    Object.entries(r.cpu)
      .map(([k, v]) => `${k} ${f(v, 2)}`)
      .join(' '),
    Object.entries(r.peakRssMiB)
      .map(([k, v]) => `${k} ${f(v)}`)
      .join(' '),
  ]),
];
printTable(rows);

const ratios: Record<string, unknown> = {};
for (const s of SCENARIOS) {
  const hub = results.find(r => r.system === 'hub' && r.scenario === s);
  const base = results.find(r => r.system === 'baseline' && r.scenario === s);
  if (!hub || !base) continue;
  ratios[s] = {
    throughput: hub.acceptedPerSecond / base.acceptedPerSecond,
    delivered: hub.deliveredPerSecond / base.deliveredPerSecond,
    httpP99: hub.http.p99 / base.http.p99,
    endToEndP99: hub.endToEnd.p99 / base.endToEnd.p99,
  };
  console.log(
    `${s}: hub/baseline throughput ${f(hub.acceptedPerSecond / base.acceptedPerSecond, 2)}x, delivered ${f(hub.deliveredPerSecond / base.deliveredPerSecond, 2)}x, http p99 ${f(hub.http.p99 / base.http.p99, 2)}x, e2e p99 ${f(hub.endToEnd.p99 / base.endToEnd.p99, 2)}x`,
  );
}
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(
  file,
  JSON.stringify(
    { shape, seconds: SECONDS, senders: SENDERS, rate: RATE, results, ratios },
    null,
    2,
  ),
);
console.log(`results: ${file}`);
const mismatched = results.filter(r => !r.countsAgree);
if (mismatched.length > 0) {
  console.error(
    `FAILED: counts disagree for ${mismatched.map(r => `${r.system} ${r.scenario}`).join(', ')}`,
  );
  process.exit(1);
}
process.exit(0);
