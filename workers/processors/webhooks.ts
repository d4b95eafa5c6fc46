import { DelayedError } from 'bullmq';
import type { DatabasePool } from 'slonik';
import {
  loadDeliveries,
  undispatchedDeliveries,
  type DeliveryRow,
} from '../../db/webhook-dispatch.js';
import type { Config } from '../../lib/config.js';
import type { EgressGuard } from '../../lib/egress.js';
import { GroupCommit } from '../../lib/group-commit.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import type { Logger } from '../../lib/logger.js';
import { setUndispatchedSource, webhookRetriesDeferredTotal } from '../../lib/metrics.js';
import type { QueueSet } from '../../queues/index.js';
import {
  isDeliveryBatch,
  webhooksQueue,
  type DeliveryBatch,
  type SingleDelivery,
  type WebhookPayload,
} from '../../queues/webhooks.js';
import { dispatchWork, enqueueContext } from '../../queues/work.js';
import { WorkFailure } from '../../lib/errors.js';
import { StaleWorkError, type JobContext, type Processor } from '../run-processor.js';
import { recordFinalFailure } from '../undelivered.js';
import { PgListener } from '../../db/listener.js';
import { WebhookDispatcher } from '../webhook-dispatcher.js';
import { createWebhookAttempts } from '../webhook-attempts.js';

/**
 * The `webhooks` queue's processor: which deliveries a job attempts, and how the job goes on
 * (delivered, the next attempt scheduled, or failed for good). Its dispatcher
 * (`workers/webhook-dispatcher.ts`) and one attempt with its record (`workers/webhook-attempts.ts`)
 * have files of their own.
 */

export interface WebhookDeps {
  db: DatabasePool;
  queues: QueueSet;
  log: Logger;
  bus: InvalidationBus;
  config: Config;
  /** Tests pass a guard with their own resolver; the default allows `config.egressAllow`. */
  guard?: EgressGuard | undefined;
}

/**
 * The `webhooks` processor (design §6). A batch job carries the first attempts of new deliveries
 * to one target (the dispatcher groups them); a delivery not delivered at its first attempt goes
 * on as its own job, keyed by event and target, which makes one attempt per run.
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
 *   statement (or one transaction when some go on as jobs of their own), which also completes
 *   the delivered retry jobs' work rows.
 * - At most `NEXUS_WEBHOOK_CONCURRENCY` attempts are in flight per process, across its jobs, and
 *   at most `NEXUS_WEBHOOK_TARGET_CONCURRENCY` of them to one target; freed places go to the
 *   targets in turn. An attempt keeps its place until it is recorded.
 * Its companion, the {@link WebhookDispatcher}, turns new deliveries into jobs. One attempt and
 * its record are `webhook-attempts.ts`'s; this file decides which deliveries a job attempts and
 * how the job goes on.
 */
export function createWebhookProcessor(deps: WebhookDeps): Processor<typeof webhooksQueue> {
  const { db, log, config } = deps;
  const loader = new GroupCommit<{ id: number; jobId: string }, DeliveryRow | undefined>(
    async items => {
      const rows = await loadDeliveries(db, items);
      return items.map(item => rows.get(item.id));
    },
    256,
    2,
  );
  const enqueue = enqueueContext(deps, config);
  const attempts = createWebhookAttempts({ ...deps, enqueue });
  const dispatcher = new WebhookDispatcher(
    enqueue,
    log,
    config.webhooks.dispatchIntervalMs,
    config.webhooks,
    () => deps.queues.get('webhooks').getWorkersCount(),
  );
  // New deliveries wake the dispatcher at once (migration 0025); its passes are the fallback.
  const listener = new PgListener(
    config.db,
    'nexus_webhook_dispatch',
    () => dispatcher.wake(),
    log,
  );

  /** A retry or a replay: one attempt of one delivery, the next one scheduled on this job. */
  const processOne = async (payload: SingleDelivery, ctx: JobContext) => {
    const jobId = ctx.job.id ?? '';
    const busy = attempts.busyDelay(payload.tenantId, payload.targetId);
    if (busy && ctx.token) {
      // The target's places are taken and a full round of attempts already waits for them.
      // Waiting too would hold one of the worker's job slots, which other targets' jobs need:
      // come back about when a place is likely, unattempted (the delivery and its work are
      // unchanged).
      const { waiting, delayMs } = busy;
      webhookRetriesDeferredTotal.inc();
      ctx.log.debug({ deliveryId: payload.deliveryId, waiting, delayMs }, 'webhook retry deferred');
      await ctx.job.moveToDelayed(Date.now() + delayMs, ctx.token);
      throw new DelayedError();
    }
    const delivery = await loader.submit({ id: payload.deliveryId, jobId });
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
    const { result, recorded } = await attempts.attempt(
      delivery,
      newRound ? 0 : delivery.round_attempts,
      made => ({ ...made.record, jobId, newRound }),
    );
    if (result.record.outcome === 'delivered') {
      if (!recorded.pending) throw new StaleWorkError();
      return;
    }
    const failed = await attempts.afterFailure(delivery, result, recorded.attempt);
    if (failed === undefined) {
      ctx.log.info(
        {
          deliveryId: delivery.id,
          attempt: recorded.attempt,
          status: result.record.status,
          error: result.record.error,
          delayMs: result.delayMs,
        },
        'webhook attempt failed; retrying on the schedule',
      );
      await ctx.job.moveToDelayed(Date.now() + (result.delayMs ?? 0), ctx.token);
      throw new DelayedError();
    }
    throw new WorkFailure(failed.code, failed.reason, { attempts: recorded.attempt });
  };

  /**
   * New deliveries to one target: their first attempts side by side. One that is not delivered
   * continues as its own job (recorded in the attempt's transaction): delayed for a retry, or
   * failed for good with an undelivered record, as {@link processOne} would have it. The batch's
   * work row ends when every delivery in it has had its first attempt; a re-run skips the ones
   * that had it.
   */
  const processBatch = async (payload: DeliveryBatch, ctx: JobContext) => {
    const jobId = ctx.job.id ?? '';
    const loaded = await loader.submitAll(payload.deliveryIds.map(id => ({ id, jobId })));
    const rows = loaded.filter(row => row !== undefined);
    if (rows.some(row => row.work_state !== 'pending')) {
      ctx.completedHere();
      throw new StaleWorkError();
    }
    const fresh = rows.filter(row => row.state === 'pending' && row.round_attempts === 0);
    const settled = await Promise.allSettled(
      fresh.map(async delivery => {
        // Recorded as soon as it is made (with other jobs' attempts): a crash repeats only the
        // attempts in flight.
        const { result, recorded } = await attempts.attempt(delivery, 0, made => ({
          ...made.record,
          continued:
            made.record.outcome === 'delivered'
              ? undefined
              : {
                  tenantId: delivery.tenant_id,
                  eventId: delivery.event_id,
                  targetId: delivery.target,
                  deliveryId: delivery.id,
                },
        }));
        const delivered = result.record.outcome === 'delivered';
        if (delivered || !recorded.work) return;
        const failed = await attempts.afterFailure(delivery, result, recorded.attempt);
        if (failed === undefined) {
          ctx.log.info(
            {
              deliveryId: delivery.id,
              status: result.record.status,
              error: result.record.error,
              delayMs: result.delayMs,
              next: recorded.work.jobId,
            },
            'webhook attempt failed; retrying on the schedule as its own job',
          );
          await dispatchWork(enqueue, [{ ...recorded.work, delayMs: result.delayMs }]);
          return;
        }
        await recordFinalFailure(db, {
          queue: webhooksQueue.name,
          jobId: recorded.work.jobId,
          tenantId: delivery.tenant_id,
          code: failed.code,
          reason: failed.reason,
          attempts: recorded.attempt,
          firstAttemptAt: result.record.startedAt,
          lastAttemptAt: new Date(),
        });
      }),
    );
    const failure = settled.find(outcome => outcome.status === 'rejected');
    // The hub's own error (PostgreSQL, Redis): BullMQ runs the batch again for what is left.
    if (failure) throw failure.reason;
    // Every first attempt is recorded: the runner ends the batch's work (conditionally).
  };

  const processor = (payload: WebhookPayload, ctx: JobContext) =>
    isDeliveryBatch(payload) ? processBatch(payload, ctx) : processOne(payload, ctx);

  return Object.assign(processor, {
    // The load checks the work row and the attempt record completes it (no separate claim).
    claimsItself: true,
    companion: {
      start: () => {
        dispatcher.start();
        listener.start();
        setUndispatchedSource(() => undispatchedDeliveries(db));
      },
      stop: async () => {
        setUndispatchedSource(undefined);
        await listener.stop();
        await dispatcher.stop();
      },
      // After the workers closed: attempts still in flight keep their connections.
      release: () => {
        attempts.close();
        return Promise.resolve();
      },
    },
  });
}
