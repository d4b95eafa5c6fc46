import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from './logger.js';

/**
 * Every metric the process exposes, in one registry, with the names the guide documents
 * (`nexus_request_total`, `nexus_errors_total`, `nexus_redis_*`, `nexus_db_*`, and prom-client's
 * process / Node.js metrics under the `nexus_` prefix). One registry per process: the API and the
 * workers share it when they run in one process. One file on purpose, though long: the list of
 * every metric is what an operator reads next to the dashboards, and the names must stay unique.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'nexus_' });

// HTTP
export const requestTotal = new Counter({
  name: 'nexus_request_total',
  help: 'The total number of requests.',
  labelNames: ['method', 'route', 'code'] as const,
  registers: [registry],
});
export const errorsTotal = new Counter({
  name: 'nexus_errors_total',
  help: 'The total number of requests that resulted in an error (HTTP 5xx).',
  labelNames: ['method', 'route', 'code'] as const,
  registers: [registry],
});
export const requestDuration = new Histogram({
  name: 'nexus_request_duration_seconds',
  help: 'HTTP request duration.',
  labelNames: ['method', 'route'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [registry],
});

// Redis
export const redisErrorsTotal = new Counter({
  name: 'nexus_redis_errors_total',
  help: 'The total number of Redis connection errors.',
  registers: [registry],
});
export const redisDurationUntilReady = new Histogram({
  name: 'nexus_redis_duration_until_ready',
  help: 'Seconds from opening (or starting to reopen) a Redis connection until it is ready.',
  buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
  registers: [registry],
});

/** What the Redis gauges count; lib/redis.ts keeps it current. */
export interface RedisConnectionCensus {
  established(): number;
  reconnecting(): number;
  ready(): number;
}
let redisCensus: RedisConnectionCensus = {
  established: () => 0,
  reconnecting: () => 0,
  ready: () => 0,
};
export function setRedisCensus(census: RedisConnectionCensus): void {
  redisCensus = census;
}
new Gauge({
  name: 'nexus_redis_connections_established',
  help: 'The current number of established Redis connections.',
  registers: [registry],
  collect() {
    this.set(redisCensus.established());
  },
});
new Gauge({
  name: 'nexus_redis_connections_reconnecting',
  help: 'The current number of reconnecting Redis connections.',
  registers: [registry],
  collect() {
    this.set(redisCensus.reconnecting());
  },
});
new Gauge({
  name: 'nexus_redis_connections_ready',
  help: 'The current number of ready Redis connections.',
  registers: [registry],
  collect() {
    this.set(redisCensus.ready());
  },
});

// PostgreSQL
export const dbConnectTotal = new Counter({
  name: 'nexus_db_connect_total',
  help: 'The total number of all database connection requests.',
  labelNames: ['db'] as const,
  registers: [registry],
});
export const dbDisconnectTotal = new Counter({
  name: 'nexus_db_disconnect_total',
  help: 'The total number of all database disconnection requests.',
  labelNames: ['db'] as const,
  registers: [registry],
});
export const dbRequestTotal = new Counter({
  name: 'nexus_db_request_total',
  help: 'The total number of all database requests sent.',
  labelNames: ['db'] as const,
  registers: [registry],
});
export const dbSuccessTotal = new Counter({
  name: 'nexus_db_success_total',
  help: 'The total number of all database requests executed successfully.',
  labelNames: ['db', 'command'] as const,
  registers: [registry],
});
export const dbErrorsTotal = new Counter({
  name: 'nexus_db_errors_total',
  help: 'The total number of all database errors.',
  labelNames: ['db', 'code'] as const,
  registers: [registry],
});
export const dbRequestDuration = new Histogram({
  name: 'nexus_db_request_duration_milliseconds',
  help: 'The database request duration in milliseconds.',
  labelNames: ['db', 'method'] as const,
  buckets: [0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000],
  registers: [registry],
});

// Jobs
export const jobDuration = new Histogram({
  name: 'nexus_job_duration_seconds',
  help: 'Job processing duration, by outcome.',
  labelNames: ['queue', 'outcome'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});
export const jobsTotal = new Counter({
  name: 'nexus_jobs_total',
  help: "Jobs processed, by outcome: completed, stale (a duplicate run that changed nothing), retry, failed, deferred (PostgreSQL or Redis unreachable: put aside without using an attempt), foreign (no work row: another deployment's job, left for it).",
  labelNames: ['queue', 'outcome'] as const,
  registers: [registry],
});
export const jobsActive = new Gauge({
  name: 'nexus_jobs_active',
  help: 'Jobs being processed by this process.',
  labelNames: ['queue'] as const,
  registers: [registry],
});
export const undeliveredTotal = new Counter({
  name: 'nexus_undelivered_total',
  help: 'Jobs that exhausted their attempts or failed permanently and were recorded as undelivered.',
  labelNames: ['queue'] as const,
  registers: [registry],
});
export const enqueueDeferredTotal = new Counter({
  name: 'nexus_enqueue_deferred_total',
  help: 'Work committed to PostgreSQL whose job could not be added to Redis at once; the sweeper adds it.',
  labelNames: ['queue'] as const,
  registers: [registry],
});
export const sweeperReenqueuedTotal = new Counter({
  name: 'nexus_sweeper_reenqueued_total',
  help: 'Pending work the sweeper enqueued again, by reason: missing (Redis lost it), completed, replayed, stalled (stalled out while its work had attempts left).',
  labelNames: ['queue', 'reason'] as const,
  registers: [registry],
});
export const jobsStalledTotal = new Counter({
  name: 'nexus_jobs_stalled_total',
  help: "Jobs BullMQ's stall check found stalled (their worker lost the job's lock) and moved back to wait or failed; one worker per queue runs the check each interval.",
  labelNames: ['queue'] as const,
  registers: [registry],
});

export const workerReplacedTotal = new Counter({
  name: 'nexus_worker_replaced_total',
  help: 'Workers replaced by a new one because jobs waited while they, with a free slot, took none (their fetching wedged, e.g. after every node of a Redis Cluster restarted).',
  labelNames: ['queue'] as const,
  registers: [registry],
});

export const authRejectedTotal = new Counter({
  name: 'nexus_auth_rejected_total',
  help: 'Requests refused by authentication, authorization or rate limiting, by error code.',
  labelNames: ['code'] as const,
  registers: [registry],
});

export const socketConnections = new Gauge({
  name: 'nexus_socket_connections',
  help: 'Open socket.io connections on this process, by namespace (chat: customers, agent: agents).',
  labelNames: ['namespace'] as const,
  registers: [registry],
});
export const socketEventsDelivered = new Counter({
  name: 'nexus_socket_events_delivered_total',
  help: 'Interaction events delivered to sockets, by namespace; gap_filled counts those read from PostgreSQL to fill a gap or catch up.',
  labelNames: ['namespace', 'source'] as const,
  registers: [registry],
});
export const socketFills = new Counter({
  name: 'nexus_socket_fills_total',
  help: 'Socket feeds that read missed events from PostgreSQL, by trigger: connect, gap (a live event ahead), adapter_reconnect, head_notice (a publisher back after failing), head_check (the periodic check).',
  labelNames: ['trigger'] as const,
  registers: [registry],
});

/** One queue's job counts, as the queue-depth gauges read them at scrape time. */
export interface QueueDepth {
  queue: string;
  counts: Record<string, number>;
  /** Waiting, prioritized and due delayed jobs: what a free worker would take now. */
  backlog: number;
  oldestWaitingAgeSeconds: number;
}
const depthSources = new Set<() => Promise<QueueDepth[]>>();
/** Registers a source of queue depths; returns a function that removes it. */
export function addQueueDepthSource(source: () => Promise<QueueDepth[]>): () => void {
  depthSources.add(source);
  return () => depthSources.delete(source);
}
async function readDepths(): Promise<QueueDepth[]> {
  const all = await Promise.all([...depthSources].map(source => source().catch(() => [])));
  return all.flat();
}
let pendingDepths: Promise<QueueDepth[]> | undefined;
/** Both gauges read one snapshot per scrape. */
function depthsForScrape(): Promise<QueueDepth[]> {
  pendingDepths ??= readDepths().finally(() => setTimeout(() => (pendingDepths = undefined), 0));
  return pendingDepths;
}
new Gauge({
  name: 'nexus_queue_jobs',
  help: 'Jobs in each queue, by state (waiting, active, delayed, prioritized, completed, failed, ...).',
  labelNames: ['queue', 'state'] as const,
  registers: [registry],
  async collect() {
    this.reset();
    for (const { queue, counts } of await depthsForScrape()) {
      for (const [state, count] of Object.entries(counts)) this.set({ queue, state }, count);
    }
  },
});
new Gauge({
  name: 'nexus_queue_backlog',
  help: 'Jobs a free worker of each queue would take now: waiting, prioritized, and delayed jobs whose time has come (retries after their backoff, rate-limited sends). The autoscalers read it.',
  labelNames: ['queue'] as const,
  registers: [registry],
  async collect() {
    this.reset();
    for (const { queue, backlog } of await depthsForScrape()) this.set({ queue }, backlog);
  },
});
new Gauge({
  name: 'nexus_queue_oldest_waiting_seconds',
  help: 'Age of the oldest job waiting in each queue (0 when none waits).',
  labelNames: ['queue'] as const,
  registers: [registry],
  async collect() {
    this.reset();
    for (const { queue, oldestWaitingAgeSeconds } of await depthsForScrape()) {
      this.set({ queue }, oldestWaitingAgeSeconds);
    }
  },
});

export const emailSendsTotal = new Counter({
  name: 'nexus_email_sends_total',
  help: 'Outbound email send attempts, by provider, sending domain and outcome (sent, bounced: every recipient refused at once, opted-out: suppressed, not sent, retry, failed).',
  labelNames: ['provider', 'domain', 'outcome'] as const,
  registers: [registry],
});
export const nluCallsTotal = new Counter({
  name: 'nexus_ai_nlu_calls_total',
  help: 'AI connector: NLU provider calls, by provider and outcome (answered, unavailable: retried, failed).',
  labelNames: ['provider', 'outcome'] as const,
  registers: [registry],
});
export const nluLatencySeconds = new Histogram({
  name: 'nexus_ai_nlu_latency_seconds',
  help: 'AI connector: how long an NLU provider took to answer (or fail), by provider.',
  labelNames: ['provider'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});
export const suggestionsTotal = new Counter({
  name: 'nexus_ai_suggestions_total',
  help: 'AI connector: agent-assist suggestions, by provider and outcome (posted, no-match, refused by the hub, retry).',
  labelNames: ['provider', 'outcome'] as const,
  registers: [registry],
});
export const botTurnsTotal = new Counter({
  name: 'nexus_ai_bot_turns_total',
  help: "AI connector: bot turns, by provider and outcome (bot-reply, bot-fallback: not understood, skipped: no longer the bot's, handoff-<reason>).",
  labelNames: ['provider', 'outcome'] as const,
  registers: [registry],
});
export const aiHandoffsTotal = new Counter({
  name: 'nexus_ai_handoffs_total',
  help: "Bot conversations handed to agents, by reason (intent, low-confidence, provider, keyword, provider-unavailable: the bot asked; deadline: the queue's botHandoffAfterMs passed).",
  labelNames: ['reason'] as const,
  registers: [registry],
});
export const emailFeedbackTotal = new Counter({
  name: 'nexus_email_feedback_total',
  help: 'Email feedback applied, by sending domain and kind (delivered, bounced, hard_bounce, complained, unsubscribed); bounce and complaint rates per domain are these over nexus_email_sends_total.',
  labelNames: ['domain', 'kind'] as const,
  registers: [registry],
});
let suppressionSource: (() => Promise<number>) | undefined;
/** Where the suppression gauge reads its count (the API process sets it; PostgreSQL counts). */
export function setSuppressionSource(source: (() => Promise<number>) | undefined): void {
  suppressionSource = source;
}
new Gauge({
  name: 'nexus_email_suppressed_addresses',
  help: 'Addresses on the email suppression lists, across tenants (read from PostgreSQL at scrape time).',
  registers: [registry],
  async collect() {
    if (!suppressionSource) return;
    try {
      this.set(await suppressionSource());
    } catch {
      // PostgreSQL unreachable: keep the last value; nexus_db_errors_total says why.
    }
  },
});

/** Serves `GET /metrics` on its own port (the guide's 4004), apart from the API. */
export async function startMetricsServer(port: number, host: string, log: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url?.split('?')[0] === '/metrics') {
      registry
        .metrics()
        .then(body => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(body);
        })
        .catch((error: unknown) => {
          log.error({ err: error }, 'metrics collection failed');
          res.writeHead(500).end();
        });
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  log.info({ port: (server.address() as { port: number }).port }, 'metrics server listening');
  return server;
}

/** Every routing decision (queued, offered, accepted, rejected, expired, parked, ...). */
export const routingDecisionsTotal = new Counter({
  name: 'nexus_routing_decisions_total',
  help: 'Routing decisions, by kind: queued, offered, accepted, rejected, expired, parked, requeued, transferred, abandoned.',
  labelNames: ['decision'] as const,
  registers: [registry],
});

/** One routing queue's live figures, as the routing gauges read them at scrape time. */
export interface RoutingQueueStats {
  tenant: string;
  queue: string;
  waiting: number;
  oldestWaitSeconds: number;
  agentsReady: number;
  assigned: number;
}

let routingStatsSource: (() => Promise<RoutingQueueStats[]>) | undefined;

/** The API process registers where routing statistics come from (PostgreSQL). */
export function setRoutingStatsSource(
  source: (() => Promise<RoutingQueueStats[]>) | undefined,
): void {
  routingStatsSource = source;
}

async function routingStats(): Promise<RoutingQueueStats[]> {
  try {
    return (await routingStatsSource?.()) ?? [];
  } catch {
    return [];
  }
}

for (const [name, help, pick] of [
  [
    'nexus_routing_queue_waiting',
    'Interactions waiting in each routing queue.',
    (s: RoutingQueueStats) => s.waiting,
  ],
  [
    'nexus_routing_queue_oldest_wait_seconds',
    'How long the oldest interaction of each routing queue has waited (0 when none).',
    (s: RoutingQueueStats) => s.oldestWaitSeconds,
  ],
  [
    'nexus_routing_queue_agents_ready',
    'Ready agents serving each routing queue.',
    (s: RoutingQueueStats) => s.agentsReady,
  ],
  [
    'nexus_routing_queue_assigned',
    'Open interactions assigned from each routing queue.',
    (s: RoutingQueueStats) => s.assigned,
  ],
] as const) {
  new Gauge({
    name,
    help,
    labelNames: ['tenant', 'queue'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const stats of await routingStats()) {
        this.set({ tenant: stats.tenant, queue: stats.queue }, pick(stats));
      }
    },
  });
}

// Webhooks
export const webhookDeliveriesTotal = new Counter({
  name: 'nexus_webhook_deliveries_total',
  help: 'Webhook delivery attempts, by outcome: delivered, retry, failed (refused or exhausted), gone (410), blocked (egress guard).',
  labelNames: ['outcome'] as const,
  registers: [registry],
});
export const webhookAttemptDuration = new Histogram({
  name: 'nexus_webhook_attempt_duration_seconds',
  help: 'Duration of webhook attempts (request sent to response read), by outcome.',
  labelNames: ['outcome'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});
export const webhookQueueAge = new Histogram({
  name: 'nexus_webhook_delivery_age_seconds',
  help: 'Age of a webhook delivery (since its event) when an attempt starts: the queue wait for first attempts, the retry delays after.',
  labelNames: ['attempt'] as const,
  buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300, 3600, 36_000, 172_800],
  registers: [registry],
});
/** Deliveries waiting in PostgreSQL for their first dispatch, as a webhooks worker reads them. */
export interface UndispatchedDeliveries {
  count: number;
  oldestAgeSeconds: number;
}
let undispatchedSource: (() => Promise<UndispatchedDeliveries>) | undefined;
let pendingUndispatched: Promise<UndispatchedDeliveries | undefined> | undefined;
/** Sets (or, with undefined, clears) where the undispatched-deliveries gauges read from. */
export function setUndispatchedSource(
  source: (() => Promise<UndispatchedDeliveries>) | undefined,
): void {
  undispatchedSource = source;
}
/** Both gauges read one snapshot per scrape; nothing when no source is set or it fails. */
function undispatchedForScrape(): Promise<UndispatchedDeliveries | undefined> {
  pendingUndispatched ??= (undispatchedSource?.() ?? Promise.resolve(undefined))
    .catch(() => undefined)
    .finally(() => setTimeout(() => (pendingUndispatched = undefined), 0));
  return pendingUndispatched;
}
new Gauge({
  name: 'nexus_webhook_undispatched',
  help: "New webhook deliveries waiting in PostgreSQL to be dispatched as jobs (a target's backlog beyond its batch allowance waits there). Read by each webhooks worker at scrape time; aggregate with max().",
  registers: [registry],
  async collect() {
    this.reset();
    const snapshot = await undispatchedForScrape();
    if (snapshot) this.set(snapshot.count);
  },
});
new Gauge({
  name: 'nexus_webhook_undispatched_oldest_seconds',
  help: 'Age of the oldest new webhook delivery waiting in PostgreSQL to be dispatched (0 when none waits).',
  registers: [registry],
  async collect() {
    this.reset();
    const snapshot = await undispatchedForScrape();
    if (snapshot) this.set(snapshot.oldestAgeSeconds);
  },
});

export const webhookRetriesDeferredTotal = new Counter({
  name: 'nexus_webhook_retries_deferred_total',
  help: "Webhook retry jobs put back for later, unattempted, because their target's places were taken and a full round already waited for them.",
  registers: [registry],
});

export const webhookTargetsDisabledTotal = new Counter({
  name: 'nexus_webhook_targets_disabled_total',
  help: 'Webhook targets disabled, by reason: gone (410) or failing (every attempt failed for the window).',
  labelNames: ['reason'] as const,
  registers: [registry],
});
