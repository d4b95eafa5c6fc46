import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/**
 * A throwaway PostgreSQL cluster of the caller's own (initdb in a temporary directory, trust
 * authentication, loopback only), so it may be stopped, restarted and killed without touching
 * the machine's shared server.
 */
export interface PrivatePostgres {
  readonly port: number;
  /** A URL of the cluster for database `name` (`postgres` by default). */
  url(name?: string): string;
  /** Stops the server (`fast`: connections are closed; `immediate`: as a crash). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  /** Stops it for good and removes its directory. */
  destroy(): Promise<void>;
}

/** The binaries of the newest PostgreSQL installed (Debian layout), or `PG_BIN` when set. */
export function postgresBin(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter(v => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0]) {
    throw new Error('no PostgreSQL binaries under /usr/lib/postgresql (set PG_BIN)');
  }
  return join(root, versions[0], 'bin');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise(resolve => server.close(resolve));
  return port;
}

/** initdb refuses root: as root, the cluster belongs to the `postgres` user. */
const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

function run(bin: string, args: string[]) {
  return asRoot
    ? exec('runuser', ['-u', 'postgres', '--', bin, ...args], { maxBuffer: 1 << 24 })
    : exec(bin, args, { maxBuffer: 1 << 24 });
}

/**
 * initdb and start on a free port. Durability settings are relaxed (`fsync=off`): a stop, even an
 * immediate one, still recovers every committed transaction from the WAL, which is what a
 * restart test needs; only a machine crash could lose them.
 */
export async function startPrivatePostgres(
  options: { maxConnections?: number } = {},
): Promise<PrivatePostgres> {
  const bin = postgresBin();
  const dir = mkdtempSync(join(tmpdir(), 'nexus-pg-'));
  if (asRoot) {
    chmodSync(dir, 0o755);
    const { stdout } = await exec('id', ['-u', 'postgres']);
    const { stdout: gid } = await exec('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const data = join(dir, 'data');
  const port = await freePort();
  try {
    await run(join(bin, 'initdb'), [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth=trust',
      '-N',
      '-E',
      'UTF8',
    ]);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const settings = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses='127.0.0.1'",
    `-c max_connections=${options.maxConnections ?? 200}`,
    '-c fsync=off',
    '-c full_page_writes=off',
    '-c shared_buffers=64MB',
  ].join(' ');
  const pgCtl = join(bin, 'pg_ctl');
  const start = async () => {
    await run(pgCtl, [
      '-D',
      data,
      '-o',
      settings,
      '-l',
      join(dir, 'server.log'),
      '-w',
      '-t',
      '60',
      'start',
    ]);
  };
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    await run(pgCtl, ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
  };
  try {
    await start();
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    port,
    url: (name = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${name}`,
    stop,
    start,
    async destroy() {
      await stop('immediate').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
