import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'slonik';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { eventually, useHarness } from '../helpers/harness.js';
import { startHubProcess, type HubProcess } from '../helpers/processes.js';

const repoRoot = path.resolve(import.meta.dirname, '..', '..');
/** k6 v0.47, built from k6's public source (../shared/tools/README.md); CI has it. */
const K6 = path.resolve(repoRoot, '..', 'shared', 'tools', 'k6');
/** How long each script loads the hub: brief, but long enough for its p95 to mean something. */
const RUN_FOR = '15s';

/** The part of `k6 run --summary-export` these tests read. */
const summarySchema = z.object({
  metrics: z.object({
    http_reqs: z.object({ count: z.number(), rate: z.number() }),
    http_req_failed: z.object({ value: z.number() }),
    http_req_duration: z.object({
      'p(95)': z.number(),
      'p(99)': z.number(),
      med: z.number(),
    }),
    iterations: z.object({ count: z.number() }),
    checks: z.object({ passes: z.number(), fails: z.number() }),
  }),
});
type Summary = z.infer<typeof summarySchema>;

interface K6Run {
  code: number | null;
  output: string;
  summary: Summary | undefined;
}

/**
 * `k6 run <script>` against a hub: the script's knobs as environment variables (and nothing of
 * this process's environment but PATH, so no K6_* variable of the machine's changes the options).
 */
async function runK6(dir: string, script: string, env: Record<string, string>): Promise<K6Run> {
  const summaryFile = path.join(dir, `${path.basename(script, '.js')}-${Date.now()}.json`);
  const child = spawn(
    K6,
    [
      'run',
      '--quiet',
      '--no-color',
      '--no-usage-report',
      '--summary-trend-stats',
      'avg,min,med,max,p(90),p(95),p(99)',
      '--summary-export',
      summaryFile,
      path.join(repoRoot, 'loadtest', script),
    ],
    {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const output: string[] = [];
  child.stdout.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  const text = existsSync(summaryFile) ? await readFile(summaryFile, 'utf8') : undefined;
  return {
    code,
    output: output.join(''),
    summary: text === undefined ? undefined : summarySchema.parse(JSON.parse(text)),
  };
}

const figures = (summary: Summary) => {
  const { http_reqs, http_req_duration: d } = summary.metrics;
  return `${http_reqs.count} requests, ${http_reqs.rate.toFixed(1)}/s, p95 ${d['p(95)'].toFixed(1)} ms, p99 ${d['p(99)'].toFixed(1)} ms`;
};

describe('k6 scripts against a hub the test starts', () => {
  const h = useHarness();
  const processes: HubProcess[] = [];
  let dir = '';

  beforeAll(async () => {
    if (!existsSync(K6)) {
      throw new Error(
        `k6 is not at ${K6}: these tests run ../shared/tools/k6 (k6 v0.47, see ../shared/tools/README.md), which CI has`,
      );
    }
    dir = await mkdtemp(path.join(tmpdir(), 'nexus-k6-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    for (const p of processes.splice(0)) {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  });

  /** An API process and a worker process, as `npm run api` and `npm run worker` run them. */
  async function startHub(): Promise<{ url: string; stop(): Promise<void> }> {
    const [api, worker] = await Promise.all([
      startHubProcess(h(), 'api'),
      startHubProcess(h(), 'worker'),
    ]);
    processes.push(api, worker);
    return {
      url: api.url as string,
      async stop() {
        expect(await Promise.all([api.stop(), worker.stop()])).toEqual([0, 0]);
      },
    };
  }

  const counted = sql.type(z.object({ n: z.number() }));

  it('loadtest/chat.js: sessions, messages and transcripts within its thresholds', async () => {
    const hub = await startHub();
    // The script's load (its defaults: 20 VUs, 10 messages a session), for a shorter time.
    const messages = 10;
    const run = await runK6(dir, 'chat.js', {
      BASE_URL: hub.url,
      ADMIN_TOKEN: h().config.adminToken,
      VUS: '20',
      DURATION: RUN_FOR,
      MESSAGES: String(messages),
    });
    expect(run.code, run.output).toBe(0);
    const summary = run.summary as Summary;
    console.info(`k6 chat.js: ${figures(summary)}`);
    expect(summary.metrics.iterations.count).toBeGreaterThan(10);
    expect(summary.metrics.checks.fails).toBe(0);
    expect(summary.metrics.checks.passes).toBe(summary.metrics.iterations.count * (messages + 2));
    expect(summary.metrics.http_req_failed.value).toBe(0);

    // The script provisioned its tenant on this hub (and disabled it at the end); the worker
    // numbered every message it accepted.
    const sessions = await h().db.oneFirst(counted`
      SELECT count(*)::int AS n FROM chat_sessions s JOIN tenants t ON t.id = s.tenant_id
      WHERE t.id LIKE 'k6-chat-%' AND NOT t.enabled`);
    expect(sessions).toBe(summary.metrics.iterations.count);
    await eventually(
      async () =>
        (await h().db.oneFirst(counted`
          SELECT count(*)::int AS n FROM messages
          WHERE tenant_id LIKE 'k6-chat-%' AND sender_type = 'customer' AND seq IS NOT NULL`)) ===
        sessions * messages,
      20_000,
      'every message numbered by the worker',
    );
    await hub.stop();
  }, 120_000);

  it('loadtest/provisioning-smoke.js: every round of provisioning passes its checks', async () => {
    const hub = await startHub();
    const run = await runK6(dir, 'provisioning-smoke.js', {
      BASE_URL: hub.url,
      ADMIN_TOKEN: h().config.adminToken,
      VUS: '2',
      DURATION: RUN_FOR,
    });
    expect(run.code, run.output).toBe(0);
    const summary = run.summary as Summary;
    console.info(`k6 provisioning-smoke.js: ${figures(summary)}`);
    const rounds = summary.metrics.iterations.count;
    expect(rounds).toBeGreaterThan(2);
    expect(summary.metrics.checks.fails).toBe(0);
    expect(summary.metrics.http_reqs.count).toBe(rounds * 9);

    // Each round's tenant, channel and services are on this hub, the tenant disabled again.
    expect(
      await h().db.oneFirst(counted`
        SELECT count(*)::int AS n FROM tenants t
        WHERE t.id LIKE 'k6-%' AND NOT t.enabled
          AND EXISTS (SELECT 1 FROM channels c WHERE c.tenant_id = t.id AND c.channel_id = t.id)`),
    ).toBe(rounds);
    await hub.stop();
  }, 120_000);

  it('a run the hub refuses fails its thresholds: k6 exits 99', async () => {
    const hub = await startHub();
    const chat = await runK6(dir, 'chat.js', {
      BASE_URL: hub.url,
      CHAT_KEY: 'not-a-key-of-this-hub',
      VUS: '1',
      DURATION: '2s',
    });
    expect(chat.code, chat.output).toBe(99);
    expect(chat.summary?.metrics.http_reqs.count).toBeGreaterThan(0);
    expect(chat.summary?.metrics.checks.passes).toBe(0);

    const smoke = await runK6(dir, 'provisioning-smoke.js', {
      BASE_URL: hub.url,
      ADMIN_TOKEN: 'not-the-operator-token',
    });
    expect(smoke.code, smoke.output).toBe(99);
    expect(smoke.summary?.metrics.http_reqs.count).toBe(1);
    expect(
      await h().db.oneFirst(counted`SELECT count(*)::int AS n FROM tenants WHERE id LIKE 'k6-%'`),
    ).toBe(0);
    await hub.stop();
  }, 60_000);
});
