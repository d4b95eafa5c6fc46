import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { connect, createAgent, sendCustomerMessage, startCustomerChat } from '../helpers/chat.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';
import { freePort } from '../helpers/redis-server.js';
import { TEST_REDIS_URL, databaseUrl, runDatabase, withAdmin } from '../helpers/services.js';
import {
  NEXUS_CHART,
  podTemplate,
  renderChart,
  renderedProcess,
  type K8sObject,
  type RenderedProcess,
} from '../../scripts/chart-check.js';

/**
 * The container image's production tree. `scripts/build-production-tree.sh`, the build stage of
 * the Dockerfile, writes the tree into a temporary folder; the processes then start from it the
 * way the image starts them: through `entrypoint.sh`, in the tree, with `NODE_ENV=production` and
 * no variables but `PATH` and the hub's, the tree read-only and, when the test runs as root (whom
 * a read-only mode does not stop), as the image's user 500:500. The migration Job, the API and the
 * worker groups start with the command, environment and ports helm/nexus renders for them. The
 * Dockerfile itself is not built (no Docker engine here): a test checks that its stages run this
 * script and this tree.
 */

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const IMAGE_USER = 500;
const asImageUser = process.getuid?.() === 0;

let tree = '';

beforeAll(async () => {
  tree = mkdtempSync(join(tmpdir(), 'nexus-image-tree-'));
  const build = await run(join(REPO, 'scripts/build-production-tree.sh'), [tree], { cwd: REPO });
  expect(build.code, build.output).toBe(0);
  // mkdtemp's folder is the test user's alone; the image's /app is readable by everyone.
  spawnSync('chmod', ['755', tree]);
  expect(spawnSync('chmod', ['-R', 'a-w', tree]).status).toBe(0);
}, 600_000);

afterAll(() => {
  if (!tree) return;
  spawnSync('chmod', ['-R', 'u+w', tree]);
  rmSync(tree, { recursive: true, force: true });
});

/** Runs a command to its end: its exit code and its output (stdout and stderr together). */
function run(
  file: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): Promise<{ code: number | null; output: string }> {
  return new Promise(resolve => {
    const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', code => resolve({ code, output }));
  });
}

interface TreeProcess {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

const started: TreeProcess[] = [];

/** `entrypoint.sh COMMAND ARGS` from the tree, as the image runs it. */
function startFromTree(command: string, args: string[], env: Record<string, string>): TreeProcess {
  const child = spawn(join(tree, 'entrypoint.sh'), [command, ...args], {
    cwd: tree,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(asImageUser ? { uid: IMAGE_USER, gid: IMAGE_USER } : {}),
  });
  const chunks: string[] = [];
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  const exited = new Promise<number | null>(resolve => child.once('exit', resolve));
  const process_ = { child, output: () => chunks.join(''), exited };
  started.push(process_);
  return process_;
}

afterEach(() => {
  for (const p of started.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  }
});

/** Waits until `url` answers 200, failing with the process's output if it exits first. */
async function waitFor200(p: TreeProcess, url: string): Promise<void> {
  const state = await eventually(
    async () => {
      if (p.child.exitCode !== null) return 'exited';
      const res = await fetch(url).catch(() => undefined);
      return res?.status === 200 ? 'ok' : false;
    },
    30_000,
    `200 from ${url}`,
  );
  if (state === 'exited') throw new Error(`exited before ${url} answered: ${p.output()}`);
}

/** The release the guide installs (`helm install nexus helm/nexus`), which names the objects. */
const RELEASE = 'nexus';

/** The queues the chart's worker groups must cover: the `nexus.queues` define of helm/nexus. */
function chartQueues(): string[] {
  const helpers = readFileSync(join(NEXUS_CHART, 'templates/_helpers.tpl'), 'utf8');
  const match = /\{\{-? define "nexus\.queues" -?\}\}\n(.+)\n/.exec(helpers);
  if (!match?.[1]) throw new Error('helm/nexus/templates/_helpers.tpl: no nexus.queues define');
  return match[1].split(',');
}

/** A rendered container probe. */
interface Probe {
  httpGet?: { path: string; port: string | number };
  tcpSocket?: { port: string | number };
}

/** A rendered Deployment of the release, to be started on its own loopback address. */
interface RenderedDeployment {
  name: string;
  host: string;
  rendered: RenderedProcess;
  probes: Probe[];
  graceSeconds: number;
}

function renderedDeployment(objects: K8sObject[], name: string, host: string): RenderedDeployment {
  const workload = objects.find(o => o.kind === 'Deployment' && o.metadata.name === name);
  if (!workload) throw new Error(`Deployment ${name} is not rendered`);
  const spec = podTemplate(workload).spec as ReturnType<typeof podTemplate>['spec'] & {
    terminationGracePeriodSeconds?: number;
  };
  const container = spec.containers[0];
  return {
    name,
    host,
    rendered: renderedProcess(objects, 'Deployment', name),
    probes: [container?.startupProbe, container?.livenessProbe, container?.readinessProbe].filter(
      (probe): probe is Probe => probe !== undefined,
    ),
    // Kubernetes' default when the pod spec sets none.
    graceSeconds: spec.terminationGracePeriodSeconds ?? 30,
  };
}

/** Whether a TCP connection to `host:port` opens. */
function tcpConnects(host: string, port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = createConnection({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Waits until a rendered probe succeeds on the process's address and the port the probe names,
 * as the kubelet checks it: a 200 for httpGet, an open connection for tcpSocket. Fails with the
 * process's output if it exits first.
 */
async function waitForProbe(
  p: TreeProcess,
  host: string,
  ports: Record<string, number>,
  probe: Probe,
): Promise<void> {
  const named = probe.httpGet?.port ?? probe.tcpSocket?.port;
  const port = typeof named === 'number' ? named : ports[named ?? ''];
  if (port === undefined) throw new Error(`a probe names port ${named}, which is not rendered`);
  const what = probe.httpGet
    ? `200 from http://${host}:${port}${probe.httpGet.path}`
    : `a connection to ${host}:${port}`;
  const state = await eventually(
    async () => {
      if (p.child.exitCode !== null) return 'exited';
      if (!probe.httpGet) return (await tcpConnects(host, port)) && 'ok';
      const res = await fetch(`http://${host}:${port}${probe.httpGet.path}`).catch(() => undefined);
      return res?.status === 200 ? 'ok' : false;
    },
    30_000,
    what,
  );
  if (state === 'exited') throw new Error(`exited before ${what}: ${p.output()}`);
}

/** The sum of a metric's samples whose labels include `labels`, from a /metrics text. */
function counterSum(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const sample = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (sample?.[1] !== name) continue;
    const found = new Map(
      [...(sample[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(m => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([key, value]) => found.get(key) === value)) {
      sum += Number(sample[3]);
    }
  }
  return sum;
}

/** The process's exit code, or 'still running' when it has not exited within `ms`. */
async function exitWithin(p: TreeProcess, ms: number): Promise<number | null | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'still running'>(resolve => {
    timer = setTimeout(() => resolve('still running'), ms);
  });
  try {
    return await Promise.race([p.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The variables of a hub process on the harness's Redis and queue prefix (targetEnv). */
function hubEnv(h: Harness, dbUrl: string): Record<string, string> {
  return {
    DATABASE_URL: dbUrl,
    REDIS_URL: TEST_REDIS_URL,
    NEXUS_QUEUE_PREFIX: h.config.queues.prefix,
    NEXUS_ADMIN_TOKEN: h.config.adminToken,
    NEXUS_SECRET_KEY: h.config.secretKey.toString('hex'),
    NEXUS_MIGRATE_ON_START: 'false',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
  };
}

/** Every file of the tree but node_modules' (the project's own files). */
function ownFiles(): string[] {
  const top = readdirSync(tree).filter(name => name !== 'node_modules' && name !== 'dist');
  const dist = readdirSync(join(tree, 'dist'), { recursive: true, encoding: 'utf8' }).map(path =>
    join('dist', path),
  );
  return [...top, ...dist].filter(path => statSync(join(tree, path)).isFile());
}

describe('the production tree', () => {
  it('holds package.json, the lock, dist/, the production dependencies and entrypoint.sh only', () => {
    expect(readdirSync(tree).sort()).toEqual([
      'dist',
      'entrypoint.sh',
      'node_modules',
      'package-lock.json',
      'package.json',
    ]);
    const manifest = JSON.parse(readFileSync(join(tree, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    for (const name of Object.keys(manifest.dependencies)) {
      expect(existsSync(join(tree, 'node_modules', name)), name).toBe(true);
    }
    // What the lock marks dev: what only the devDependencies need.
    const lock = JSON.parse(readFileSync(join(tree, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages).filter(([, entry]) => entry.dev);
    expect(devOnly.length).toBeGreaterThan(100);
    expect(devOnly.map(([path]) => path).filter(path => existsSync(join(tree, path)))).toEqual([]);
    for (const tool of ['vitest', 'tsx', 'typescript', 'eslint', 'prettier']) {
      expect(existsSync(join(tree, 'node_modules', tool)), tool).toBe(false);
    }

    const ours = ownFiles();
    expect(ours.filter(path => path.endsWith('.ts'))).toEqual([]);
    for (const entry of ['bin/api', 'bin/worker', 'bin/start', 'bin/athena', 'db/migrate-cli']) {
      expect(ours, entry).toContain(join('dist', `${entry}.js`));
    }
    const migrations = (dir: string) => readdirSync(dir).filter(file => file.endsWith('.sql'));
    expect(migrations(join(tree, 'dist/db/migrations'))).toEqual(
      migrations(join(REPO, 'db/migrations')),
    );
    // The tree is read-only for the rest of the file.
    expect(ours.filter(path => (statSync(join(tree, path)).mode & 0o222) !== 0)).toEqual([]);
  });

  it('is what the Dockerfile builds: its build stage runs the script, its runtime stage runs the tree', () => {
    const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
    const stages = dockerfile.split(/^FROM /m).slice(1);
    expect(stages).toHaveLength(2);
    const [build, runtime] = stages as [string, string];
    expect(build).toMatch(/^node:20[-.\w]* AS build$/m);
    expect(build).toMatch(/^RUN scripts\/build-production-tree\.sh \/out$/m);
    expect(runtime).toMatch(/^node:20[-.\w]*$/m);
    expect(runtime).toMatch(/^COPY --from=build \/out \/app$/m);
    expect(runtime).not.toMatch(/^(RUN|ADD)\b/m);
    expect(runtime).toMatch(/^WORKDIR \/app$/m);
    expect(runtime).toMatch(/^USER 500:500$/m);
    expect(runtime).toMatch(/^EXPOSE 4000 4004 4084 4085$/m);
    expect(runtime).toMatch(/^ENV NODE_ENV=production$/m);
    expect(runtime).toMatch(/^ENTRYPOINT \["\/app\/entrypoint\.sh"\]$/m);
    expect(runtime).toMatch(/^CMD \["start"\]$/m);
    const ignored = readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n');
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist', '.git']));
  });

  it('refuses an unknown command with the usage and exit code 2', async () => {
    const p = startFromTree('nonsense', [], {});
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain('unknown command: nonsense');
    expect(p.output()).toMatch(/usage: .*entrypoint\.sh COMMAND/);
  });
});

describe('the production tree, started as the image starts it', () => {
  const h = useHarness();

  it("runs the chart's migration Job, API and worker groups as rendered: probes answer, a chat starts in the inbound group and its message reaches the agent, SIGTERM stops each", async () => {
    const queues = chartQueues();
    const chatQueues = ['inbound', 'webhooks'];
    // What an install gives: the operator token and secret key (the harness's, so its helpers
    // authenticate), and two worker groups that together run every queue of the chart.
    const objects = renderChart({
      name: 'the production tree',
      set: [
        `nexus.adminToken=${h().config.adminToken}`,
        `nexus.secretKey=${h().config.secretKey.toString('hex')}`,
        'workers.groups[0].name=chat',
        `workers.groups[0].queues={${chatQueues.join(',')}}`,
        'workers.groups[1].name=rest',
        `workers.groups[1].queues={${queues.filter(q => !chatQueues.includes(q)).join(',')}}`,
      ],
    });
    // Pods have their own addresses, so the rendered ports (4004 in every pod) collide on one
    // host: each process listens on its own loopback address (Linux routes 127/8 to lo).
    const api = renderedDeployment(objects, `${RELEASE}-api`, '127.0.0.2');
    const chat = renderedDeployment(objects, `${RELEASE}-worker-chat`, '127.0.0.3');
    const rest = renderedDeployment(objects, `${RELEASE}-worker-rest`, '127.0.0.4');
    const deployments = [api, chat, rest];
    expect(
      objects
        .filter(o => o.kind === 'Deployment')
        .map(o => o.metadata.name)
        .sort(),
    ).toEqual(deployments.map(d => d.name).sort());
    const job = renderedProcess(objects, 'Job', `${RELEASE}-migrate`);

    // The migration is the hook Job's `migrate`, on the database the Deployments use; they do not
    // migrate at start (the render says so, and the Deployments start after the Job here).
    expect(job.args).toEqual(['migrate']);
    expect(job.ports).toEqual({});
    for (const d of deployments) {
      expect(d.rendered.env.DATABASE_URL, d.name).toBe(job.env.DATABASE_URL);
      expect(d.rendered.env.NEXUS_MIGRATE_ON_START, d.name).toBe('false');
      expect(d.probes.length, d.name).toBeGreaterThan(0);
      expect(d.graceSeconds, d.name).toBeGreaterThan(0);
    }
    expect(api.rendered.args).toEqual(['api']);
    expect(api.rendered.ports).toEqual({ http: 4000, metrics: 4004 });
    expect([api.rendered.env.PORT, api.rendered.env.METRICS_PORT]).toEqual(['4000', '4004']);
    for (const [worker, group] of [
      [chat, chatQueues],
      [rest, queues.filter(q => !chatQueues.includes(q))],
    ] as const) {
      expect(worker.rendered.args).toEqual(['worker']);
      expect(worker.rendered.ports).toEqual({ metrics: 4004 });
      expect(worker.rendered.env.METRICS_PORT).toBe('4004');
      expect(worker.rendered.env.NEXUS_WORKER_QUEUES).toBe(group.join(','));
    }

    // Only what names the cluster is replaced: its database (a fresh one, migrated by the Job),
    // Redis, the queue prefix (so the machine's shared Redis is not disturbed) and HOST, the
    // pod's address, on which the hub serves both HTTP and metrics. The render sets no HOST (the
    // hub's default, 0.0.0.0, would collide between the processes).
    for (const p of [job, ...deployments.map(d => d.rendered)]) expect(p.env.HOST).toBeUndefined();
    const name = runDatabase(inject('testRun'));
    const dbUrl = databaseUrl(name);
    const cluster = {
      DATABASE_URL: dbUrl,
      REDIS_URL: TEST_REDIS_URL,
      NEXUS_QUEUE_PREFIX: h().config.queues.prefix,
    };
    try {
      const [command = '', ...args] = job.args;
      const migrate = startFromTree(command, args, { ...job.env, ...cluster });
      expect(await migrate.exited, migrate.output()).toBe(0);
      const client = new pg.Client({ connectionString: dbUrl });
      await client.connect();
      try {
        const { rows } = await client.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM nexus_migrations',
        );
        const files = readdirSync(join(REPO, 'db/migrations')).filter(f => f.endsWith('.sql'));
        expect(rows[0]?.n).toBe(files.length);
      } finally {
        await client.end();
      }

      const running = deployments.map(d => {
        const [entry = '', ...args_] = d.rendered.args;
        const env = { ...d.rendered.env, ...cluster, HOST: d.host };
        return { ...d, process: startFromTree(entry, args_, env) };
      });
      for (const r of running) {
        for (const probe of r.probes) {
          await waitForProbe(r.process, r.host, r.rendered.ports, probe);
        }
      }
      // Each listens on its HOST alone, not on every address.
      for (const r of running) {
        for (const port of Object.values(r.rendered.ports)) {
          expect(await tcpConnects('127.0.0.1', port), `${r.name} on 127.0.0.1:${port}`).toBe(
            false,
          );
        }
      }
      if (asImageUser) {
        // entrypoint.sh execs node: the process the signals reach is node, as 500:500.
        for (const r of running) {
          const status = readFileSync(`/proc/${r.process.child.pid}/status`, 'utf8');
          expect(status).toMatch(/^Name:\s+node$/m);
          expect(status).toMatch(/^Uid:\s+500\s+500\s+500\s+500$/m);
          expect(status).toMatch(/^Gid:\s+500\s+500\s+500\s+500$/m);
        }
      }

      const inboundRuns = async (worker: RenderedDeployment) => {
        const res = await fetch(`http://${worker.host}:${worker.rendered.ports.metrics}/metrics`);
        expect(res.status).toBe(200);
        return counterSum(await res.text(), 'nexus_jobs_total', {
          queue: 'inbound',
          outcome: 'completed',
        });
      };

      const url = `http://${api.host}:${api.rendered.ports.http}`;
      const tenant = 'image-tenant';
      const admin = `Bearer ${h().config.adminToken}`;
      const created = await request(url)
        .post('/nexus/v3/provisioning/tenants')
        .set('Authorization', admin)
        .send({ id: tenant, name: tenant })
        .expect(201);
      await request(url)
        .put(`/nexus/v3/provisioning/endpoints/${tenant}/GlobalChatSwitchboard`)
        .set('Authorization', admin)
        .send({})
        .expect(201);
      await request(url)
        .put(`/nexus/v3/provisioning/queues/${tenant}/Main`)
        .set('Authorization', admin)
        .send({ endpoints: ['GlobalChatSwitchboard'] })
        .expect(201);
      const agentUser = await createAgent(h(), url, tenant, 'alice', 'Alice');
      const agent = connect(url, '/agent', { token: agentUser.token });
      await agent.connected;

      const before = await inboundRuns(chat);
      const chatSession = await startCustomerChat(url, created.body.data.xapikey as string, 'Gus');
      await eventually(
        () => agent.received.some(e => e.name === 'interaction'),
        15_000,
        'the chat at the agent',
      );
      await request(url)
        .post(`/nexus/v3/agent/interactions/${chatSession.interactionId}/join`)
        .set('Authorization', `Bearer ${agentUser.token}`)
        .expect(200);
      const sent = await sendCustomerMessage(url, chatSession, 'from-the-image');
      expect(sent.response.status).toBe(202);
      await eventually(
        () =>
          agent.received.some(
            e =>
              e.name === 'message' &&
              (e.data?.message as { text?: string } | undefined)?.text === 'text from-the-image',
          ),
        15_000,
        "the customer's message at the agent",
      );
      agent.socket.disconnect();
      // The inbound job that started the chat ran in the group that runs inbound, only there (the
      // message of the running chat was numbered by the API when it was stored).
      await eventually(
        async () => (await inboundRuns(chat)) > before,
        5_000,
        'the inbound job counted by the chat group',
      );
      expect(await inboundRuns(rest)).toBe(0);

      for (const r of running) r.process.child.kill('SIGTERM');
      const stopped = await Promise.all(
        running.map(async r => [r.name, await exitWithin(r.process, r.graceSeconds * 1000)]),
      );
      expect(stopped, running.map(r => `${r.name}:\n${r.process.output()}`).join('\n')).toEqual(
        running.map(r => [r.name, 0]),
      );
    } finally {
      await withAdmin(admin =>
        admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`),
      );
    }
  }, 120_000);

  it('runs the AI connector: athena --role=api answers /health/live on its port', async () => {
    const port = await freePort();
    const athena = startFromTree('athena', ['--role=api'], {
      ...hubEnv(h(), h().dbUrl),
      ATHENA_NEXUS_API_KEY: `nxk_${randomBytes(16).toString('hex')}`,
      PORT: String(port),
      METRICS_PORT: String(await freePort()),
    });
    await waitFor200(athena, `http://127.0.0.1:${port}/health/live`);
    athena.child.kill('SIGTERM');
    expect(await athena.exited, athena.output()).toBe(0);
  });

  it('runs the all-in-one: start (migrations on start) answers its probes and stops on SIGTERM', async () => {
    const port = await freePort();
    const all = startFromTree('start', [], {
      ...hubEnv(h(), h().dbUrl),
      NEXUS_MIGRATE_ON_START: 'true',
      PORT: String(port),
      METRICS_PORT: String(await freePort()),
    });
    await waitFor200(all, `http://127.0.0.1:${port}/health/ready`);
    all.child.kill('SIGTERM');
    expect(await all.exited, all.output()).toBe(0);
  });
});
