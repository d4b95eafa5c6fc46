import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisConnection } from '../../lib/redis.js';

/**
 * The Redis deployments the integration tests run on: `single` (the machine's Redis, or a private
 * redis-server), `cluster` (three masters on loopback) and `tls` (one server that only speaks
 * TLS, with a test CA, and asks for a client certificate). The SAME test files run on each: the
 * variable NEXUS_TEST_REDIS (or a vitest project's `env`) names the topology, the global setup
 * starts it once per run, and the harness and the processes it starts get its variables
 * (`REDIS_URL`, `REDIS_CLUSTER`, `REDIS_TLS`, `REDIS_TLS_*_FILE`).
 */
export type RedisTopology = 'single' | 'cluster' | 'tls';

export function redisTopology(value: string | undefined): RedisTopology {
  if (value === undefined || value === '' || value === 'single') return 'single';
  if (value === 'cluster' || value === 'tls') return value;
  throw new Error(`NEXUS_TEST_REDIS must be "cluster", "tls" or unset, not "${value}"`);
}

/** PEM files of a test CA, a server certificate it signed (127.0.0.1, localhost) and a client's. */
export interface TestCertificates {
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

/** What the test files learn of the run's Redis (`inject('testRedis')`). */
export interface TestRedisTarget {
  readonly topology: RedisTopology;
  /** The hub's Redis variables for the run's shared deployment. */
  readonly env: Readonly<Record<string, string>>;
  /** The run's certificates (`tls`): private servers of the topology use them too. */
  readonly certificates: TestCertificates | undefined;
}

declare module 'vitest' {
  export interface ProvidedContext {
    testRedis: TestRedisTarget;
  }
}

/** Writes a CA, a server and a client certificate (EC P-256, two days) into `dir` with openssl. */
export function createTestCertificates(dir: string): TestCertificates {
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => {
    const run = spawnSync('openssl', args, { encoding: 'utf8' });
    if (run.error) throw new Error(`openssl is needed for the TLS tests: ${run.error.message}`);
    if (run.status !== 0) throw new Error(`openssl ${args[0]} failed: ${run.stderr}`);
  };
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...key,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=Nexus test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  for (const [name, usage] of [
    ['server', 'serverAuth'],
    ['client', 'clientAuth'],
  ] as const) {
    writeFileSync(
      file(`${name}.ext`),
      `subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=${usage}\n`,
    );
    openssl(
      'req',
      '-new',
      ...key,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.csr`),
      '-subj',
      `/CN=nexus-test-${name}`,
    );
    openssl(
      'x509',
      '-req',
      '-in',
      file(`${name}.csr`),
      '-CA',
      file('ca.crt'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      file(`${name}.ext`),
      '-out',
      file(`${name}.crt`),
    );
  }
  return {
    ca: file('ca.crt'),
    serverCert: file('server.crt'),
    serverKey: file('server.key'),
    clientCert: file('client.crt'),
    clientKey: file('client.key'),
  };
}

/** The hub's variables for a deployment of `topology` at `url`. */
export function topologyEnv(
  topology: RedisTopology,
  url: string,
  certificates: TestCertificates | undefined,
): Record<string, string> {
  if (topology === 'cluster') return { REDIS_URL: url, REDIS_CLUSTER: 'true' };
  if (topology === 'tls') {
    if (!certificates) throw new Error('the tls topology needs certificates');
    return {
      REDIS_URL: url,
      REDIS_TLS: 'true',
      REDIS_TLS_CA_FILE: certificates.ca,
      REDIS_TLS_CERT_FILE: certificates.clientCert,
      REDIS_TLS_KEY_FILE: certificates.clientKey,
    };
  }
  return { REDIS_URL: url };
}

/** redis-server processes of one topology, with a plain client for the test. */
export interface RedisDeployment {
  readonly topology: RedisTopology;
  /** `redis://` (`rediss://` for tls); the seed nodes, comma-separated, for a cluster. */
  readonly url: string;
  /** The first node's port. */
  readonly port: number;
  /** The hub's variables that point at this deployment. */
  readonly env: Readonly<Record<string, string>>;
  /**
   * A client for the test (FLUSHALL, inspection). On a cluster, `flushall()` empties every
   * master, as FLUSHALL does on one server.
   */
  readonly client: RedisConnection;
  /** Kills every server (their data is lost, as in a restart without persistence). */
  kill(): Promise<void>;
  /**
   * Starts the servers again, empty, on the same ports (a cluster's nodes keep their identities
   * and slots, as after a restart without persistence) and waits until the test's client is ready.
   */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisDeploymentOptions {
  topology: RedisTopology;
  /** Free ports: one per server, and a cluster bus port per cluster node. */
  ports: () => Promise<number>;
  /** Where a cluster keeps its nodes-<port>.conf files. */
  dir: string;
  certificates: TestCertificates | undefined;
}

const COMMON_ARGS = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];

function serverArgs(
  options: RedisDeploymentOptions,
  port: number,
  busPort: number | undefined,
): string[] {
  const args = [...COMMON_ARGS, '--maxmemory-policy', 'noeviction', '--dir', options.dir];
  if (options.topology === 'tls') {
    const c = options.certificates;
    if (!c) throw new Error('the tls topology needs certificates');
    return [
      ...args,
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--tls-cert-file',
      c.serverCert,
      '--tls-key-file',
      c.serverKey,
      '--tls-ca-cert-file',
      c.ca,
      // The hub must present its client certificate (REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE).
      '--tls-auth-clients',
      'yes',
    ];
  }
  if (options.topology === 'cluster') {
    return [
      ...args,
      '--port',
      String(port),
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      join(options.dir, `nodes-${port}.conf`),
      // Explicit: the default (port + 10000) may be taken, or above 65535.
      '--cluster-port',
      String(busPort),
      '--cluster-node-timeout',
      '5000',
    ];
  }
  return [...args, '--port', String(port)];
}

/** Servers still running: killed when this process exits, so a run that stops early leaves none. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function spawnServer(args: string[]): ChildProcess {
  const child = spawn(process.env.TEST_REDIS_SERVER ?? 'redis-server', args, { stdio: 'ignore' });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

async function killServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise(resolve => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

function waitReady(client: RedisConnection, what: string): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start`)), 15_000);
    client.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Polls until `client` answers a PING (a cluster client, after its nodes came back). */
async function waitAnswers(client: RedisConnection): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await client.ping();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise(resolve => setTimeout(resolve, 100));
    }
  }
}

/** Polls until every node's CLUSTER INFO says `cluster_state:ok` (its slots are all served). */
async function waitClusterOk(ports: readonly number[]): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (const port of ports) {
    const node = new Redis({ port, host: '127.0.0.1', retryStrategy: () => 50, lazyConnect: true });
    node.on('error', () => undefined);
    try {
      for (;;) {
        const info = await node.cluster('INFO').catch(() => '');
        if (info.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`cluster node ${port} is not ok: ${info}`);
        await new Promise(resolve => setTimeout(resolve, 100));
      }
    } finally {
      node.disconnect();
    }
  }
}

/**
 * Spawns the servers; for a cluster, creates it (redis-cli --cluster create) once they answer,
 * or, on a restart, waits until the nodes (which kept their nodes-<port>.conf) meet again.
 */
async function spawnDeployment(
  options: RedisDeploymentOptions,
  ports: readonly number[],
  busPorts: readonly number[],
  restart: boolean,
): Promise<ChildProcess[]> {
  const children = ports.map((port, i) => spawnServer(serverArgs(options, port, busPorts[i])));
  if (options.topology !== 'cluster') return children;
  try {
    if (restart) {
      await waitClusterOk(ports);
      return children;
    }
    // Nodes answer PING before they are a cluster; redis-cli needs them all up.
    for (const port of ports) {
      const node = new Redis({ port, host: '127.0.0.1', retryStrategy: () => 50 });
      node.on('error', () => undefined);
      try {
        await waitReady(node, `cluster node ${port}`);
      } finally {
        node.disconnect();
      }
    }
    const created = await new Promise<{ status: number | null; output: string }>(resolve => {
      const cli = spawn(
        'redis-cli',
        [
          '--cluster',
          'create',
          ...ports.map(port => `127.0.0.1:${port}`),
          '--cluster-replicas',
          '0',
          '--cluster-yes',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      cli.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      cli.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      cli.on('error', error => resolve({ status: -1, output: error.message }));
      cli.on('exit', status => resolve({ status, output }));
    });
    if (created.status !== 0) {
      throw new Error(`redis-cli --cluster create failed: ${created.output}`);
    }
    await waitClusterOk(ports);
    return children;
  } catch (error) {
    await Promise.all(children.map(killServer));
    throw error;
  }
}

const CLUSTER_NODES = 3;

/**
 * Starts a private deployment of `topology`: one redis-server (plain or TLS), or three cluster
 * masters holding every slot. Its servers keep no data on disk; `stop()` ends them.
 */
export async function startRedisDeployment(
  options: RedisDeploymentOptions,
): Promise<RedisDeployment> {
  const { topology } = options;
  const count = topology === 'cluster' ? CLUSTER_NODES : 1;
  const ports: number[] = [];
  const busPorts: number[] = [];
  for (let i = 0; i < count; i++) {
    ports.push(await options.ports());
    if (topology === 'cluster') busPorts.push(await options.ports());
  }
  const [first] = ports as [number, ...number[]];
  let children = await spawnDeployment(options, ports, busPorts, false);

  const scheme = topology === 'tls' ? 'rediss' : 'redis';
  const url = ports.map(port => `${scheme}://127.0.0.1:${port}`).join(',');
  const c = options.certificates;
  // Refused connections while the servers boot are expected: reconnect every 50 ms until ready.
  const nodeOptions: RedisOptions = {
    retryStrategy: () => 50,
    tls:
      topology === 'tls' && c
        ? {
            ca: readFileSync(c.ca, 'utf8'),
            cert: readFileSync(c.clientCert, 'utf8'),
            key: readFileSync(c.clientKey, 'utf8'),
          }
        : undefined,
  };
  let client: RedisConnection;
  if (topology === 'cluster') {
    const cluster = new Cluster(
      ports.map(port => ({ host: '127.0.0.1', port })),
      { redisOptions: nodeOptions, clusterRetryStrategy: () => 50 },
    );
    // FLUSHALL empties the one node a cluster client sends it to; the tests mean all the data.
    cluster.flushall = async () => {
      await Promise.all(cluster.nodes('master').map(node => node.flushall()));
      return 'OK';
    };
    client = cluster;
  } else {
    client = new Redis({ ...nodeOptions, host: '127.0.0.1', port: first });
  }
  client.on('error', () => undefined);
  try {
    await waitReady(client, `redis (${topology}) on port ${first}`);
  } catch (error) {
    client.disconnect();
    await Promise.all(children.map(killServer));
    throw error;
  }

  const kill = async () => {
    await Promise.all(children.map(killServer));
  };
  return {
    topology,
    url,
    port: first,
    env: topologyEnv(topology, url, options.certificates),
    client,
    kill,
    async start() {
      // A cluster client stays `ready` while its nodes are down (it drops a node's connection and
      // finds the node again through the others): it is ready once it answers again.
      const closed =
        topology !== 'cluster' && client.status === 'ready'
          ? new Promise(resolve => client.once('close', resolve))
          : null;
      await kill();
      await closed;
      // A cluster's nodes come back as themselves, with their slots (their nodes-<port>.conf,
      // which a real node keeps on disk) but without their data.
      children = await spawnDeployment(options, ports, busPorts, true);
      await waitReady(client, `redis (${topology}) on port ${first}`);
      if (topology === 'cluster') await waitAnswers(client);
    },
    async stop() {
      client.disconnect();
      await kill();
    },
  };
}
