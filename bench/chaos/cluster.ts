import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { http } from '../http.js';
import { waitFor } from '../measure.js';
import { ADMIN_TOKEN, freePort } from '../systems.js';
import type { Services } from './services.js';

/** One hub process of the cluster: it may be killed, frozen, resumed and started again. */
export interface HubNode {
  readonly role: 'api' | 'worker';
  readonly name: string;
  /** The API's base URL (same port across restarts); undefined for a worker. */
  readonly url: string | undefined;
  readonly pid: number | undefined;
  /** Exits nobody asked for (a crash under a fault counts here). */
  readonly unexpectedExits: number;
  /** The last lines the process wrote. */
  tail(): string;
  kill(signal: NodeJS.Signals): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  apis: number;
  workers: number;
  /** Run the compiled dist/ (as production, after `npm run build`) or the sources through tsx. */
  compiled: boolean;
  /** Extra variables of every process. */
  env?: Record<string, string>;
}

export interface Cluster {
  readonly apis: HubNode[];
  readonly workers: HubNode[];
  readonly nodes: HubNode[];
  stop(): Promise<void>;
}

/**
 * Settings of every process of a chaos run: what a small production deployment would set, with
 * the recovery timers shortened so a run settles in seconds (a job lock of 5 s, the sweeper
 * every 2 s for work pending 10 s) and webhook attempts timing out after 3 s.
 */
export const CHAOS_ENV: Record<string, string> = {
  NEXUS_WORKER_LOCK_MS: '5000',
  NEXUS_SWEEP_INTERVAL_MS: '2000',
  NEXUS_SWEEP_AFTER_MS: '10000',
  NEXUS_WEBHOOK_TIMEOUT_MS: '3000',
  NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: '200',
  NEXUS_SMS_RATE_PER_SECOND: '10000',
  NEXUS_CHAT_SESSION_LIMIT: '10000/1',
  NEXUS_EGRESS_ALLOW: '127.0.0.1',
  NEXUS_WORKER_CONCURRENCY: '20',
  DB_POOL_SIZE: '10',
};

const TAIL_LINES = 40;

function node(
  role: 'api' | 'worker',
  name: string,
  port: number | undefined,
  options: ClusterOptions,
  env: Record<string, string>,
): HubNode {
  const entry = role === 'api' ? 'bin/api' : 'bin/worker';
  const compiled = `dist/${entry}.js`;
  if (options.compiled && !existsSync(compiled)) {
    throw new Error(`${compiled} is missing: run \`npm run build\` first`);
  }
  let child: ChildProcess | undefined;
  let expected = false;
  let unexpectedExits = 0;
  const lines: string[] = [];
  const url = port === undefined ? undefined : `http://127.0.0.1:${port}`;
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString().split('\n').filter(Boolean));
    if (lines.length > TAIL_LINES) lines.splice(0, lines.length - TAIL_LINES);
  };
  const self: HubNode = {
    role,
    name,
    url,
    get pid() {
      return child?.pid;
    },
    get unexpectedExits() {
      return unexpectedExits;
    },
    tail: () => lines.join('\n'),
    kill(signal) {
      if (signal === 'SIGKILL' || signal === 'SIGTERM') expected = true;
      child?.kill(signal);
    },
    async start() {
      expected = false;
      const args = options.compiled ? [compiled] : ['--import', 'tsx', `${entry}.ts`];
      const next = spawn(process.execPath, args, {
        env: {
          ...process.env,
          ...env,
          ...(port === undefined ? {} : { PORT: String(port) }),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = next;
      next.stdout?.on('data', keep);
      next.stderr?.on('data', keep);
      next.once('exit', (code, signal) => {
        if (!expected) {
          unexpectedExits++;
          lines.push(`[chaos] ${name} exited unexpectedly (${code ?? signal})`);
        }
      });
      if (url) {
        await waitFor(
          async () => {
            if (next.exitCode !== null) throw new Error(`${name} exited:\n${self.tail()}`);
            const res = await http('GET', `${url}/health/ready`, {}).catch(() => undefined);
            return res?.status === 200;
          },
          60_000,
          `${name} ready`,
        );
      }
    },
    async stop() {
      const current = child;
      if (!current || current.exitCode !== null || current.signalCode !== null) return;
      expected = true;
      const exited = new Promise(resolve => current.once('exit', resolve));
      current.kill('SIGCONT');
      current.kill('SIGTERM');
      const timer = setTimeout(() => current.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
  return self;
}

/**
 * N API and M worker processes of the hub against the services (through their proxies). The first
 * API migrates the database (creating it) before the others start.
 */
export async function startCluster(services: Services, options: ClusterOptions): Promise<Cluster> {
  const env: Record<string, string> = {
    NODE_ENV: 'production',
    DATABASE_URL: services.hubDatabaseUrl,
    REDIS_URL: services.hubRedisUrl,
    NEXUS_QUEUE_PREFIX: `{c${randomBytes(3).toString('hex')}}`,
    NEXUS_ADMIN_TOKEN: ADMIN_TOKEN,
    NEXUS_SECRET_KEY: randomBytes(32).toString('hex'),
    LOG_LEVEL: 'warn',
    METRICS_PORT: '0',
    HOST: '127.0.0.1',
    ...CHAOS_ENV,
    ...options.env,
  };
  const apis: HubNode[] = [];
  const workers: HubNode[] = [];
  const cluster: Cluster = {
    apis,
    workers,
    get nodes() {
      return [...apis, ...workers];
    },
    async stop() {
      await Promise.all([...apis, ...workers].map(n => n.stop()));
    },
  };
  try {
    for (let i = 0; i < options.apis; i++) {
      const api = node('api', `api${i + 1}`, await freePort(), options, {
        ...env,
        NEXUS_MIGRATE_ON_START: i === 0 ? 'true' : 'false',
      });
      apis.push(api);
      await api.start();
    }
    for (let i = 0; i < options.workers; i++) {
      const worker = node('worker', `worker${i + 1}`, undefined, options, {
        ...env,
        NEXUS_MIGRATE_ON_START: 'false',
      });
      workers.push(worker);
      await worker.start();
    }
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}
