import { DelayedError } from 'bullmq';
import type { DatabasePool } from 'slonik';
import {
  appendOperationalEvent,
  disableTargetIfFailing,
  loadDeliveries,
  recordAttempts,
  type AttemptRecord,
  type DeliveryRow,
} from '../../db/webhooks.js';
import type { Config } from '../../lib/config.js';
import { classifyAttempt, nextDelayMs, type AttemptOutcome } from '../../lib/delivery-policy.js';
import { EgressBlockedError, EgressGuard } from '../../lib/egress.js';
import { coerceError } from '../../lib/errors.js';
import { GroupCommit } from '../../lib/group-commit.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import type { Logger } from '../../lib/logger.js';
import {
  webhookAttemptDuration,
  webhookDeliveriesTotal,
  webhookQueueAge,
  webhookTargetsDisabledTotal,
} from '../../lib/metrics.js';
import { PACKAGE_VERSION } from '../../lib/package-info.js';
import { SecretBox } from '../../lib/secrets.js';
import {
  INTERACTIONS_WEBHOOK_TYPES,
  eventsBody,
  interactionsBody,
  traceIdOf,
  webhookId,
  type WebhookEvent,
} from '../../lib/webhook-payload.js';
import { signatureHeaders } from '../../lib/webhook-signing.js';
import type { QueueSet } from '../../queues/index.js';
import type { WebhookPayload, webhooksQueue } from '../../queues/webhooks.js';
import { FinalFailure, StaleWorkError, type JobContext, type Processor } from '../run-processor.js';
import { WebhookDispatcher } from '../webhook-dispatcher.js';
import { signingSecrets, WebhookTargets, type WebhookTarget } from '../webhook-targets.js';

export interface WebhookDeps {
  db: DatabasePool;
  queues: QueueSet;
  log: Logger;
  bus: InvalidationBus;
  config: Config;
  /** Tests pass a guard with their own resolver; the default allows `config.egressAllow`. */
  guard?: EgressGuard | undefined;
}

/** How much of a receiver's answer is kept in the attempt log. */
const ERROR_TEXT_MAX = 500;

/**
 * The `webhooks` processor: one attempt of one delivery per run (design §6).
 * - Builds the body from the event (the same bytes on every attempt), signs it with the target's
 *   secrets (both during a rotation's grace), and POSTs it through the egress guard (SSRF checks
 *   at connect time, no redirects, the configured timeout).
 * - 2xx: delivered. 408/429/5xx/timeout/connection error: the next attempt is scheduled on the
 *   target's retry schedule (`moveToDelayed`, so receivers' failures never use up BullMQ's
 *   attempts, which only cover the hub's own errors). Another 4xx, a blocked address, or the end
 *   of the schedule: failed for good (an undelivered record and a `delivery.exhausted` event);
 *   410 also disables the target. A target failing every attempt for the configured window is
 *   disabled (`webhook.disabled`).
 * - Every attempt is recorded (status, duration, error); attempts of concurrent jobs share one
 *   transaction, which also completes the delivered ones' work rows.
 * Its companion, the {@link WebhookDispatcher}, turns new deliveries into jobs.
 */
export function createWebhookProcessor(deps: WebhookDeps): Processor<typeof webhooksQueue> {
  const { db, log, config } = deps;
  const guard = deps.guard ?? new EgressGuard(config.egressAllow);
  const targets = new WebhookTargets(
    db,
    new SecretBox(config.secretKey, config.previousSecretKeys),
    deps.bus,
    log,
  );
  const publicUrl = config.http.publicUrl ?? `http://localhost:${config.http.port}`;
  const loader = new GroupCommit<{ id: number; jobId: string }, DeliveryRow | undefined>(
    async items => {
      const rows = await loadDeliveries(db, items);
      return items.map(item => rows.get(item.id));
    },
    256,
    2,
  );
  const recorder = new GroupCommit<AttemptRecord, { pending: boolean; attempt: number }>(
    attempts => db.transaction(tx => recordAttempts(tx, attempts)),
    256,
    2,
  );
  const dispatcher = new WebhookDispatcher(
    { db, queues: deps.queues, log, sweepAfterMs: config.workers.sweepAfterMs },
    log,
    config.webhooks.dispatchIntervalMs,
  );

  const disable = async (target: WebhookTarget, reason: string, windowMs: number) => {
    const disabled = await db.transaction(tx =>
      disableTargetIfFailing(tx, { tenantId: target.tenant, name: target.name }, reason, windowMs),
    );
    if (!disabled) return;
    webhookTargetsDisabledTotal.inc({ reason: windowMs === 0 ? 'gone' : 'failing' });
    log.warn({ tenant: target.tenant, target: target.name, reason }, 'webhook target disabled');
    await deps.bus.publish({ kind: 'service', tenant: target.tenant, name: target.name });
  };

  const processor = async (payload: WebhookPayload, ctx: JobContext) => {
    const delivery = await loader.submit({ id: payload.deliveryId, jobId: ctx.job.id ?? '' });
    if (!delivery) {
      // The target was deleted (its deliveries with it): end the work, nothing is left to send.
      ctx.log.info({ deliveryId: payload.deliveryId }, 'the delivery no longer exists');
      await ctx.complete();
      return;
    }
    ctx.completedHere();
    // Work that is not pending was finished by another run (or failed for good): a stale job.
    if (delivery.work_state !== 'pending') throw new StaleWorkError();
    // A delivery that is not pending while its work is (the runner's claim passed) was replayed.
    const newRound = delivery.state !== 'pending';
    const position = newRound ? 0 : delivery.round_attempts;
    const target = await targets.get(delivery.tenant_id, delivery.target);
    const startedAt = new Date();
    webhookQueueAge.observe(
      { attempt: position === 0 ? 'first' : 'retry' },
      Math.max(0, (startedAt.getTime() - Date.parse(delivery.occurred_at)) / 1000),
    );

    let status: number | null = null;
    let error: string | null = null;
    let outcome: AttemptOutcome;
    let retryAfter: string | undefined;
    let blocked = false;
    if (!target?.enabled) {
      error = target
        ? `not sent: the target is disabled (${target.disabledReason ?? 'no reason'})`
        : 'not sent: the target no longer exists';
      outcome = { kind: 'failed', reason: error };
    } else {
      try {
        const response = await send(target, delivery, startedAt);
        status = response.status;
        retryAfter = headerValue(response.headers['retry-after']);
        outcome = classifyAttempt(status);
        if (outcome.kind !== 'delivered') error = response.body.slice(0, ERROR_TEXT_MAX) || null;
      } catch (thrown) {
        const failure = coerceError(thrown);
        error = failure.message.slice(0, ERROR_TEXT_MAX);
        blocked = failure instanceof EgressBlockedError;
        outcome = blocked
          ? { kind: 'failed', reason: `blocked by the egress guard: ${failure.message}` }
          : classifyAttempt(undefined);
      }
    }
    const durationMs = Date.now() - startedAt.getTime();

    const schedule = [0, ...(target?.retrySchedule ?? config.webhooks.retrySchedule)];
    const delayMs =
      outcome.kind === 'retry' ? nextDelayMs(position + 1, schedule, { retryAfter }) : undefined;
    const exhausted = outcome.kind === 'retry' && delayMs === undefined;
    const label = blocked ? 'blocked' : exhausted ? 'failed' : outcome.kind;
    webhookDeliveriesTotal.inc({ outcome: label });
    webhookAttemptDuration.observe({ outcome: label }, durationMs / 1000);

    const recorded = await recorder.submit({
      deliveryId: delivery.id,
      jobId: ctx.job.id ?? '',
      tenantId: delivery.tenant_id,
      target: delivery.target,
      startedAt,
      durationMs,
      status,
      error,
      outcome: exhausted ? 'failed' : outcome.kind,
      state:
        outcome.kind === 'delivered' ? 'delivered' : delayMs !== undefined ? 'pending' : 'failed',
      nextAttemptAt: delayMs !== undefined ? new Date(Date.now() + delayMs) : null,
      newRound,
    });

    if (outcome.kind === 'delivered') {
      if (!recorded.pending) throw new StaleWorkError();
      return;
    }
    if (target?.enabled) {
      if (outcome.kind === 'gone') await disable(target, outcome.reason, 0);
      else {
        await disable(
          target,
          `every attempt failed for ${Math.round(config.webhooks.disableAfterMs / 3_600_000)} h`,
          config.webhooks.disableAfterMs,
        );
      }
    }
    if (delayMs !== undefined) {
      ctx.log.info(
        { deliveryId: delivery.id, attempt: recorded.attempt, status, error, delayMs },
        'webhook attempt failed; retrying on the schedule',
      );
      await ctx.job.moveToDelayed(Date.now() + delayMs, ctx.token);
      throw new DelayedError();
    }
    const reason = exhausted
      ? `no 2xx after ${position + 1} attempts (last: ${status ?? error ?? 'no answer'})`
      : (outcome as { reason: string }).reason;
    if (delivery.interaction_id !== null || !delivery.type.startsWith('delivery.')) {
      // Operational events about failed operational deliveries would feed each other.
      await db.transaction(tx =>
        appendOperationalEvent(tx, delivery.tenant_id, 'delivery.exhausted', {
          target: delivery.target,
          deliveryId: delivery.id,
          eventId: delivery.event_id,
          eventType: delivery.type,
          attempts: recorded.attempt,
          reason,
        }),
      );
    }
    throw new FinalFailure(reason, recorded.attempt);
  };

  /** One POST: the exact signed bytes, the target's headers, no redirects, the timeout. */
  const send = (target: WebhookTarget, delivery: DeliveryRow, at: Date) => {
    const event: WebhookEvent = {
      id: delivery.event_id,
      tenantId: delivery.tenant_id,
      type: delivery.type,
      interactionId: delivery.interaction_id,
      seq: delivery.seq,
      occurredAt: delivery.occurred_at,
      data: delivery.payload,
      media: delivery.media,
      subtype: delivery.subtype,
    };
    const kind = INTERACTIONS_WEBHOOK_TYPES[delivery.type];
    const body =
      target.format === 'interactions' && kind
        ? interactionsBody(event, kind, publicUrl)
        : eventsBody(event);
    const id = webhookId(delivery.event_id, delivery.target);
    const timestamp = Math.floor(at.getTime() / 1000);
    const secrets = signingSecrets(target, at.getTime());
    const headers: Record<string, string> = {
      ...target.headers,
      'Content-Type': 'application/json',
      'User-Agent': `nexus-webhooks/${PACKAGE_VERSION}`,
      'X-B3-TraceId': traceIdOf(delivery.event_id),
      // The delivery's id and time go with every attempt, signed or not, so receivers can dedupe.
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
      ...(secrets.length > 0
        ? signatureHeaders({ id, timestamp, body, secrets, schemes: target.signatures })
        : {}),
    };
    return guard.request(target.url, {
      method: 'POST',
      headers,
      body,
      timeoutMs: config.webhooks.timeoutMs,
      maxBodyBytes: 4_096,
    });
  };

  return Object.assign(processor, {
    // The load checks the work row and the attempt record completes it (no separate claim).
    claimsItself: true,
    companion: {
      start: () => dispatcher.start(),
      stop: async () => {
        await dispatcher.stop();
        if (!deps.guard) guard.close();
      },
    },
  });
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
