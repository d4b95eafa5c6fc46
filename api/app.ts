import type { IncomingMessage, ServerResponse } from 'node:http';
import cors from 'cors';
import express, { type Express } from 'express';
import type { DatabasePool } from 'slonik';
import swaggerUi from 'swagger-ui-express';
import type { Config } from '../lib/config.js';
import type { InvalidationBus } from '../lib/invalidation.js';
import type { Logger } from '../lib/logger.js';
import type { RedisConnection } from '../lib/redis.js';
import { SecretBox } from '../lib/secrets.js';
import { EgressRules } from '../lib/egress.js';
import type { QueueSet } from '../queues/index.js';
import { enqueueContext } from '../queues/work.js';
import { requireAdmin } from './admin-auth.js';
import { mountPages } from './pages.js';
import { mountDashboard } from './dashboard.js';
import { Authenticator } from './auth/authenticator.js';
import { errorHandler, notFoundHandler } from './error-handler.js';
import { Api } from './openapi.js';
import { contextMiddleware, requestContextBinder, requestMetrics } from './request-context.js';
import { hotPath } from './hot-path.js';
import { RealtimePublisher } from '../lib/realtime-publisher.js';
import { TokenService } from './auth/tokens.js';
import { createChatServices, type ChatServices } from './chat/chat-services.js';
import { lockedChatSlots } from './chat/customer-chat.js';
import { agentInteractionRoutes } from './routes/agent-interactions.js';
import { agentEmailRoutes } from './routes/agent-email.js';
import { agentOutboundRoutes } from './routes/agent-outbound.js';
import { aiRoutes } from './routes/ai.js';
import { aiBotRoutes } from './routes/ai-bot.js';
import { agentRoutes } from './routes/agents.js';
import { agentAuthRoutes } from './routes/agent-auth.js';
import { apiKeyRoutes } from './routes/apikeys.js';
import { CHAT_PREFIXES, chatRoutes } from './routes/chat.js';
import { routingRoutes } from './routes/routing.js';
import { channelRoutes } from './routes/channels.js';
import { healthRoutes } from './routes/health.js';
import { serviceRoutes } from './routes/services.js';
import { tenantRoutes } from './routes/tenants.js';
import { undeliveredRoutes } from './routes/undelivered.js';
import { webhookRoutes } from './routes/webhooks.js';
import { smsRoutes } from './routes/sms/index.js';
import { EMAIL_CAMPAIGNS_PATH } from './routes/email/campaigns.js';
import { emailRoutes } from './routes/email/index.js';
import { EMAIL_BATCH_MAX_BYTES, INBOUND_EMAILS_PATH } from './routes/email/inbound.js';
import { SPARKPOST_BATCH_MAX_BYTES, SPARKPOST_EVENTS_PATH } from './routes/email/feedback.js';
import { MEDIA_MAX_BYTES } from './routes/sms/fields.js';

/**
 * The HTTP app: body parsing, request context and metrics, every route family mounted in one
 * place with the services they share (chat, secrets, tokens, the enqueue context), the OpenAPI
 * document and reference, the queue dashboard, and the one error handler.
 */

export interface AppDeps {
  config: Config;
  log: Logger;
  db: DatabasePool;
  /** Producers on a fail-fast connection. */
  queues: QueueSet;
  /** The producers' connection, for health and rate limits. */
  redis: RedisConnection;
  /**
   * Cross-replica cache invalidation (API keys, tenants, services, channels, agents); the chat
   * services keep the disabled tenants with it.
   */
  bus: InvalidationBus;
  startedAt?: Date;
  evictionPolicy?: () => string | undefined;
  /** `false` leaves the hot routes to Express too (tests compare both answers). */
  hotPath?: boolean;
}

type ExpressHandle = (req: IncomingMessage, res: ServerResponse, callback?: unknown) => void;

export const BULL_BOARD_PATH = '/admin/queues';
export const OPENAPI_PATH = '/nexus/v3/openapi.json';
export const API_REFERENCE_PATH = '/nexus/v3/docs';

/** The app, the route declarations it was built from, and what the sockets share with it. */
export interface BuiltApp extends Express {
  readonly api: Api;
  readonly chat: ChatServices;
  readonly auth: Authenticator;
}

/**
 * Builds the HTTP app without opening a port (tests drive it with supertest). Routes are
 * declared through {@link Api}, which mounts and documents them; every error ends in the one
 * error handler.
 */
export function buildApp(deps: AppDeps): BuiltApp {
  const { config, log, db, bus } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.set('trust proxy', config.trustProxy);

  const context = requestContextBinder(log);
  app.use(contextMiddleware(context));
  app.use(requestMetrics);
  // The chat widget runs on the tenants' own sites: its calls come from any origin, with the chat
  // key or the client token in headers and never a cookie, so any origin may make them.
  app.use(
    [...CHAT_PREFIXES],
    cors({
      origin: '*',
      methods: ['GET', 'POST'],
      allowedHeaders: ['Content-Type', 'Accept', 'x-api-key', 'x-nexus-client-key'],
      maxAge: 600,
    }),
  );
  // SparkPost's event batches can hold a thousand events and more (api/routes/email/feedback.ts).
  app.use(SPARKPOST_EVENTS_PATH, express.json({ limit: SPARKPOST_BATCH_MAX_BYTES }));
  // A campaign's 1,000 records, and a gateway's inbound mails with their attachments, are larger
  // than other requests (api/routes/email/campaigns.ts, inbound.ts).
  app.use(EMAIL_CAMPAIGNS_PATH, express.json({ limit: EMAIL_BATCH_MAX_BYTES }));
  app.use(
    INBOUND_EMAILS_PATH,
    express.json({
      limit: EMAIL_BATCH_MAX_BYTES,
      verify: (req, _res, buf) => {
        (req as { rawBody?: Buffer }).rawBody = buf;
      },
    }),
  );
  // The raw bytes are kept for routes that verify a signature over the body (X-Hub-Signature).
  const parsers = [
    express.json({
      limit: config.http.bodyLimit,
      verify: (req, _res, buf) => {
        (req as { rawBody?: Buffer }).rawBody = buf;
      },
    }),
    express.urlencoded({ extended: false, limit: config.http.bodyLimit }),
  ];
  app.use(...parsers);
  // Media uploads arrive as multipart bodies signed over their raw bytes
  // (api/routes/sms/third-party.ts).
  app.use(
    '/nexus/v3/channels/:channelId/media',
    express.raw({
      type: 'multipart/form-data',
      limit: MEDIA_MAX_BYTES + 64 * 1024,
      verify: (req, _res, buf) => {
        (req as { rawBody?: Buffer }).rawBody = buf;
      },
    }),
  );

  const secrets = new SecretBox(config.secretKey, config.previousSecretKeys);
  const tokens = new TokenService(config.secretKey, config.agentTokenTtlSeconds);
  const auth = new Authenticator({ config, db, bus, redis: deps.redis, log, tokens });
  const api = new Api(app, auth);
  const enqueue = enqueueContext({ db, queues: deps.queues, log }, config);
  const chat = createChatServices({
    db,
    queues: deps.queues,
    log,
    enqueue,
    tokens,
    bus,
    publisher: new RealtimePublisher(deps.redis, config, log),
    sessionLimit: config.chatSessionLimit,
    smsMaxSegments: config.sms.maxSegments,
    aloneSlots: lockedChatSlots(config.db.poolSize),
  });

  healthRoutes(api, {
    config,
    db,
    redis: deps.redis,
    startedAt: deps.startedAt ?? new Date(),
    evictionPolicy: deps.evictionPolicy ?? (() => undefined),
  });
  tenantRoutes({ api, db, secrets, bus });
  apiKeyRoutes({ api, db, bus });
  serviceRoutes({
    api,
    db,
    secrets,
    bus,
    log,
    webhookSecretGraceMs: config.webhooks.secretGraceMs,
    egress: new EgressRules(config.egressAllow),
  });
  channelRoutes({ api, db, bus });
  agentRoutes({ api, db, tokens, bus });
  agentAuthRoutes({ api, db, tokens, auth, redis: deps.redis, prefix: config.queues.prefix, log });
  const hotRoutes = chatRoutes({ api, chat, publicUrl: config.http.publicUrl });
  agentInteractionRoutes({ api, db, chat });
  agentOutboundRoutes({ api, db, chat });
  agentEmailRoutes({ api, db, chat });
  routingRoutes({ api, db, chat });
  undeliveredRoutes(api, { db, enqueue });
  smsRoutes(api, {
    db,
    log,
    secretKey: config.secretKey,
    secrets,
    maxSegments: config.sms.maxSegments,
    enqueue,
  });
  emailRoutes(api, {
    db,
    enqueue,
    log,
    secrets,
    maxBytes: config.email.maxBytes,
    attachmentMaxBytes: config.email.attachmentMaxBytes,
    secretKeys: [config.secretKey, ...config.previousSecretKeys],
  });
  webhookRoutes(api, { db, bus, enqueue });
  aiRoutes(api, { db, secrets, chat });
  aiBotRoutes(api, { db, chat, enqueue, smsMaxSegments: config.sms.maxSegments });

  let document: ReturnType<Api['openapi']> | undefined;
  api.route({
    method: 'get',
    path: OPENAPI_PATH,
    tag: 'Operations',
    summary: 'This OpenAPI 3.1 document',
    description: `A readable reference is served at ${API_REFERENCE_PATH}.`,
    auth: 'public',
    responses: { 200: { description: 'The document' } },
    handle({ res }) {
      document ??= api.openapi();
      res.json(document);
    },
  });
  app.use(
    API_REFERENCE_PATH,
    swaggerUi.serve,
    swaggerUi.setup(undefined, {
      customSiteTitle: 'Nexus API reference',
      swaggerOptions: { url: OPENAPI_PATH },
    }),
  );

  mountDashboard(app, BULL_BOARD_PATH, deps.queues.all(), requireAdmin(config.adminToken));
  mountPages(app, { api, allowedOrigins: config.uxAllowedOrigins, log });

  app.use(notFoundHandler);
  app.use(errorHandler(log));

  // The message sends are answered before Express's router (api/hot-path.ts). Express's app
  // function hands every request to `app.handle`, whether the app listens itself, is given to
  // http.createServer or to supertest: wrapping it puts the hot path in front in every case.
  if (deps.hotPath !== false) {
    const hot = hotPath({ routes: hotRoutes, context, parsers, log });
    const express = app as unknown as { handle: ExpressHandle };
    const handle = express.handle.bind(app);
    express.handle = (req, res, callback) => {
      if (!hot(req, res)) handle(req, res, callback);
    };
  }
  return Object.assign(app, { api, chat, auth });
}
