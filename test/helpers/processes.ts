import { spawn, type ChildProcess } from 'node:child_process';
import type { Harness } from './harness.js';
import { eventually, testRedisEnv } from './harness.js';
import { freePort } from './redis-server.js';

export interface HubProcess {
  readonly child: ChildProcess;
  readonly output: string[];
  readonly exited: Promise<number | null>;
  /** The API's base URL (API processes only). */
  readonly url: string | undefined;
  stop(): Promise<number | null>;
}

/**
 * Runs an entry point of bin/ as its own process against the harness's database and queue
 * prefix (what `npm run api` / `npm run worker` run, from source through tsx). An API whose port
 * was taken between the probe and its bind (another socket got the same ephemeral port) is started
 * again on another one.
 */
export async function startHubProcess(
  h: Harness | HubTarget,
  entry: HubEntry,
  env: Record<string, string> = {},
): Promise<HubProcess> {
  for (let tries = 1; ; tries++) {
    try {
      return await spawnHubProcess(h, entry, env);
    } catch (error) {
      if (!(error instanceof PortTakenError) || tries >= 3) throw error;
    }
  }
}

class PortTakenError extends Error {}

/**
 * `api` and `worker` as `npm run api` / `npm run worker`; `start` is the all-in-one; `athena` the
 * AI connector (`athena:api`, `athena:worker`: one of its roles).
 */
export type HubEntry = 'api' | 'worker' | 'start' | 'athena' | 'athena:api' | 'athena:worker';

/** Where a hub process runs when it is not a harness's: a database, a Redis and a prefix. */
export interface HubTarget {
  readonly dbUrl: string;
  readonly redisUrl: string;
  readonly prefix: string;
}

function targetEnv(h: Harness | HubTarget): Record<string, string> {
  if ('redisUrl' in h) {
    return { DATABASE_URL: h.dbUrl, REDIS_URL: h.redisUrl, NEXUS_QUEUE_PREFIX: h.prefix };
  }
  return {
    DATABASE_URL: h.dbUrl,
    // The run's Redis, and on a cluster or TLS run its other variables (certificate files too).
    ...testRedisEnv(),
    NEXUS_QUEUE_PREFIX: h.config.queues.prefix,
    NEXUS_ADMIN_TOKEN: h.config.adminToken,
    NEXUS_SECRET_KEY: h.config.secretKey.toString('hex'),
  };
}

async function spawnHubProcess(
  h: Harness | HubTarget,
  entry: HubEntry,
  env: Record<string, string>,
): Promise<HubProcess> {
  const serves = entry !== 'worker' && entry !== 'athena:worker';
  const port = env.PORT ? Number(env.PORT) : serves ? await freePort() : 0;
  const [file, role] = entry.split(':') as [string, string | undefined];
  const args = ['--import', 'tsx', `bin/${file}.ts`, ...(role ? [`--role=${role}`] : [])];
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      NODE_ENV: 'test',
      ...targetEnv(h),
      NEXUS_MIGRATE_ON_START: 'false',
      PORT: String(port),
      HOST: '127.0.0.1',
      METRICS_PORT: '0',
      LOG_LEVEL: 'warn',
      NEXUS_CHAT_SESSION_LIMIT: '10000/1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const exited = new Promise<number | null>(resolve => child.once('exit', resolve));
  const url = serves ? `http://127.0.0.1:${port}` : undefined;
  if (url) {
    const state = await eventually(
      async () => {
        if (child.exitCode !== null) return 'exited';
        const res = await fetch(`${url}/health/ready`).catch(() => undefined);
        return res?.status === 200 ? 'ready' : false;
      },
      30_000,
      `the api process on port ${port}`,
    );
    if (state === 'exited') {
      const text = output.join('');
      if (text.includes('EADDRINUSE')) throw new PortTakenError(`port ${port} was taken`);
      throw new Error(`api exited: ${text}`);
    }
  }
  return {
    child,
    output,
    exited,
    url,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
