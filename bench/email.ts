/**
 * `npm run bench:email` (also part of `npm run bench`): campaign mails per second through the SMTP
 * provider to a loopback SMTP sink, the hub against a bare BullMQ → nodemailer pool pipeline,
 * measured in the same run. The figure is mails / wall time from the first POST (or `addBulk`) to
 * the last mail at the sink, and CPU per mail. See docs/performance.md.
 *
 * Environment: BENCH_EMAIL_MAILS (5000), BENCH_EMAIL_CONCURRENCY (50: jobs in flight per worker
 * process, both systems), BENCH_EMAIL_CONNECTIONS (5: SMTP connections per pool),
 * BENCH_EMAIL_ROUNDS (2: measurements of each system, the order alternating), BENCH_EMAIL_DKIM
 * (0; 1 signs every mail of both with an RSA-2048 key), BENCH_SYSTEMS (baseline,hub),
 * BENCH_BUILT and BENCH_PROFILE (see systems.ts).
 */
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { BaselineMail } from './baseline/email-worker.js';
import { json } from './http.js';
import { cpuSeconds, cpuSecondsOf, sleep, waitFor } from './measure.js';
import { startSmtpSink } from './smtp-sink.js';
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
const MAILS = env('BENCH_EMAIL_MAILS', 5_000);
const CONCURRENCY = env('BENCH_EMAIL_CONCURRENCY', 50);
const CONNECTIONS = env('BENCH_EMAIL_CONNECTIONS', 5);
const ROUNDS = env('BENCH_EMAIL_ROUNDS', 2);
const DKIM = process.env.BENCH_EMAIL_DKIM === '1';
const SYSTEMS = (process.env.BENCH_SYSTEMS ?? 'baseline,hub').split(',');
/** The SmtpEmail default: a pooled connection is replaced after this many mails. */
const MAX_MESSAGES = 100;
/** The campaign API's limit per request, and the batch the baseline adds at once. */
const BATCH = 1_000;
const WARMUP = 1_000;
const TENANT = 'bench';
const DOMAIN = 'news.bench.example';

/** One campaign mail: ≈ 1.5 kB of subject, text and HTML, UTF-8, the same for both systems. */
function content(i: number) {
  const offer = `offre n° ${i}`;
  const paragraph =
    'Bonjour, voici les offres de la saison choisies pour vous : livraison offerte dès 30 €, ' +
    'retours gratuits pendant 60 jours et un service client joignable sept jours sur sept. ';
  return {
    subject: `Votre ${offer} — jusqu’à -30 % cet été`,
    text: `${paragraph.repeat(3)}\n\nVotre ${offer}.\n\nPour ne plus recevoir nos offres, utilisez le lien de désinscription.`,
    html: `<!doctype html><html><body style="font-family:sans-serif"><h1>Votre ${offer}</h1>${`<p>${paragraph}</p>`.repeat(3)}<p><a href="https://shop.bench.example/offres?id=${i}">Voir l’offre</a></p><table width="100%"><tr><td style="padding:8px;color:#555">Boutique Bench, 1 rue de l’Exemple, 75000 Paris</td></tr></table></body></html>`,
  };
}
const from = { address: `offers@${DOMAIN}`, name: 'Boutique Bench' };
const recipient = (tag: string, i: number) => `c${i}.${tag}@customer.bench.example`;

const sink = await startSmtpSink();
const dkimKey = DKIM
  ? (generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    }) as string)
  : undefined;

interface Driver {
  name: string;
  processes: { role: string; pid: number }[];
  /** Submits `count` mails tagged `tag` in batches of 1,000, one batch after the other. */
  write(tag: string, count: number): Promise<void>;
  /** How many mails tagged `tag` the system has recorded as sent. */
  recorded(tag: string): Promise<number>;
  /** CPU seconds so far of the PostgreSQL backends serving the system (the hub's only). */
  postgresCpu?(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * CPU seconds so far of the PostgreSQL backends connected to `database`, but for the bench's own
 * (`application_name` bench): other work on the machine's PostgreSQL is not the system's. A
 * backend that ended keeps its last reading, so call it often enough (the measurement does, every
 * second).
 */
function backendCpu(pool: pg.Pool, database: string): () => Promise<number> {
  const readings = new Map<number, number>();
  return async () => {
    const { rows } = await pool.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name <> 'bench'",
      [database],
    );
    for (const { pid } of rows) {
      try {
        readings.set(pid, cpuSeconds(pid));
      } catch {
        // The backend ended meanwhile.
      }
    }
    return [...readings.values()].reduce((sum, seconds) => sum + seconds, 0);
  };
}

/** Deletes every Redis key under `prefix` (the system's queues, limiter counters). */
async function dropKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1_000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
}

async function startHub(): Promise<Driver> {
  const shared = await hubEnvironment('nexus_bench_email');
  const dbUrl = shared.DATABASE_URL as string;
  const prefix = shared.NEXUS_QUEUE_PREFIX as string;
  const base = {
    ...shared,
    DB_POOL_SIZE: '20',
    NEXUS_EGRESS_ALLOW: '127.0.0.1',
    NEXUS_WORKER_CONCURRENCY: String(CONCURRENCY),
    // The rate limiter still counts every mail; this rate never holds one back.
    NEXUS_EMAIL_RATE_PER_SECOND: '1000000',
    NEXUS_EMAIL_BOUNCE_DOMAIN: 'bounces.bench.example',
    NEXUS_PUBLIC_URL: 'https://hub.bench.example',
    // 1,000 records of ≈ 1.5 kB are a 1.7 MB request.
    NEXUS_BODY_LIMIT: '8mb',
  };
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const api = run('bin/api.ts', { ...base, PORT: String(port) });
  await waitHttp(`${url}/health/live`);
  const worker = run('bin/worker.ts', {
    ...base,
    NEXUS_MIGRATE_ON_START: 'false',
    NEXUS_WORKER_QUEUES: 'outbound-email',
  });
  const admin = { Authorization: `Bearer ${ADMIN_TOKEN}` };
  await json('POST', `${url}/nexus/v3/provisioning/tenants`, admin, { id: TENANT, name: 'Bench' });
  await json('PUT', `${url}/nexus/v3/provisioning/services/${TENANT}/Email`, admin, {
    url: 'N/A',
    data: { provider: 'SMTP' },
  });
  await json('PUT', `${url}/nexus/v3/provisioning/services/${TENANT}/SmtpEmail`, admin, {
    url: `smtp://127.0.0.1:${sink.port}`,
    data: {
      maxConnections: CONNECTIONS,
      maxMessages: MAX_MESSAGES,
      maxPerSecond: 10_000,
      ...(dkimKey ? { dkim: [{ domain: DOMAIN, selector: 'bench' }] } : {}),
    },
    ...(dkimKey ? { secret: { dkimKeys: { [DOMAIN]: dkimKey } } } : {}),
  });
  await json('PUT', `${url}/nexus/v3/provisioning/channels/${TENANT}/cxc.News`, admin, {
    channelId: DOMAIN,
    channelType: 'email',
  });
  const pool = new pg.Pool({ connectionString: dbUrl, max: 2, application_name: 'bench' });
  const postgresCpu = backendCpu(pool, new URL(dbUrl).pathname.slice(1));
  return {
    name: 'hub',
    processes: [
      { role: 'api', pid: api.pid as number },
      { role: 'worker', pid: worker.pid as number },
    ],
    async write(tag, count) {
      for (let done = 0; done < count; done += BATCH) {
        const records = Array.from({ length: Math.min(BATCH, count - done) }, (_, j) => ({
          id: `r${done + j}`,
          from,
          to: recipient(tag, done + j),
          ...content(done + j),
        }));
        await json('POST', `${url}/nexus/v3/email/campaigns/${TENANT}/${tag}/records`, admin, {
          records,
        });
      }
    },
    async recorded(tag) {
      const { rows } = await pool.query<{ n: string }>(
        "SELECT count(*) AS n FROM email_messages WHERE campaign = $1 AND delivery_status = 'sent'",
        [tag],
      );
      return Number(rows[0]?.n);
    },
    postgresCpu,
    async stop() {
      await pool.end();
      await stopAll([api, worker]);
      await dropKeys(prefix);
    },
  };
}

function startBaseline(): Driver {
  const prefix = `{be${randomBytes(3).toString('hex')}}`;
  const child = run('bench/baseline/email-worker.ts', {
    REDIS_URL,
    BASELINE_PREFIX: prefix,
    BASELINE_SMTP_PORT: String(sink.port),
    BASELINE_CONCURRENCY: String(CONCURRENCY),
    BASELINE_CONNECTIONS: String(CONNECTIONS),
    BASELINE_MAX_MESSAGES: String(MAX_MESSAGES),
    ...(dkimKey ? { BASELINE_DKIM_KEY: dkimKey } : {}),
    NODE_ENV: 'production',
  });
  const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue('email', { connection, prefix });
  const written = new Map<string, number>();
  return {
    name: 'baseline',
    processes: [{ role: 'worker', pid: child.pid as number }],
    async write(tag, count) {
      for (let done = 0; done < count; done += BATCH) {
        const jobs = Array.from({ length: Math.min(BATCH, count - done) }, (_, j) => {
          const data: BaselineMail = {
            id: randomUUID(),
            tenant: TENANT,
            domain: DOMAIN,
            from,
            to: recipient(tag, done + j),
            ...content(done + j),
          };
          return { name: 'email', data, opts: { removeOnComplete: { count: 1_000 } } };
        });
        await queue.addBulk(jobs);
      }
      written.set(tag, count);
    },
    recorded(tag) {
      // The baseline keeps no record: the sink's count is the only one.
      return Promise.resolve(Math.min(written.get(tag) ?? 0, sink.counts().recipients));
    },
    async stop() {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      connection.disconnect();
      await stopAll([child]);
      await dropKeys(prefix);
    },
  };
}

interface Result {
  system: string;
  round: number;
  mails: number;
  seconds: number;
  /** How long submitting every batch took. */
  writeSeconds: number;
  mailsPerSecond: number;
  duplicates: number;
  /** Average size of a mail as the sink took it. */
  bytesPerMail: number;
  /** SMTP connections the sink accepted during the measurement. */
  connections: number;
  cpu: Record<string, number>;
  /** CPU per mail of the system's processes, its PostgreSQL backends and Redis (not the sink). */
  cpuMsPerMail: number;
}

let campaigns = 0;

async function measure(driver: Driver, round: number): Promise<Result> {
  // Warm-up: pools, caches and JIT, outside the measurement.
  sink.reset();
  const warm = `warm${++campaigns}`;
  await driver.write(warm, WARMUP);
  await waitFor(() => sink.counts().recipients >= WARMUP, 120_000, `${driver.name} warm-up`);
  await waitFor(
    async () => (await driver.recorded(warm)) >= WARMUP,
    60_000,
    `${driver.name} warm-up recorded`,
  );
  await sleep(500);
  sink.reset();
  const tag = `m${++campaigns}`;
  // PostgreSQL: the backends serving the system; Redis: the whole server (both systems use it).
  const cpuNow = async (): Promise<Record<string, number>> => ({
    ...Object.fromEntries(driver.processes.map(p => [p.role, cpuSeconds(p.pid)])),
    ...(driver.postgresCpu ? { postgres: await driver.postgresCpu() } : {}),
    redis: cpuSecondsOf('redis-server'),
    'loadgen+sink': cpuSeconds(process.pid),
  });
  const before = await cpuNow();
  const sampler = setInterval(() => void driver.postgresCpu?.().catch(() => undefined), 1_000);
  const started = performance.now();
  await driver.write(tag, MAILS);
  const writeSeconds = (performance.now() - started) / 1000;
  await waitFor(() => sink.counts().recipients >= MAILS, 600_000, `${driver.name}: every mail`);
  const counts = sink.counts();
  const seconds = (counts.lastAt - started) / 1000;
  await waitFor(async () => (await driver.recorded(tag)) >= MAILS, 60_000, 'recorded');
  clearInterval(sampler);
  const after = await cpuNow();
  const cpu = Object.fromEntries(
    Object.entries(after).map(([role, s]) => [role, (s - (before[role] ?? 0)) / seconds]),
  );
  const cpuTotal = Object.entries(after)
    .filter(([role]) => role !== 'loadgen+sink')
    .reduce((sum, [role, s]) => sum + s - (before[role] ?? 0), 0);
  return {
    system: driver.name,
    round,
    mails: MAILS,
    seconds,
    writeSeconds,
    mailsPerSecond: MAILS / seconds,
    duplicates: counts.mails - counts.recipients,
    bytesPerMail: counts.bytes / counts.mails,
    connections: counts.connections,
    cpu,
    cpuMsPerMail: (cpuTotal * 1000) / MAILS,
  };
}

// Both systems stay up for the whole run; the order alternates by round.
const drivers: Driver[] = [];
const results: Result[] = [];
try {
  for (const name of SYSTEMS) {
    process.stderr.write(`email: starting ${name}...\n`);
    drivers.push(name === 'hub' ? await startHub() : startBaseline());
  }
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 === 1 ? drivers : [...drivers].reverse();
    for (const driver of order) {
      process.stderr.write(`  email round ${round}: ${driver.name}...\n`);
      results.push(await measure(driver, round));
      await sleep(1_000);
    }
  }
} finally {
  for (const driver of drivers) await driver.stop();
  await sink.close();
}

const f = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
for (const r of results) {
  console.log(
    `email ${String(r.round)} ${r.system.padEnd(8)} ${f(r.mailsPerSecond)} mails/s (${r.mails} in ${f(r.seconds, 2)} s, submitted in ${f(r.writeSeconds, 2)} s), ${f(r.bytesPerMail)} bytes/mail, duplicates ${r.duplicates}, connections ${r.connections}, cpu ${Object.entries(
      r.cpu,
    )
      .map(([k, v]) => `${k} ${f(v, 2)}`)
      .join(' ')}, ${f(r.cpuMsPerMail, 3)} ms CPU per mail (without the sink)`,
  );
}
const mean = (system: string, pick: (r: Result) => number) => {
  const picked = results.filter(r => r.system === system).map(pick);
  return picked.reduce((a, b) => a + b, 0) / picked.length;
};
const ratio = mean('hub', r => r.mailsPerSecond) / mean('baseline', r => r.mailsPerSecond);
if (Number.isFinite(ratio)) {
  console.log(
    `email: hub/baseline mails/s ${f(ratio, 2)}x (means of ${ROUNDS}), CPU per mail hub ${f(
      mean('hub', r => r.cpuMsPerMail),
      3,
    )} ms, baseline ${f(
      mean('baseline', r => r.cpuMsPerMail),
      3,
    )} ms${DKIM ? ' (DKIM-signed)' : ''}`,
  );
}
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/email-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(
  file,
  JSON.stringify(
    {
      mails: MAILS,
      concurrency: CONCURRENCY,
      connections: CONNECTIONS,
      dkim: DKIM,
      results,
      ratio,
    },
    null,
    2,
  ),
);
console.log(`results: ${file}`);
const duplicated = results.filter(r => r.duplicates > 0);
if (duplicated.length > 0) {
  console.error(`FAILED: duplicate mails from ${duplicated.map(r => r.system).join(', ')}`);
  process.exit(1);
}
process.exit(0);
