import { freemem, hostname, loadavg, totalmem, uptime } from 'node:os';
import type { Express } from 'express';
import type { DatabasePool } from 'slonik';
import { pingDb } from '../../db/pool.js';
import type { Config } from '../../lib/config.js';
import { PACKAGE_VERSION } from '../../lib/package-info.js';
import { redisState, type RedisConnection } from '../../lib/redis.js';

export interface AthenaHealthDeps {
  config: Config;
  db: DatabasePool;
  redis: RedisConnection;
  startedAt: Date;
}

/** Milliseconds a check took, or undefined when it failed. */
async function timed(check: () => Promise<unknown>): Promise<number | undefined> {
  const started = performance.now();
  try {
    await check();
    return Math.round(performance.now() - started);
  } catch {
    return undefined;
  }
}

/**
 * The connector's probes: `/health/live`, `/health/ready` (PostgreSQL and Redis answer; 503
 * otherwise) and `/health/detail` in the guide's athena shape (`buildInfo`, `startTime`,
 * `upTime`, `os`, `memoryUsage`, `redis.state` and `redis.latency`, `db.latency`, `isReady`),
 * plus `state` (green or red) and `redis.ready` / `db.ready`, which the guide's validation step
 * reads too. Latencies are milliseconds of a PING and a `SELECT 1`.
 */
export function athenaHealthRoutes(app: Express, deps: AthenaHealthDeps): void {
  const check = async () => {
    const [dbLatency, redisLatency] = await Promise.all([
      timed(async () => {
        if (!(await pingDb(deps.db))) throw new Error('no answer');
      }),
      timed(() => deps.redis.ping()),
    ]);
    const redis = redisState(deps.redis);
    const isReady = dbLatency !== undefined && redisLatency !== undefined && redis.ready;
    return { dbLatency, redisLatency, redis, isReady };
  };

  app.get('/health/live', (_req, res) => {
    res.json({ state: 'green' });
  });

  app.get('/health/ready', async (_req, res) => {
    const { dbLatency, redisLatency, isReady } = await check();
    res.status(isReady ? 200 : 503).json({
      state: isReady ? 'green' : 'red',
      db: { ready: dbLatency !== undefined },
      redis: { ready: redisLatency !== undefined },
    });
  });

  app.get('/health/detail', async (_req, res) => {
    const { dbLatency, redisLatency, redis, isReady } = await check();
    res.status(isReady ? 200 : 503).json({
      buildInfo: {
        version: PACKAGE_VERSION,
        changeset: deps.config.build.changeset,
        timestamp: deps.config.build.timestamp ?? deps.startedAt.toUTCString(),
      },
      startTime: deps.startedAt.toISOString(),
      upTime: Date.now() - deps.startedAt.getTime(),
      os: {
        hostname: hostname(),
        upTime: uptime(),
        freemem: freemem(),
        loadavg: loadavg(),
        totalmem: totalmem(),
      },
      memoryUsage: process.memoryUsage(),
      redis: {
        state: redis.state.toUpperCase(),
        latency: redisLatency ?? null,
        ready: redisLatency !== undefined && redis.ready,
      },
      db: { latency: dbLatency ?? null, ready: dbLatency !== undefined },
      isReady,
      state: isReady ? 'green' : 'red',
    });
  });
}
