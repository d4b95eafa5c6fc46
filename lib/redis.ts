import type { ConnectionOptions } from 'node:tls';
import { Redis, Cluster, type RedisOptions, type ClusterNode } from 'ioredis';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import { redisDurationUntilReady, redisErrorsTotal, setRedisCensus } from './metrics.js';

export type RedisConnection = Redis | Cluster;

/**
 * `producer`: the API and anything that adds jobs. Commands fail at once while Redis is away
 * (`enableOfflineQueue: false`), so a request never hangs on Redis; durable enqueue leaves the
 * work pending in PostgreSQL and the sweeper adds it later.
 * `worker`: BullMQ workers and their blocking reads. Commands wait and retry forever
 * (`maxRetriesPerRequest: null`), as BullMQ requires.
 */
export type RedisRole = 'producer' | 'worker';

const connections = new Set<RedisConnection>();
setRedisCensus({
  established: () => count(status => status === 'connect' || status === 'ready'),
  reconnecting: () => count(status => status === 'reconnecting'),
  ready: () => count(status => status === 'ready'),
});
function count(predicate: (status: string) => boolean): number {
  let n = 0;
  for (const connection of connections) if (predicate(connection.status)) n++;
  return n;
}

/** Reconnect after 1 s, doubling up to 20 s, forever (BullMQ's recommendation). */
const retryStrategy = (times: number) => Math.min(1000 * 2 ** Math.max(0, times - 1), 20_000);

/** Opens one instrumented connection (or cluster client) for `role`. */
export function createRedis(
  config: Config['redis'],
  role: RedisRole,
  name: string,
  log: Logger,
): RedisConnection {
  const roleOptions: RedisOptions =
    role === 'producer'
      ? { enableOfflineQueue: false, maxRetriesPerRequest: 1 }
      : { enableOfflineQueue: true, maxRetriesPerRequest: null };
  const nodes = config.nodes.map(parseNode);
  const first = nodes[0];
  if (!first) throw new Error('REDIS_URL names no node');
  const common: RedisOptions = {
    ...roleOptions,
    connectionName: `nexus-${name}`,
    password: config.password ?? first.password,
    username: first.username,
    tls: config.tls || first.tls ? tlsOptions(config.tlsOptions) : undefined,
    retryStrategy,
    connectTimeout: 5_000,
  };
  const connection: RedisConnection = config.cluster
    ? new Cluster(
        nodes.map(({ host, port }): ClusterNode => ({ host, port })),
        {
          redisOptions: common,
          enableOfflineQueue: common.enableOfflineQueue,
          clusterRetryStrategy: retryStrategy,
          // TLS certificates name the cluster's hostname, not the node IPs it announces.
          dnsLookup: (address, callback) => callback(null, address),
        },
      )
    : new Redis({ ...common, host: first.host, port: first.port, db: first.db });
  instrument(connection, name, log);
  return connection;
}

/**
 * Node's TLS options from the configured PEM texts (unset ones left out, so Node's defaults, the
 * system's CAs among them, apply). A new object per connection: ioredis and Node keep and extend
 * what they are given, and the configuration is frozen.
 */
function tlsOptions(options: Config['redis']['tlsOptions']): ConnectionOptions {
  const tls: ConnectionOptions = {};
  if (options.ca !== undefined) tls.ca = options.ca;
  if (options.cert !== undefined) tls.cert = options.cert;
  if (options.key !== undefined) tls.key = options.key;
  if (options.servername !== undefined) tls.servername = options.servername;
  return tls;
}

/**
 * A connection for SUBSCRIBE/PSUBSCRIBE (the socket.io adapter's subscriber). On one server it
 * is {@link createRedis}'s `worker` connection. On a cluster it is a plain connection to one
 * node, moving to the next node of `REDIS_URL` on every reconnect attempt: classic pub/sub is
 * cluster-wide (a PUBLISH on any node reaches the subscribers of every node over the cluster
 * bus), so one node hears everything, and a connection of its own tells its owner, through its
 * `ready`, `reconnecting` and `close` events, when messages may have been missed, and keeps
 * commands sent on it in order with its subscriptions. A cluster client's subscriber is an
 * internal connection that moves to another node without an event.
 */
export function createSubscriber(config: Config['redis'], name: string, log: Logger): Redis {
  if (!config.cluster) return createRedis(config, 'worker', name, log) as Redis;
  const nodes = config.nodes.map(parseNode);
  const first = nodes[0];
  if (!first) throw new Error('REDIS_URL names no node');
  let next = 0;
  const connection: Redis = new Redis({
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    connectionName: `nexus-${name}`,
    host: first.host,
    port: first.port,
    password: config.password ?? first.password,
    username: first.username,
    tls: config.tls || first.tls ? tlsOptions(config.tlsOptions) : undefined,
    connectTimeout: 5_000,
    retryStrategy: times => {
      next = (next + 1) % nodes.length;
      const node = nodes[next] ?? first;
      connection.options.host = node.host;
      connection.options.port = node.port;
      return retryStrategy(times);
    },
  });
  instrument(connection, name, log);
  return connection;
}

function parseNode(node: string) {
  const url = new URL(node);
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number(url.port) : 6379,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0,
    tls: url.protocol === 'rediss:',
  };
}

function instrument(connection: RedisConnection, name: string, log: Logger): void {
  connections.add(connection);
  let connectingSince = process.hrtime.bigint();
  let lastErrorLog = 0;
  connection.on('reconnecting', () => {
    connectingSince = process.hrtime.bigint();
  });
  connection.on('ready', () => {
    redisDurationUntilReady.observe(Number(process.hrtime.bigint() - connectingSince) / 1e9);
    log.info({ connection: name }, 'redis ready');
  });
  connection.on('error', (error: Error) => {
    redisErrorsTotal.inc();
    // A down Redis raises an error per retry; one line every 10 s is enough to see it.
    const now = Date.now();
    if (now - lastErrorLog > 10_000) {
      lastErrorLog = now;
      log.warn({ connection: name, err: error }, 'redis connection error');
    }
  });
  connection.on('end', () => connections.delete(connection));
}

/** Whether a connection can serve commands now, and its ioredis status for `/health/detail`. */
export function redisState(connection: RedisConnection): { ready: boolean; state: string } {
  return { ready: connection.status === 'ready', state: connection.status.toUpperCase() };
}

/**
 * BullMQ is only correct with `maxmemory-policy noeviction`: any other policy lets Redis delete
 * job keys under memory pressure. Warns (managed services may forbid CONFIG; then we cannot tell).
 * Returns the policy seen, or undefined when it could not be read.
 */
export async function checkEvictionPolicy(
  connection: RedisConnection,
  log: Logger,
): Promise<string | undefined> {
  const targets = connection instanceof Cluster ? connection.nodes('master') : [connection];
  let seen: string | undefined;
  for (const node of targets) {
    try {
      const reply = (await node.config('GET', 'maxmemory-policy')) as string[];
      const policy = reply[1];
      seen = policy;
      if (policy !== 'noeviction') {
        log.warn(
          { policy },
          `Redis maxmemory-policy is "${policy}", not "noeviction": Redis may evict queued jobs under memory pressure. Set "maxmemory-policy noeviction".`,
        );
        return policy;
      }
    } catch (error) {
      log.warn(
        { err: error },
        'could not read Redis maxmemory-policy (CONFIG GET refused); make sure it is "noeviction"',
      );
      return undefined;
    }
  }
  return seen;
}

/** Closes a connection, falling back to disconnect when QUIT cannot be sent. */
export async function closeRedis(connection: RedisConnection): Promise<void> {
  if (connection.status === 'end') return;
  try {
    await connection.quit();
  } catch {
    connection.disconnect();
  }
}
