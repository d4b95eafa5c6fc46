import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

/** A throwaway redis-server of the test's own, so FLUSHALL and restarts touch nothing else. */
export interface PrivateRedis {
  readonly url: string;
  readonly port: number;
  /** A plain client for the test (FLUSHALL, inspection); closed by {@link PrivateRedis.stop}. */
  readonly client: Redis;
  /** Kills the server (its data is lost, as in a restart without persistence); clients retry. */
  kill(): Promise<void>;
  /** Starts a fresh, empty server on the same port and waits until the test's client is ready. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise(resolve => server.close(resolve));
  return port;
}

function spawnServer(port: number): ChildProcess {
  return spawn(
    process.env.TEST_REDIS_SERVER ?? 'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--maxmemory-policy',
      'noeviction',
    ],
    { stdio: 'ignore' },
  );
}

function ready(client: Redis, port: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`redis-server did not start on port ${port}`)),
      10_000,
    );
    client.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function killServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise(resolve => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  let child = spawnServer(port);
  // Refused connections while the server boots are expected: reconnect every 50 ms until ready.
  const client = new Redis({ port, host: '127.0.0.1', retryStrategy: () => 50 });
  client.on('error', () => undefined);
  try {
    await ready(client, port);
  } catch (error) {
    client.disconnect();
    child.kill('SIGKILL');
    throw error;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    client,
    kill: () => killServer(child),
    async start() {
      const closed =
        client.status === 'ready' ? new Promise(resolve => client.once('close', resolve)) : null;
      await killServer(child);
      await closed;
      child = spawnServer(port);
      await ready(client, port);
    },
    async stop() {
      client.disconnect();
      await killServer(child);
    },
  };
}
