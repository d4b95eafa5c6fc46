import type { CommonQueryMethods, DatabasePool } from 'slonik';
import { z } from 'zod';
import { markJobsReplayed } from '../../db/queries/undelivered.js';
import type { attemptView, targetView } from '../../db/webhook-log.js';
import {
  enableTarget,
  fanOutMissed,
  findDelivery,
  findTargetState,
  listAttempts,
  listDeliveries,
  listTargets,
  lockFailedDeliveries,
  reopenDeliveries,
  type DeliveryView,
} from '../../db/webhook-log.js';
import { AppError } from '../../lib/errors.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import { deliveryJobIds } from '../../queues/webhooks.js';
import { reopenFailedWork, type WorkRow, type WorkSettings } from '../../db/work.js';
import { redispatchWork, type EnqueueContext } from '../../queues/work.js';
import { assertTenant, type Principal } from '../auth/principal.js';
import { findTenant } from '../../db/queries/tenants.js';
import { reply } from '../error-handler.js';
import { envelopeOf, type Api } from '../openapi.js';
import { rowNumber } from '../validate.js';
import { webhookId } from '../../domain/webhook-payload.js';
import { tenantId } from '../schemas.js';

/**
 * The webhook delivery log over the API (`/nexus/v3/webhooks/{ccid}/…`): a tenant's targets and
 * their health, deliveries with their attempts, replay and re-enabling. Targets themselves are
 * provisioned as services (services.ts).
 */

const targetName = z
  .string()
  .regex(/^WebhookTransportTarget-[A-Za-z0-9_-]{1,64}$/, 'must be a WebhookTransportTarget-<name>');
const instant = z
  .string()
  .datetime({ offset: true, message: 'must be an ISO-8601 date-time' })
  .transform(value => new Date(value));

const tenantParams = z.object({ ccid: tenantId });
const targetParams = z.object({ ccid: tenantId, name: targetName });
const deliveryParams = z.object({
  ccid: tenantId,
  id: rowNumber(1),
});

const targetOut = z
  .object({
    name: z.string(),
    eventTypes: z.array(z.string()).nullable().describe('null: every event type'),
    enabled: z.boolean(),
    disabledAt: z.string().nullable(),
    disabledReason: z.string().nullable(),
    failingSince: z.string().nullable().describe('First failed attempt since the last success'),
    lastSuccessAt: z.string().nullable(),
    previousSecretUntil: z
      .string()
      .nullable()
      .describe('While set, deliveries are also signed with the secret before the last rotation'),
    pending: z.number(),
    failed: z.number(),
  })
  .openapi('WebhookTarget');

const deliveryOut = z
  .object({
    id: z.number(),
    webhookId: z.string().describe('The `webhook-id` header of every attempt'),
    target: z.string(),
    eventId: z.string(),
    eventType: z.string(),
    interactionId: z.string().nullable(),
    state: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.number(),
    lastStatus: z.number().nullable(),
    lastError: z.string().nullable(),
    nextAttemptAt: z.string().nullable(),
    created: z.string(),
    finished: z.string().nullable(),
  })
  .openapi('WebhookDelivery');

const attemptOut = z
  .object({
    attempt: z.number(),
    startedAt: z.string(),
    durationMs: z.number(),
    statusCode: z.number().nullable().describe('null: no HTTP answer (timeout, connection error)'),
    outcome: z.enum(['delivered', 'retry', 'failed', 'gone']),
    error: z.string().nullable().describe("The receiver's answer (truncated) or the error"),
  })
  .openapi('WebhookAttempt');

const listQuery = z
  .object({
    target: targetName.optional(),
    state: z.enum(['pending', 'delivered', 'failed']).optional(),
    since: instant.optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    before: rowNumber(1).optional(),
  })
  .strict();

const replayBody = z
  .object({
    since: instant,
    limit: z.number().int().min(1).max(10_000).default(1_000),
  })
  .strict();

const presentTarget = (row: z.infer<typeof targetView>): z.infer<typeof targetOut> => ({
  name: row.name,
  eventTypes: row.event_types,
  enabled: row.enabled,
  disabledAt: row.disabled_at,
  disabledReason: row.disabled_reason,
  failingSince: row.failing_since,
  lastSuccessAt: row.last_success_at,
  previousSecretUntil: row.previous_until,
  pending: row.pending,
  failed: row.failed,
});

const presentDelivery = (row: DeliveryView): z.infer<typeof deliveryOut> => ({
  id: row.id,
  webhookId: webhookId(row.event_id, row.target),
  target: row.target,
  eventId: row.event_id,
  eventType: row.event_type,
  interactionId: row.interaction_id,
  state: row.state,
  attempts: row.attempts,
  lastStatus: row.last_status,
  lastError: row.last_error,
  nextAttemptAt: row.next_attempt_at,
  created: row.created_at,
  finished: row.finished_at,
});

const presentAttempt = (row: z.infer<typeof attemptView>): z.infer<typeof attemptOut> => ({
  attempt: row.attempt,
  startedAt: row.started_at,
  durationMs: row.duration_ms,
  statusCode: row.status_code,
  outcome: row.outcome as z.infer<typeof attemptOut>['outcome'],
  error: row.error,
});

/** Reopens a failed delivery's work, under whichever of its job ids it was recorded. */
async function reopenDeliveryWork(
  tx: CommonQueryMethods,
  tenant: string,
  delivery: { id: number; event_id: string; target: string },
  settings: WorkSettings,
): Promise<WorkRow | null> {
  const ids = deliveryJobIds({
    tenantId: tenant,
    eventId: delivery.event_id,
    targetId: delivery.target,
    deliveryId: delivery.id,
  });
  for (const jobId of ids) {
    const work = await reopenFailedWork(tx, 'webhooks', jobId, settings);
    if (work) return work;
  }
  return null;
}

/**
 * The delivery log and recovery of a tenant's webhook targets (docs/webhooks.md): targets and
 * their health, deliveries with every attempt, replay of one delivery or of everything a target
 * missed since T, and re-enabling a disabled target.
 */
export function webhookRoutes(
  api: Api,
  deps: { db: DatabasePool; bus: InvalidationBus; enqueue: EnqueueContext },
): void {
  const { db } = deps;

  /** The caller may act on the tenant, and it exists. */
  const tenantFor = async (principal: Principal, ccid: string) => {
    assertTenant(principal, ccid);
    if (!(await findTenant(db, ccid))) {
      throw new AppError('NEXUS_ERR_NOT_FOUND', `tenant ${ccid} not found`);
    }
  };

  const enabledTarget = async (tenant: string, name: string) => {
    const state = await findTargetState(db, tenant, name);
    if (!state) throw new AppError('NEXUS_ERR_NOT_FOUND', `webhook target ${name} not found`);
    if (!state.enabled) throw new AppError('NEXUS_ERR_WEBHOOK_TARGET_DISABLED');
  };

  api.route({
    method: 'get',
    path: '/nexus/v3/webhooks/:ccid/targets',
    tag: 'Webhooks',
    summary: "List a tenant's webhook targets and their health",
    auth: 'nexus:provisioning:*',
    params: tenantParams,
    responses: {
      200: {
        description: 'Targets',
        schema: envelopeOf(z.object({ items: z.array(targetOut) })),
      },
    },
    async handle({ params, principal, res }) {
      await tenantFor(principal, params.ccid);
      const rows = await listTargets(db, params.ccid);
      reply(res, 200, { items: rows.map(presentTarget) });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/webhooks/:ccid/targets/:name/enable',
    tag: 'Webhooks',
    summary: 'Enable a disabled webhook target',
    description:
      'New events reach it again; events it missed while disabled can be sent with the replay below.',
    auth: 'nexus:provisioning:*',
    params: targetParams,
    responses: { 200: { description: 'Enabled', schema: envelopeOf(targetOut) } },
    async handle({ params, principal, res }) {
      await tenantFor(principal, params.ccid);
      if (!(await enableTarget(db, params.ccid, params.name))) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `webhook target ${params.name} not found`);
      }
      await deps.bus.publish({ kind: 'service', tenant: params.ccid, name: params.name });
      const row = (await listTargets(db, params.ccid)).find(target => target.name === params.name);
      reply(res, 200, presentTarget(row as z.infer<typeof targetView>));
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/webhooks/:ccid/targets/:name/replay',
    tag: 'Webhooks',
    summary: 'Replay what a webhook target did not get since T',
    description:
      'Replays its failed deliveries created since `since` (oldest first, up to `limit`; `more` tells whether some are left) and sends the events since `since` it never got (it was disabled or did not exist yet). Each replayed delivery keeps its `webhook-id`.',
    auth: 'nexus:provisioning:*',
    params: targetParams,
    body: replayBody,
    responses: {
      202: {
        description: 'Replayed',
        schema: envelopeOf(
          z.object({ replayed: z.number(), missed: z.number(), more: z.boolean() }),
        ),
      },
    },
    async handle({ params, body, principal, res }) {
      await tenantFor(principal, params.ccid);
      await enabledTarget(params.ccid, params.name);
      const { reopened, missed, more } = await db.transaction(async tx => {
        const failed = await lockFailedDeliveries(
          tx,
          params.ccid,
          params.name,
          body.since,
          body.limit + 1,
        );
        const batch = failed.slice(0, body.limit);
        const works: WorkRow[] = [];
        for (const delivery of batch) {
          const work = await reopenDeliveryWork(
            tx,
            params.ccid,
            { ...delivery, target: params.name },
            deps.enqueue,
          );
          if (work) works.push(work);
        }
        await reopenDeliveries(
          tx,
          batch.map(delivery => delivery.id),
        );
        await markJobsReplayed(
          tx,
          'webhooks',
          works.map(work => work.job_id),
        );
        const created = await fanOutMissed(tx, params.ccid, params.name, body.since);
        return { reopened: works, missed: created, more: failed.length > body.limit };
      });
      await redispatchWork(deps.enqueue, reopened);
      reply(res, 202, { replayed: reopened.length, missed, more });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/webhooks/:ccid/deliveries',
    tag: 'Webhooks',
    summary: 'List webhook deliveries, newest first',
    description:
      'Filters: `target`, `state`, `since` (created at or after). Page with `before` (the last id of the previous page).',
    auth: 'nexus:provisioning:*',
    params: tenantParams,
    query: listQuery,
    responses: {
      200: {
        description: 'Deliveries',
        schema: envelopeOf(z.object({ items: z.array(deliveryOut), next: z.number().nullable() })),
      },
    },
    async handle({ params, query, principal, res }) {
      await tenantFor(principal, params.ccid);
      const rows = await listDeliveries(db, params.ccid, query);
      const last = rows.at(-1);
      reply(res, 200, {
        items: rows.map(presentDelivery),
        next: rows.length === query.limit && last ? last.id : null,
      });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/webhooks/:ccid/deliveries/:id',
    tag: 'Webhooks',
    summary: 'Read a webhook delivery and its attempts',
    auth: 'nexus:provisioning:*',
    params: deliveryParams,
    responses: {
      200: {
        description: 'The delivery',
        schema: envelopeOf(deliveryOut.extend({ attemptLog: z.array(attemptOut) })),
      },
    },
    async handle({ params, principal, res }) {
      await tenantFor(principal, params.ccid);
      const row = await findDelivery(db, params.ccid, params.id);
      if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `delivery ${params.id} not found`);
      const attempts = await listAttempts(db, row.id);
      reply(res, 200, { ...presentDelivery(row), attemptLog: attempts.map(presentAttempt) });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/webhooks/:ccid/deliveries/:id/replay',
    tag: 'Webhooks',
    summary: 'Replay one failed webhook delivery',
    description:
      'Starts a new round of the retry schedule, with the same `webhook-id`. Only failed deliveries replay (409 `NEXUS_ERR_UNDELIVERED_NOT_REPLAYABLE` otherwise).',
    auth: 'nexus:provisioning:*',
    params: deliveryParams,
    responses: { 202: { description: 'Replayed', schema: envelopeOf(deliveryOut) } },
    async handle({ params, principal, res }) {
      await tenantFor(principal, params.ccid);
      const row = await findDelivery(db, params.ccid, params.id);
      if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `delivery ${params.id} not found`);
      await enabledTarget(params.ccid, row.target);
      const work = await db.transaction(async tx => {
        const reopened =
          row.state === 'failed'
            ? await reopenDeliveryWork(tx, params.ccid, row, deps.enqueue)
            : null;
        if (!reopened) throw new AppError('NEXUS_ERR_UNDELIVERED_NOT_REPLAYABLE');
        await reopenDeliveries(tx, [row.id]);
        await markJobsReplayed(tx, 'webhooks', [reopened.job_id]);
        return reopened;
      });
      await redispatchWork(deps.enqueue, [work]);
      const replayed = await findDelivery(db, params.ccid, params.id);
      reply(res, 202, presentDelivery(replayed as DeliveryView));
    },
  });
}
