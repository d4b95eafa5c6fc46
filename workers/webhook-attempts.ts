import type { DatabasePool } from 'slonik';
import {
  appendOperationalEvent,
  disableTargetIfFailing,
  recordAttempts,
  type AttemptRecord,
  type DeliveryRow,
} from '../db/webhook-dispatch.js';
import type { Config } from '../lib/config.js';
import { classifyAttempt, nextDelayMs, type AttemptOutcome } from '../domain/delivery-policy.js';
import { EgressBlockedError, EgressGuard } from '../lib/egress.js';
import { coerceError, GENERIC_FAILURE_CODE, type FailureCode } from '../lib/errors.js';
import { FairLimit } from './fair-limit.js';
import { GroupCommit } from '../lib/group-commit.js';
import type { InvalidationBus } from '../lib/invalidation.js';
import type { Logger } from '../lib/logger.js';
import {
  webhookAttemptDuration,
  webhookDeliveriesTotal,
  webhookQueueAge,
  webhookTargetsDisabledTotal,
} from '../lib/metrics.js';
import { PACKAGE_VERSION } from '../lib/package-info.js';
import { SecretBox } from '../lib/secrets.js';
import {
  INTERACTIONS_WEBHOOK_TYPES,
  eventsBody,
  interactionsBody,
  traceIdOf,
  webhookId,
  type WebhookEvent,
} from '../domain/webhook-payload.js';
import { signatureHeaders } from '../domain/webhook-signing.js';
import { webhooksQueue, type SingleDelivery } from '../queues/webhooks.js';
import { recordWorkBatch, type EnqueueContext, type WorkRecord } from '../queues/work.js';
import { signingSecrets, WebhookTargets, type WebhookTarget } from './webhook-targets.js';

/**
 * One attempt of a webhook delivery and what follows it, for the `webhooks` processor
 * (`processors/webhooks.ts`, which decides which deliveries to attempt and how their jobs go on):
 * - the POST: the body built from the event (the same bytes on every attempt), signed with the
 *   target's secrets, sent through the egress guard;
 * - its outcome on the target's retry schedule, its metrics, and the reason of a delivery that
 *   failed for good;
 * - its record: attempts of concurrent jobs share one statement (or one transaction with the work
 *   rows of deliveries that go on as jobs of their own);
 * - the places it holds: at most `NEXUS_WEBHOOK_CONCURRENCY` attempts in flight per process and
 *   `NEXUS_WEBHOOK_TARGET_CONCURRENCY` per target, until the attempt is recorded;
 * - after a failure: disabling a failing or gone target, the `delivery.exhausted` event.
 */

export interface WebhookAttemptDeps {
  db: DatabasePool;
  log: Logger;
  bus: InvalidationBus;
  config: Config;
  enqueue: EnqueueContext;
  /** Tests pass a guard with their own resolver; the default allows `config.egressAllow`. */
  guard?: EgressGuard | undefined;
}

/** An attempt to record; a batch's attempt that was not delivered names the job it goes on as. */
export type Recorded = AttemptRecord & { continued?: SingleDelivery | undefined };
export interface RecordedResult {
  pending: boolean;
  attempt: number;
  /** The work row of the job the attempt's delivery continues as. */
  work?: WorkRecord;
}

/** One attempt's result, before it is recorded. */
export interface Attempt {
  target: WebhookTarget | undefined;
  record: AttemptRecord;
  /** When the next attempt is due (a retry on the schedule). */
  delayMs: number | undefined;
  /** Why the delivery failed for good (a permanent failure or the end of the schedule). */
  reason: string | undefined;
  /** The same, as a catalogue code (docs/errors.md, "Failed work"). */
  code: FailureCode | undefined;
}

/** Why a delivery failed for good: a catalogue code and its detail. */
export interface DeliveryFailure {
  code: FailureCode;
  reason: string;
}

/** How much of a receiver's answer is kept in the attempt log. */
const ERROR_TEXT_MAX = 500;

/** The attempts of one `webhooks` processor (one per worker process). */
export function createWebhookAttempts(deps: WebhookAttemptDeps) {
  const { db, log, config, enqueue } = deps;
  const guard =
    deps.guard ??
    new EgressGuard(config.egressAllow, undefined, { idleSockets: config.webhooks.concurrency });
  const targets = new WebhookTargets(
    db,
    new SecretBox(config.secretKey, config.previousSecretKeys),
    deps.bus,
    log,
  );
  const publicUrl = config.http.publicUrl ?? `http://localhost:${config.http.port}`;
  // Attempts of concurrent jobs are recorded together: one statement, or, when some of them go on
  // as jobs of their own, one transaction that also records those jobs' work rows (so what follows
  // a batch's attempt that was not delivered, a retry job or a final failure, is durable).
  const recorder = new GroupCommit<Recorded, RecordedResult>(
    attempts => {
      const continued = attempts.flatMap(a => (a.continued ? [a.continued] : []));
      if (continued.length === 0) return recordAttempts(db, attempts);
      return db.transaction(async tx => {
        const results: RecordedResult[] = await recordAttempts(tx, attempts);
        const works = await recordWorkBatch(tx, webhooksQueue, continued, enqueue);
        const byDelivery = new Map(
          works.map(work => [(work.payload as SingleDelivery).deliveryId, work]),
        );
        return results.map((result, index) => {
          const next = attempts[index]?.continued;
          const work = next ? byDelivery.get(next.deliveryId) : undefined;
          return work ? { ...result, work } : result;
        });
      });
    },
    256,
    2,
  );
  // Attempts in flight in this process, whichever jobs they belong to, shared fairly by targets.
  const inFlight = new FairLimit(config.webhooks.concurrency, config.webhooks.targetConcurrency);
  // How long a target's recent attempts held their places (moving average), by target; the
  // targets first seen longest ago are forgotten beyond 10,000.
  const placeHeldMs = new Map<string, number>();

  const disable = async (target: WebhookTarget, reason: string, windowMs: number) => {
    const disabled = await db.transaction(tx =>
      disableTargetIfFailing(tx, { tenantId: target.tenant, name: target.name }, reason, windowMs),
    );
    if (!disabled) return;
    webhookTargetsDisabledTotal.inc({ reason: windowMs === 0 ? 'gone' : 'failing' });
    log.warn({ tenant: target.tenant, target: target.name, reason }, 'webhook target disabled');
    await deps.bus.publish({ kind: 'service', tenant: target.tenant, name: target.name });
  };

  /**
   * One attempt of a delivery at `position` in its round, recorded (`toRecord` says how). It
   * holds one of the process's `NEXUS_WEBHOOK_CONCURRENCY` places until the attempt is recorded,
   * so attempts sent but not yet recorded (what a crash would send again) stay within that bound.
   */
  const attempt = (
    delivery: DeliveryRow,
    position: number,
    toRecord: (result: Attempt) => Recorded,
  ): Promise<{ result: Attempt; recorded: RecordedResult }> => {
    const key = targetKey(delivery.tenant_id, delivery.target);
    return inFlight.run(key, async () => {
      const startedAt = performance.now();
      try {
        const result = await attemptNow(delivery, position);
        return { result, recorded: await recorder.submit(toRecord(result)) };
      } finally {
        const heldMs = performance.now() - startedAt;
        placeHeldMs.set(key, 0.8 * (placeHeldMs.get(key) ?? heldMs) + 0.2 * heldMs);
        const firstSeen = placeHeldMs.keys().next();
        if (placeHeldMs.size > 10_000 && !firstSeen.done) placeHeldMs.delete(firstSeen.value);
      }
    });
  };

  /** The POST, its outcome, its metrics. */
  const attemptNow = async (delivery: DeliveryRow, position: number): Promise<Attempt> => {
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
    // The code of a `failed` outcome: the receiver refused, unless nothing was sent.
    let refusal: FailureCode = 'NEXUS_ERR_WEBHOOK_REFUSED';
    if (!target?.enabled) {
      error = target
        ? `not sent: the target is disabled (${target.disabledReason ?? 'no reason'})`
        : 'not sent: the target no longer exists';
      refusal = target ? 'NEXUS_ERR_WEBHOOK_TARGET_DISABLED' : 'NEXUS_ERR_WEBHOOK_TARGET_MISSING';
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
        if (blocked) refusal = 'NEXUS_ERR_EGRESS_BLOCKED';
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
    const reason = exhausted
      ? `no 2xx after ${position + 1} attempts (last: ${status ?? error ?? 'no answer'})`
      : outcome.kind === 'retry' || outcome.kind === 'delivered'
        ? undefined
        : outcome.reason;
    const code: FailureCode | undefined = exhausted
      ? 'NEXUS_ERR_WEBHOOK_EXHAUSTED'
      : outcome.kind === 'gone'
        ? 'NEXUS_ERR_WEBHOOK_GONE'
        : outcome.kind === 'failed'
          ? refusal
          : undefined;
    return {
      target,
      delayMs,
      reason,
      code,
      record: {
        deliveryId: delivery.id,
        jobId: undefined,
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
        newRound: position === 0,
      },
    };
  };

  /**
   * What follows a failed attempt whatever job made it: a 410 disables the target, a failure
   * may end its failing window; a delivery that failed for good is announced with a
   * `delivery.exhausted` event. Answers why it failed for good, if it did.
   */
  const afterFailure = async (
    delivery: DeliveryRow,
    result: Attempt,
    attempts: number,
  ): Promise<DeliveryFailure | undefined> => {
    const { target, record } = result;
    if (target?.enabled) {
      if (record.outcome === 'gone') await disable(target, result.reason ?? 'gone', 0);
      else {
        await disable(
          target,
          `every attempt failed for ${Math.round(config.webhooks.disableAfterMs / 3_600_000)} h`,
          config.webhooks.disableAfterMs,
        );
      }
    }
    if (result.delayMs !== undefined) return undefined;
    const reason = result.reason ?? 'failed';
    const code = result.code ?? GENERIC_FAILURE_CODE;
    if (delivery.interaction_id !== null || !delivery.type.startsWith('delivery.')) {
      // Operational events about failed operational deliveries would feed each other.
      await db.transaction(tx =>
        appendOperationalEvent(tx, delivery.tenant_id, 'delivery.exhausted', {
          target: delivery.target,
          deliveryId: delivery.id,
          eventId: delivery.event_id,
          eventType: delivery.type,
          attempts,
          code,
          reason,
        }),
      );
    }
    return { code, reason };
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

  /**
   * When the target's places are taken and a full round of attempts already waits for them: how
   * long a retry job should be put aside, unattempted, to come back about when a place is likely
   * (as long as the target's attempts hold their places lately, per round ahead, with jitter; at
   * least 100 ms, at most a timeout per round). Undefined when it may wait for a place.
   */
  const busyDelay = (
    tenantId: string,
    target: string,
  ): { waiting: number; delayMs: number } | undefined => {
    const key = targetKey(tenantId, target);
    const waiting = inFlight.waitingFor(key);
    if (waiting < config.webhooks.targetConcurrency) return undefined;
    const rounds = Math.ceil((waiting + 1) / config.webhooks.targetConcurrency);
    const perRound = Math.min(
      placeHeldMs.get(key) ?? config.webhooks.timeoutMs,
      config.webhooks.timeoutMs,
    );
    return {
      waiting,
      delayMs: Math.max(100, Math.round(rounds * perRound * (0.5 + Math.random()))),
    };
  };

  return {
    attempt,
    afterFailure,
    busyDelay,
    /** Closes the guard this made (not one the caller passed). */
    close: () => {
      if (!deps.guard) guard.close();
    },
  };
}

export type WebhookAttempts = ReturnType<typeof createWebhookAttempts>;

/** The key a target's attempts share their places under. */
const targetKey = (tenantId: string, target: string) => `${tenantId}\u0000${target}`;

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
