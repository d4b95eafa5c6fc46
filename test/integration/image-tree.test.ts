import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
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

/**
 * The container image's production tree. `scripts/build-production-tree.sh`, the build stage of
 * the Dockerfile, writes the tree into a temporary folder; the processes then start from it the
 * way the image starts them: through `entrypoint.sh`, in the tree, with `NODE_ENV=production` and
 * no variables but `PATH` and the hub's, the tree read-only and, when the test runs as root (whom
 * a read-only mode does not stop), as the image's user 500:500. The Dockerfile itself is not built
 * (no Docker engine here): a test checks that its stages run this script and this tree.
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

  it('migrates a fresh database, then its api and worker carry a chat message and stop on SIGTERM', async () => {
    const name = runDatabase(inject('testRun'));
    const dbUrl = databaseUrl(name);
    try {
      const env = hubEnv(h(), dbUrl);
      const migrate = startFromTree('migrate', [], { ...env, LOG_LEVEL: 'info' });
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

      const [port, apiMetrics, workerMetrics] = [
        await freePort(),
        await freePort(),
        await freePort(),
      ];
      const api = startFromTree('api', [], {
        ...env,
        PORT: String(port),
        METRICS_PORT: String(apiMetrics),
      });
      const worker = startFromTree('worker', [], { ...env, METRICS_PORT: String(workerMetrics) });
      const url = `http://127.0.0.1:${port}`;
      await waitFor200(api, `${url}/health/live`);
      await waitFor200(api, `${url}/health/ready`);
      await waitFor200(worker, `http://127.0.0.1:${workerMetrics}/metrics`);
      if (asImageUser) {
        // entrypoint.sh execs node: the process the signals reach is node, as 500:500.
        for (const p of [api, worker]) {
          const status = readFileSync(`/proc/${p.child.pid}/status`, 'utf8');
          expect(status).toMatch(/^Name:\s+node$/m);
          expect(status).toMatch(/^Uid:\s+500\s+500\s+500\s+500$/m);
          expect(status).toMatch(/^Gid:\s+500\s+500\s+500\s+500$/m);
        }
      }

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

      const chat = await startCustomerChat(url, created.body.data.xapikey as string, 'Gus');
      await eventually(
        () => agent.received.some(e => e.name === 'interaction'),
        15_000,
        'the chat at the agent',
      );
      await request(url)
        .post(`/nexus/v3/agent/interactions/${chat.interactionId}/join`)
        .set('Authorization', `Bearer ${agentUser.token}`)
        .expect(200);
      const sent = await sendCustomerMessage(url, chat, 'from-the-image');
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

      api.child.kill('SIGTERM');
      worker.child.kill('SIGTERM');
      const codes = await Promise.all([api.exited, worker.exited]);
      expect(codes, `${api.output()}\n${worker.output()}`).toEqual([0, 0]);
    } finally {
      await withAdmin(admin =>
        admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`),
      );
    }
  });

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
