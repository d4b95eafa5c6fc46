/**
 * `npm run bench:resources`: what the hub's processes hold and how long their event loops stall.
 *
 * - `sockets`: the API process's resident memory with SOCKETS (10,000) customer sockets open,
 *   against the same process with the chats started and no socket.
 * - `soak`: SOAK_RATE customer messages a second for SOAK_MINUTES (10); the API's and the
 *   worker's resident memory every SAMPLE_SECONDS, and the worker's growth over the soak (a
 *   least-squares slope after the first minute, which is warm-up).
 * - `lag`: the event-loop delay (p50, p99, max; prom-client's monitor of each process) of the API
 *   and the worker under chat-max: LAG_SENDERS senders in a closed loop for LAG_SECONDS.
 *
 * RESOURCES_PARTS picks the parts (default all). Each part starts its own hub (one API and one
 * worker process, compiled, production mode) on a fresh database and its own queue prefix.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { io, type Socket } from 'socket.io-client';
import { http, json } from './http.js';
import { printTable, sleep } from './measure.js';
import {
  freePort,
  hubEnvironment,
  provisionBenchTenant,
  run,
  stopAll,
  waitHttp,
} from './systems.js';

const number = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
};
const SOCKETS = number('SOCKETS', 10_000);
const SOAK_MINUTES = number('SOAK_MINUTES', 10);
const SOAK_RATE = number('SOAK_RATE', 100);
const SAMPLE_SECONDS = number('SAMPLE_SECONDS', 15);
const LAG_SECONDS = number('LAG_SECONDS', 30);
const LAG_SENDERS = number('LAG_SENDERS', 64);
const PARTS = (process.env.RESOURCES_PARTS ?? 'sockets,soak,lag').split(',');

/** Resident memory of a process now (VmRSS), in MiB. */
function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

interface Hub {
  base: string;
  api: { pid: number; metrics: string };
  worker: { pid: number; metrics: string };
  key: string;
  stop(): Promise<void>;
}

async function startBenchHub(name: string): Promise<Hub> {
  const env = {
    ...(await hubEnvironment(`nexus_resources_${name}`)),
    NEXUS_WORKER_CONCURRENCY: '50',
    DB_POOL_SIZE: '20',
    NEXUS_CHAT_SESSION_LIMIT: '100000/1',
  };
  const [port, apiMetrics, workerMetrics] = [await freePort(), await freePort(), await freePort()];
  const children: ChildProcess[] = [];
  const api = run('bin/api.ts', {
    ...env,
    PORT: String(port),
    METRICS_PORT: String(apiMetrics),
    NEXUS_MIGRATE_ON_START: 'true',
  });
  children.push(api);
  const base = `http://127.0.0.1:${port}`;
  await waitHttp(`${base}/health/live`);
  const worker = run('bin/worker.ts', {
    ...env,
    METRICS_PORT: String(workerMetrics),
    NEXUS_MIGRATE_ON_START: 'false',
  });
  children.push(worker);
  const { key } = await provisionBenchTenant(base);
  return {
    base,
    api: { pid: api.pid as number, metrics: `http://127.0.0.1:${apiMetrics}/metrics` },
    worker: { pid: worker.pid as number, metrics: `http://127.0.0.1:${workerMetrics}/metrics` },
    key,
    stop: () => stopAll(children),
  };
}

interface Session {
  id: string;
  clientToken: string;
}

/** `count` chats started through the API, `concurrency` at a time. */
async function startSessions(hub: Hub, count: number, concurrency = 50): Promise<Session[]> {
  const sessions: Session[] = [];
  for (let i = 0; i < count; i += concurrency) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(concurrency, count - i) }, () =>
        json<{ data: Session }>(
          'POST',
          `${hub.base}/nexus/v3/chat/sessions`,
          { 'x-api-key': hub.key },
          { data: { nickname: 'Bench', endpoint: 'Bench' } },
        ),
      ),
    );
    sessions.push(...batch.map(answer => answer.data));
  }
  return sessions;
}

const send = (hub: Hub, session: Session, n: number) =>
  http(
    'POST',
    `${hub.base}/nexus/v3/chat/sessions/${session.id}/messages`,
    { 'content-type': 'application/json', 'x-nexus-client-key': session.clientToken },
    JSON.stringify({ data: { type: 'Text', text: `message ${n}`, clientMessageId: `m${n}` } }),
  );

const mib = (value: number) => `${value.toFixed(0)} MiB`;

async function socketsPart(): Promise<string[][]> {
  const hub = await startBenchHub('sockets');
  const sockets: Socket[] = [];
  try {
    const started = Date.now();
    const sessions = await startSessions(hub, SOCKETS);
    console.log(
      `sockets: ${SOCKETS} chats started in ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
    await sleep(5_000);
    const before = rssMiB(hub.api.pid);
    const heapBefore = await heapMiB(hub.api.metrics);
    for (let i = 0; i < sessions.length; i += 250) {
      const batch = sessions.slice(i, i + 250).map(session =>
        io(`${hub.base}/chat`, {
          path: '/nexus/v3/socket.io',
          auth: { token: session.clientToken },
          transports: ['websocket'],
          reconnection: false,
        }),
      );
      sockets.push(...batch);
      await Promise.all(
        batch.map(
          socket =>
            new Promise<void>((resolve, reject) => {
              socket.once('connect', () => resolve());
              socket.once('connect_error', reject);
            }),
        ),
      );
    }
    await sleep(10_000);
    const connected = sockets.filter(socket => socket.connected).length;
    const after = rssMiB(hub.api.pid);
    const heapAfter = await heapMiB(hub.api.metrics);
    return [
      [
        'open customer sockets',
        'API RSS without',
        'API RSS with',
        'per socket',
        'heap used without',
        'heap used with',
      ],
      [
        String(connected),
        mib(before),
        mib(after),
        `${(((after - before) * 1024) / connected).toFixed(1)} KiB`,
        mib(heapBefore),
        mib(heapAfter),
      ],
    ];
  } finally {
    for (const socket of sockets) socket.close();
    await hub.stop();
  }
}

/** Least-squares slope of `points` (minutes → MiB), in MiB per minute. */
function slope(points: readonly [number, number][]): number {
  const n = points.length;
  const mx = points.reduce((sum, [x]) => sum + x, 0) / n;
  const my = points.reduce((sum, [, y]) => sum + y, 0) / n;
  const num = points.reduce((sum, [x, y]) => sum + (x - mx) * (y - my), 0);
  const den = points.reduce((sum, [x]) => sum + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

async function soakPart(): Promise<string[][]> {
  const hub = await startBenchHub('soak');
  try {
    const sessions = await startSessions(hub, 200);
    const start = Date.now();
    const end = start + SOAK_MINUTES * 60_000;
    let sent = 0;
    let failed = 0;
    const samples: { minute: number; api: number; worker: number }[] = [];
    const sampler = setInterval(() => {
      samples.push({
        minute: (Date.now() - start) / 60_000,
        api: rssMiB(hub.api.pid),
        worker: rssMiB(hub.worker.pid),
      });
    }, SAMPLE_SECONDS * 1000);
    // Open loop: one message every 1/SOAK_RATE s, whatever the answers take.
    const inFlight = new Set<Promise<void>>();
    for (let n = 0; Date.now() < end; n++) {
      const due = start + (n * 1000) / SOAK_RATE;
      if (due > Date.now()) await sleep(due - Date.now());
      const session = sessions[n % sessions.length] as Session;
      const request = send(hub, session, n).then(
        res => {
          if (res.status >= 200 && res.status < 300) sent++;
          else failed++;
        },
        () => {
          failed++;
        },
      );
      inFlight.add(request);
      void request.finally(() => inFlight.delete(request));
    }
    await Promise.all(inFlight);
    clearInterval(sampler);
    const settled = samples.filter(sample => sample.minute >= 1);
    const row = (label: string, pick: (s: (typeof samples)[number]) => number) => {
      const values = settled.map(pick);
      return [
        label,
        mib(values[0] ?? Number.NaN),
        mib(values.at(-1) ?? Number.NaN),
        mib(Math.min(...values)),
        mib(Math.max(...values)),
        `${slope(settled.map(s => [s.minute, pick(s)])).toFixed(2)} MiB/min`,
      ];
    };
    console.log(`soak: ${sent} messages accepted, ${failed} refused or failed`);
    return [
      ['process', 'RSS at 1 min', 'RSS at end', 'min', 'max', 'slope after 1 min'],
      row('api', s => s.api),
      row('worker', s => s.worker),
    ];
  } finally {
    await hub.stop();
  }
}

/** The V8 heap in use in one process (prom-client's gauge), in MiB. */
async function heapMiB(metricsUrl: string): Promise<number> {
  const res = await http('GET', metricsUrl, {});
  const match = /^nexus_nodejs_heap_size_used_bytes ([0-9.e+-]+)$/m.exec(res.body);
  return match ? Number(match[1]) / 2 ** 20 : Number.NaN;
}

/** prom-client's event-loop delay gauges of one process, in ms. */
async function loopDelay(metricsUrl: string): Promise<{ p50: number; p99: number; max: number }> {
  const res = await http('GET', metricsUrl, {});
  const value = (name: string) => {
    const match = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(res.body);
    return match ? Number(match[1]) * 1000 : Number.NaN;
  };
  return {
    p50: value('nexus_nodejs_eventloop_lag_p50_seconds'),
    p99: value('nexus_nodejs_eventloop_lag_p99_seconds'),
    max: value('nexus_nodejs_eventloop_lag_max_seconds'),
  };
}

async function lagPart(): Promise<string[][]> {
  const hub = await startBenchHub('lag');
  try {
    const sessions = await startSessions(hub, 200);
    await sleep(3_000);
    // A scrape resets the monitor: the next one covers the load only.
    await loopDelay(hub.api.metrics);
    await loopDelay(hub.worker.metrics);
    const end = Date.now() + LAG_SECONDS * 1000;
    let sent = 0;
    let n = 0;
    await Promise.all(
      Array.from({ length: LAG_SENDERS }, async () => {
        while (Date.now() < end) {
          const i = n++;
          const res = await send(hub, sessions[i % sessions.length] as Session, i);
          if (res.status >= 200 && res.status < 300) sent++;
        }
      }),
    );
    const [api, worker] = [await loopDelay(hub.api.metrics), await loopDelay(hub.worker.metrics)];
    const ms = (value: number) => `${value.toFixed(1)} ms`;
    console.log(
      `lag: ${sent} messages accepted in ${LAG_SECONDS} s (${(sent / LAG_SECONDS).toFixed(0)}/s)`,
    );
    return [
      ['process', 'loop delay p50', 'p99', 'max'],
      ['api', ms(api.p50), ms(api.p99), ms(api.max)],
      ['worker', ms(worker.p50), ms(worker.p99), ms(worker.max)],
    ];
  } finally {
    await hub.stop();
  }
}

const parts: Record<string, () => Promise<string[][]>> = {
  sockets: socketsPart,
  soak: soakPart,
  lag: lagPart,
};
for (const part of PARTS) {
  const measure = parts[part];
  if (!measure) throw new Error(`RESOURCES_PARTS: unknown part ${part} (sockets, soak, lag)`);
  console.log(`\n== ${part}`);
  printTable(await measure());
}
