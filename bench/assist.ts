/**
 * `npm run bench:assist` (also part of `npm run bench`): the AI connector's agent assist. The hub
 * alone and the hub with the connector attached (the built-in NLU) take the same open-loop chat
 * load; for each, the customer message → agent socket latency (chat delivery), and with the
 * connector the customer message → suggestion on the agent socket latency. The rounds alternate
 * the two systems. See docs/performance.md.
 *
 * Environment: BENCH_ASSIST_RATE (200 messages/s), BENCH_SECONDS (10), BENCH_SESSIONS (500),
 * BENCH_AGENTS (5), BENCH_ASSIST_ROUNDS (2), BENCH_BUILT and BENCH_PROFILE (see systems.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpuSeconds, cpuSecondsOf, Latencies, printTable, sleep, waitFor } from './measure.js';
import { startHub, type Shape, type System } from './systems.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const RATE = env('BENCH_ASSIST_RATE', 200);
const SECONDS = env('BENCH_SECONDS', 10);
const ROUNDS = env('BENCH_ASSIST_ROUNDS', 2);
const shape: Shape = {
  sessions: env('BENCH_SESSIONS', 500),
  agents: env('BENCH_AGENTS', 5),
  apiProcesses: 1,
  workerProcesses: 1,
};
/** What customers write: each matches an intent of the connector's training (systems.ts). */
const TEXTS = [
  'Hello, where is my parcel? It should have arrived yesterday.',
  'When are you open on Sunday?',
  'How do I get a refund for my order?',
];

interface Result {
  system: string;
  round: number;
  accepted: number;
  delivered: number;
  suggested: number;
  chat: { p50: number; p99: number };
  suggestion: { p50: number; p99: number };
  cpu: Record<string, number>;
}

async function measure(system: System, round: number): Promise<Result> {
  const sentAt = new Map<string, number>();
  const delivered = new Set<string>();
  const suggested = new Set<string>();
  const chat = new Latencies();
  const suggestion = new Latencies();
  const tag = `r${round}-`;
  system.onDelivered(delivery => {
    if (!delivery.clientMessageId.startsWith(tag) || delivered.has(delivery.clientMessageId)) {
      return;
    }
    delivered.add(delivery.clientMessageId);
    const sent = sentAt.get(delivery.clientMessageId);
    if (sent !== undefined) chat.add(delivery.at - sent);
  });
  system.onSuggestion?.(event => {
    if (!event.clientMessageId.startsWith(tag) || suggested.has(event.clientMessageId)) return;
    suggested.add(event.clientMessageId);
    const sent = sentAt.get(event.clientMessageId);
    if (sent !== undefined) suggestion.add(event.at - sent);
  });
  const cpuNow = (): Record<string, number> => ({
    ...Object.fromEntries(system.processes.map(p => [p.role, cpuSeconds(p.pid)])),
    postgres: cpuSecondsOf('postgres'),
    redis: cpuSecondsOf('redis-server'),
  });
  const cpuBefore = cpuNow();
  let accepted = 0;
  const startedAt = performance.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < RATE * SECONDS; i++) {
    const due = startedAt + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const id = `${tag}${i}`;
    sentAt.set(id, performance.now());
    inflight.push(
      system.send(i, TEXTS[i % TEXTS.length] as string, id).then(
        status => void (status === 202 && accepted++),
        () => undefined,
      ),
    );
  }
  await Promise.all(inflight);
  const withAthena = system.onSuggestion !== undefined && system.name.includes('athena');
  await waitFor(
    () => delivered.size >= accepted && (!withAthena || suggested.size >= accepted),
    120_000,
    'every message delivered (and suggested for)',
  ).catch((error: unknown) => console.error(String(error)));
  const wall = (performance.now() - startedAt) / 1000;
  const cpu = Object.fromEntries(
    Object.entries(cpuNow()).map(([role, s]) => [role, (s - (cpuBefore[role] ?? 0)) / wall]),
  );
  return {
    system: system.name,
    round,
    accepted,
    delivered: delivered.size,
    suggested: suggested.size,
    chat: chat.summary(),
    suggestion: suggestion.summary(),
    cpu,
  };
}

const results: Result[] = [];
for (let round = 1; round <= ROUNDS; round++) {
  for (const athena of [false, true]) {
    process.stderr.write(`round ${round}: hub${athena ? ' + athena' : ''}...\n`);
    const system = await startHub(shape, 47_300, { athena });
    try {
      await sleep(1_000);
      results.push(await measure(system, round));
    } finally {
      await system.stop();
    }
  }
}

const f = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const rows = [
  [
    'system',
    'round',
    'accepted',
    'delivered',
    'suggested',
    'chat p50',
    'chat p99',
    'suggestion p50',
    'suggestion p99',
    'cpu (cores)',
  ],
  ...results.map(r => [
    r.system,
    String(r.round),
    String(r.accepted),
    String(r.delivered),
    String(r.suggested),
    f(r.chat.p50),
    f(r.chat.p99),
    f(r.suggestion.p50),
    f(r.suggestion.p99),
    Object.entries(r.cpu)
      .map(([k, v]) => `${k} ${f(v, 2)}`)
      .join(' '),
  ]),
];
printTable(rows);

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const alone = results.filter(r => r.system === 'hub');
const attached = results.filter(r => r.system === 'hub+athena');
const ratios = {
  chatP50: mean(attached.map(r => r.chat.p50)) / mean(alone.map(r => r.chat.p50)),
  chatP99: mean(attached.map(r => r.chat.p99)) / mean(alone.map(r => r.chat.p99)),
  suggestionP99: Math.max(...attached.map(r => r.suggestion.p99)),
};
console.log(
  `assist at ${RATE}/s: chat delivery with athena / without: p50 ${f(ratios.chatP50, 2)}x, p99 ${f(ratios.chatP99, 2)}x; message → suggestion p99 (worst round) ${f(ratios.suggestionP99)} ms`,
);
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/assist-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(
  file,
  JSON.stringify({ shape, rate: RATE, seconds: SECONDS, results, ratios }, null, 2),
);
console.log(`results: ${file}`);
const short = results.filter(
  r => r.delivered < r.accepted || (r.system === 'hub+athena' && r.suggested < r.accepted),
);
if (short.length > 0) {
  console.error(
    `FAILED: messages or suggestions missing in ${short.map(r => r.system).join(', ')}`,
  );
  process.exit(1);
}
process.exit(0);
