import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startPrivatePostgres, type PrivatePostgres } from '../../test/helpers/postgres-server.js';
import { startTcpProxy, type TcpProxy } from '../../test/helpers/tcp-proxy.js';
import { sleep, waitFor } from '../measure.js';
import { freePort } from '../systems.js';

/**
 * A redis-server of the suite's own, without persistence: a restart comes back empty, as a
 * Redis without AOF does, and FLUSHALL touches nobody else.
 */
export interface PrivateRedisServer {
  readonly port: number;
  readonly client: Redis;
  /** SIGKILL: every key is gone. */
  kill(): Promise<void>;
  /** A fresh, empty server on the same port. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedisServer(): Promise<PrivateRedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'nexus-chaos-redis-'));
  let child: ChildProcess | undefined;
  const start = async () => {
    const next = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      { stdio: 'ignore' },
    );
    child = next;
    await waitFor(
      async () => {
        if (next.exitCode !== null) throw new Error(`redis-server on ${port} exited`);
        const probe = new Redis({
          port,
          host: '127.0.0.1',
          lazyConnect: true,
          retryStrategy: () => null,
        });
        probe.on('error', () => undefined);
        try {
          await probe.connect();
          return (await probe.ping()) === 'PONG';
        } catch {
          return false;
        } finally {
          probe.disconnect();
        }
      },
      20_000,
      `redis-server on ${port}`,
    );
  };
  const kill = async () => {
    const current = child;
    child = undefined;
    if (!current || current.exitCode !== null) return;
    const exited = new Promise(resolve => current.once('exit', resolve));
    current.kill('SIGKILL');
    await exited;
  };
  await start();
  const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: null });
  client.on('error', () => undefined);
  return {
    port,
    client,
    kill,
    start,
    async stop() {
      client.disconnect();
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * What the hub runs on in a chaos run: a private PostgreSQL and a private Redis, each behind a
 * TCP proxy the hub's processes connect through (so a network cut can be injected), while the
 * suite reads PostgreSQL directly.
 */
export interface Services {
  readonly postgres: PrivatePostgres;
  readonly redis: PrivateRedisServer;
  readonly postgresProxy: TcpProxy;
  readonly redisProxy: TcpProxy;
  /** DATABASE_URL of the hub (through the proxy). */
  readonly hubDatabaseUrl: string;
  /** REDIS_URL of the hub (through the proxy). */
  readonly hubRedisUrl: string;
  /** The suite's own URL of the hub's database (direct). */
  readonly directDatabaseUrl: string;
  stop(): Promise<void>;
}

export const DATABASE = 'nexus_chaos';

export async function startServices(): Promise<Services> {
  const postgres = await startPrivatePostgres();
  const redis = await startRedisServer().catch(async (error: unknown) => {
    await postgres.destroy();
    throw error;
  });
  const postgresProxy = await startTcpProxy(postgres.port);
  const redisProxy = await startTcpProxy(redis.port);
  return {
    postgres,
    redis,
    postgresProxy,
    redisProxy,
    hubDatabaseUrl: `postgres://postgres@127.0.0.1:${postgresProxy.port}/${DATABASE}`,
    hubRedisUrl: `redis://127.0.0.1:${redisProxy.port}`,
    directDatabaseUrl: postgres.url(DATABASE),
    async stop() {
      await postgresProxy.close();
      await redisProxy.close();
      await redis.stop();
      await postgres.destroy();
      await sleep(0);
    },
  };
}
