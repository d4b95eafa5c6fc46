import { freemem, loadavg, totalmem, uptime } from 'node:os';
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { pingDb } from '../../db/pool.js';
import type { Config } from '../../lib/config.js';
import { PACKAGE_VERSION } from '../../lib/package-info.js';
import { redisState, type RedisConnection } from '../../lib/redis.js';
import type { Api } from '../openapi.js';

export interface HealthDeps {
  config: Config;
  db: DatabasePool;
  redis: RedisConnection;
  startedAt: Date;
  /** Redis's maxmemory-policy as read at start; anything but noeviction makes the state yellow. */
  evictionPolicy: () => string | undefined;
}

type State = 'green' | 'yellow' | 'red';

const stateView = z.enum(['green', 'yellow', 'red']);
const readyView = z.object({
  state: stateView,
  db: z.object({ ready: z.boolean() }),
  cache: z.object({ ready: z.boolean() }),
});
const detailView = z
  .object({
    buildInfo: z.object({ version: z.string(), changeset: z.string(), timestamp: z.string() }),
    startTime: z.string(),
    os: z.object({
      upTime: z.number(),
      freemem: z.number(),
      loadavg: z.array(z.number()),
      totalmem: z.number(),
    }),
    upTime: z.number(),
    memoryUsage: z.record(z.number()),
    cache: z.object({ ready: z.boolean(), state: z.string() }),
    db: z.object({ ready: z.boolean() }),
    state: stateView,
  })
  .openapi('HealthDetail');

/**
 * `/health/live` (the process answers), `/health/ready` (PostgreSQL and Redis answer; 503
 * otherwise) and `/health/detail` in the guide's shape. Detail's `state` is red when PostgreSQL
 * or Redis is unreachable, yellow when Redis may evict jobs (maxmemory-policy not noeviction),
 * green otherwise; it answers 503 when red.
 */
export function healthRoutes(api: Api, deps: HealthDeps): void {
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

  api.route({
    method: 'get',
    path: '/health/live',
    tag: 'Operations',
    summary: 'Liveness: the process answers',
    auth: 'public',
    responses: { 200: { description: 'Alive', schema: z.object({ state: z.literal('green') }) } },
    handle({ res }) {
      res.json({ state: 'green' });
    },
  });

  api.route({
    method: 'get',
    path: '/health/ready',
    tag: 'Operations',
    summary: 'Readiness: PostgreSQL and Redis answer',
    auth: 'public',
    responses: {
      200: { description: 'Ready', schema: readyView },
      503: { description: 'PostgreSQL or Redis is unreachable', schema: readyView },
    },
    async handle({ res }) {
      const { dbReady, cache, state } = await check();
      res
        .status(state === 'red' ? 503 : 200)
        .json({ state, db: { ready: dbReady }, cache: { ready: cache.ready } });
    },
  });

  api.route({
    method: 'get',
    path: '/health/detail',
    tag: 'Operations',
    summary: 'Health in the guide shape',
    description:
      '`state` is green, yellow (Redis may evict jobs) or red (PostgreSQL or Redis unreachable, answered with 503).',
    auth: 'public',
    responses: {
      200: { description: 'Green or yellow', schema: detailView },
      503: { description: 'Red', schema: detailView },
    },
    async handle({ res }) {
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
    },
  });
}
