import { freemem, loadavg, totalmem, uptime } from 'node:os';
import { Router } from 'express';
import type { DatabasePool } from 'slonik';
import { pingDb } from '../../db/pool.js';
import type { Config } from '../../lib/config.js';
import { PACKAGE_VERSION } from '../../lib/package-info.js';
import { redisState, type RedisConnection } from '../../lib/redis.js';

export interface HealthDeps {
  config: Config;
  db: DatabasePool;
  redis: RedisConnection;
  startedAt: Date;
  /** Redis's maxmemory-policy as read at start; anything but noeviction makes the state yellow. */
  evictionPolicy: () => string | undefined;
}

type State = 'green' | 'yellow' | 'red';

/**
 * `/health/live` (the process answers), `/health/ready` (PostgreSQL and Redis answer; 503
 * otherwise) and `/health/detail` in the guide's shape. Detail's `state` is red when PostgreSQL
 * or Redis is unreachable, yellow when Redis may evict jobs (maxmemory-policy not noeviction),
 * green otherwise; it answers 503 when red.
 */
export function healthRoutes(deps: HealthDeps): Router {
  const router = Router();

  const check = async () => {
    const [dbReady, cache] = [await pingDb(deps.db), redisState(deps.redis)];
    const policy = deps.evictionPolicy();
    const state: State =
      !dbReady || !cache.ready
        ? 'red'
        : policy !== undefined && policy !== 'noeviction'
          ? 'yellow'
          : 'green';
    return { dbReady, cache, state };
  };

  router.get('/health/live', (_req, res) => {
    res.json({ state: 'green' });
  });

  router.get('/health/ready', async (_req, res) => {
    const { dbReady, cache, state } = await check();
    res
      .status(state === 'red' ? 503 : 200)
      .json({ state, db: { ready: dbReady }, cache: { ready: cache.ready } });
  });

  router.get('/health/detail', async (_req, res) => {
    const { dbReady, cache, state } = await check();
    res.status(state === 'red' ? 503 : 200).json({
      buildInfo: {
        version: PACKAGE_VERSION,
        changeset: deps.config.build.changeset,
        timestamp: deps.config.build.timestamp ?? deps.startedAt.toUTCString(),
      },
      startTime: deps.startedAt.toISOString(),
      os: { upTime: uptime(), freemem: freemem(), loadavg: loadavg(), totalmem: totalmem() },
      upTime: Date.now() - deps.startedAt.getTime(),
      memoryUsage: process.memoryUsage(),
      cache,
      db: { ready: dbReady },
      state,
    });
  });

  return router;
}
