import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express, { type Express } from 'express';
import type { DatabasePool } from 'slonik';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import type { RedisConnection } from '../lib/redis.js';
import type { QueueSet } from '../queues/index.js';
import { requireAdmin } from './admin-auth.js';
import { errorHandler, notFoundHandler } from './error-handler.js';
import { requestContext, requestMetrics } from './request-context.js';
import { healthRoutes } from './routes/health.js';
import { undeliveredRoutes } from './routes/undelivered.js';

export interface AppDeps {
  config: Config;
  log: Logger;
  db: DatabasePool;
  /** Producers on a fail-fast connection. */
  queues: QueueSet;
  /** The producers' connection, for health. */
  redis: RedisConnection;
  startedAt?: Date;
  evictionPolicy?: () => string | undefined;
}

export const BULL_BOARD_PATH = '/admin/queues';

/**
 * Builds the HTTP app without opening a port (tests drive it with supertest). Routes are added
 * here by resource; every error ends in the one error handler.
 */
export function buildApp(deps: AppDeps): Express {
  const { config, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  app.use(requestContext(log));
  app.use(requestMetrics);
  app.use(express.json({ limit: config.http.bodyLimit }));
  app.use(express.urlencoded({ extended: false, limit: config.http.bodyLimit }));

  app.use(
    healthRoutes({
      config,
      db: deps.db,
      redis: deps.redis,
      startedAt: deps.startedAt ?? new Date(),
      evictionPolicy: deps.evictionPolicy ?? (() => undefined),
    }),
  );

  const admin = requireAdmin(config.adminToken);
  app.use('/nexus/v3/undelivered', admin);
  app.use(
    undeliveredRoutes({
      db: deps.db,
      queues: deps.queues,
      log,
      sweepAfterMs: config.workers.sweepAfterMs,
    }),
  );

  const board = new ExpressAdapter();
  board.setBasePath(BULL_BOARD_PATH);
  createBullBoard({
    queues: deps.queues.all().map(queue => new BullMQAdapter(queue)),
    serverAdapter: board,
  });
  app.use(BULL_BOARD_PATH, admin, board.getRouter() as express.Router);

  app.use(notFoundHandler);
  app.use(errorHandler(log));
  return app;
}
