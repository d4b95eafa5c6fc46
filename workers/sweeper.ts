import type { Queue } from 'bullmq';
import type { DatabasePool } from 'slonik';
import { GENERIC_FAILURE_CODE } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { sweeperReenqueuedTotal } from '../lib/metrics.js';
import { isQueueName, QUEUES, SWEEP_SCHEDULER_ID, type QueueSet } from '../queues/index.js';
import { claimDueWork, countStall, trySweepLock, workCounts } from '../db/work.js';
import { recordFinalFailure } from './undelivered.js';

/** BullMQ's reason for a job whose lock lapsed more often than `maxStalledCount`. */
const STALLED_OUT = /stalled more than allowable limit/;

/**
 * Stall-outs the sweeper re-adds a job after, at most. An outage of Redis stalls each active job
 * once; a job that stalls out this often crashes or blocks its worker (a processor that counts its
 * attempt only when it finishes would otherwise be re-added for ever).
 */
export const MAX_STALLS = 10;

export interface SweepResult {
  /** True when another replica held the sweep lock. */
  skipped: boolean;
  checked: number;
  reenqueued: number;
  failed: number;
}

export interface SweepDeps {
  db: DatabasePool;
  queues: QueueSet;
  log: Logger;
}

/**
 * Re-drives pending work whose job Redis no longer has (Redis restarted without persistence,
 * failed over, or was flushed). For each pending row due for a check, asks BullMQ for its job:
 * - missing: adds it again with the same job id;
 * - completed, or failed before the row was last reopened (a replay raced with Redis): adds it again;
 * - stalled out (BullMQ failed it after its lock lapsed too often, which an outage of Redis does
 *   to every active job) while its work has attempts left and has stalled out fewer than
 *   {@link MAX_STALLS} times: adds it again (beyond that, it is recorded undelivered);
 * - failed without the runner having recorded it otherwise: records it undelivered;
 * - waiting, delayed, active: in flight, nothing to do.
 * The row's next check moves `afterMs` away either way. Safe to run concurrently with workers:
 * a re-added job whose work has since ended is skipped as stale by the runner.
 */
export async function sweepPendingWork(
  deps: SweepDeps,
  options: { afterMs: number; batch: number },
): Promise<SweepResult> {
  const result: SweepResult = { skipped: false, checked: 0, reenqueued: 0, failed: 0 };
  await deps.db.transaction(async tx => {
    const locked = await trySweepLock(tx);
    if (!locked) {
      result.skipped = true;
      return;
    }
    const rows = await claimDueWork(tx, options.batch, { sweepAfterMs: options.afterMs });
    for (const row of rows) {
      if (!isQueueName(row.queue)) {
        deps.log.warn({ queue: row.queue, jobId: row.job_id }, 'pending work for an unknown queue');
        continue;
      }
      result.checked++;
      const queue = deps.queues.get(row.queue);
      const state = await queue.getJobState(row.job_id);
      const job = state === 'failed' ? await queue.getJob(row.job_id) : undefined;
      // A failure older than the row's last change predates a replay that reopened the row.
      const staleFailure =
        job?.finishedOn !== undefined && job.finishedOn < Date.parse(row.updated_at);
      const stalled =
        state === 'failed' && !staleFailure && STALLED_OUT.test(job?.failedReason ?? '');
      const counts = stalled ? await workCounts(tx, row.id) : undefined;
      const stalledOut =
        counts !== undefined &&
        counts.attempts < (job?.opts.attempts ?? 1) &&
        counts.stalls < MAX_STALLS;
      if (state === 'unknown' || state === 'completed' || staleFailure || stalledOut) {
        if (state !== 'unknown') await queue.remove(row.job_id);
        await queue.add(row.queue, row.payload, { jobId: row.job_id });
        const reason = stalledOut
          ? 'stalled'
          : staleFailure
            ? 'replayed'
            : state === 'completed'
              ? 'completed'
              : 'missing';
        if (stalledOut) {
          await countStall(tx, row.id);
          deps.log.warn(
            { queue: row.queue, jobId: row.job_id, failedReason: job?.failedReason },
            'a job stalled out (its worker lost its lock, e.g. Redis was away): added again',
          );
        }
        sweeperReenqueuedTotal.inc({ queue: row.queue, reason });
        result.reenqueued++;
      } else if (state === 'failed') {
        // BullMQ keeps only the failure's message: a stall-out is coded as one, anything else
        // (the runner could not record it) with the generic code, its message as the detail.
        const recorded = await recordFinalFailure(tx, {
          queue: row.queue,
          jobId: row.job_id,
          tenantId: row.tenant_id,
          code: stalled ? 'NEXUS_ERR_WORK_STALLED' : GENERIC_FAILURE_CODE,
          reason:
            counts && counts.stalls >= MAX_STALLS
              ? `stalled out ${counts.stalls + 1} times (the job may crash or block its worker): ${job?.failedReason}`
              : job?.failedReason || 'job failed without a recorded reason',
          attempts: job?.attemptsMade ?? 0,
          firstAttemptAt: job?.processedOn ? new Date(job.processedOn) : null,
          lastAttemptAt: new Date(job?.finishedOn ?? Date.now()),
        });
        if (recorded) result.failed++;
      }
    }
  });
  if (result.reenqueued > 0 || result.failed > 0) {
    deps.log.info(result, 'sweep re-drove pending work');
  }
  return result;
}

/**
 * Makes sure the sweeper's repeatable job exists with the configured interval. Called at start
 * and on every interval by each worker that runs the maintenance queue: the schedule lives in
 * Redis, and losing Redis's data must not stop the sweeps that recover from it.
 */
export async function ensureSweepScheduler(queue: Queue, everyMs: number): Promise<boolean> {
  const existing = await queue.getJobScheduler(SWEEP_SCHEDULER_ID);
  if (existing?.every === everyMs) return false;
  await queue.upsertJobScheduler(
    SWEEP_SCHEDULER_ID,
    { every: everyMs },
    { name: 'sweep', data: { task: 'sweep-pending-work' }, opts: QUEUES.maintenance.jobOptions },
  );
  return true;
}
