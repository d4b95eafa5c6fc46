import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import {
  startRedisDeployment,
  type RedisDeployment,
  type TestRedisTarget,
} from './redis-topologies.js';

/**
 * A throwaway Redis of the test's own, so FLUSHALL and restarts touch nothing else: a deployment
 * of the run's topology whose `stop` also removes its directory.
 */
export type PrivateRedis = RedisDeployment;

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise(resolve => server.close(resolve));
  return port;
}

/**
 * A private deployment of the run's Redis topology (test/helpers/redis-topologies.ts): one
 * redis-server by default, three cluster masters or a TLS server when the run is on those.
 * Its variables are {@link PrivateRedis.env}; `url` alone is enough on one plain server.
 */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const target = inject('testRedis') as TestRedisTarget | undefined;
  const topology = target?.topology ?? 'single';
  const dir = mkdtempSync(join(tmpdir(), 'nexus-redis-'));
  try {
    const deployment = await startRedisDeployment({
      topology,
      ports: freePort,
      dir,
      certificates: target?.certificates,
    });
    return {
      ...deployment,
      async stop() {
        await deployment.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
