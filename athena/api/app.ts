import express, { type Express, type Request, type Response } from 'express';
import type { DatabasePool } from 'slonik';
import { errorHandler, notFoundHandler } from '../../api/error-handler.js';
import { requestContext, requestMetrics } from '../../api/request-context.js';
import type { AthenaConfig } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { RedisConnection } from '../../lib/redis.js';
import type { EnqueueContext } from '../../queues/work.js';
import { SecretBox } from '../../lib/secrets.js';
import type { NexusClient } from '../nexus-client.js';
import { CallerAuth } from './caller-auth.js';
import { athenaHealthRoutes } from './health.js';
import { settingsRoutes } from './settings.js';
import { createIntake } from './intake.js';
import { agentAssistWebhook } from './webhook.js';

export interface AthenaAppDeps {
  config: AthenaConfig;
  log: Logger;
  db: DatabasePool;
  redis: RedisConnection;
  nexus: NexusClient;
  enqueue: EnqueueContext;
  startedAt: Date;
}

/** The most bytes of one webhook delivery (the hub's events are a few kB). */
const DELIVERY_MAX_BYTES = '256kb';

/** Express 5 passes a rejected promise to the error handler; this keeps the handler's type. */
const handle =
  (handler: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response) =>
    handler(req, res);

/**
 * The AI connector's HTTP API: the probes at the root, and its routes under each of
 * `ATHENA_API_PREFIX`'s prefixes (the guide's default answers under `/athena/v1` and
 * `/nexus/v3`). Errors answer in the hub's envelope, `{status: {code, message, field}}`.
 */
export function buildAthenaApp(deps: AthenaAppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.use(requestContext(deps.log));
  app.use(requestMetrics);
  athenaHealthRoutes(app, {
    config: deps.config.hub,
    db: deps.db,
    redis: deps.redis,
    startedAt: deps.startedAt,
  });
  const routes = express.Router();
  // The webhook's signature is over the exact bytes: read them raw, whatever the content type.
  routes.post(
    '/agent-assist-chat/messages',
    express.raw({ type: () => true, limit: DELIVERY_MAX_BYTES }),
    handle(
      agentAssistWebhook({ nexus: deps.nexus, intake: createIntake(deps.enqueue), log: deps.log }),
    ),
  );
  routes.use(
    settingsRoutes({
      db: deps.db,
      auth: new CallerAuth(deps.config.nexus),
      secrets: new SecretBox(deps.config.hub.secretKey, deps.config.hub.previousSecretKeys),
    }),
  );
  for (const prefix of deps.config.apiPrefixes) app.use(prefix, routes);
  app.use(notFoundHandler);
  app.use(errorHandler(deps.log));
  return app;
}
