import {
  DelayedError,
  UnrecoverableError,
  type Job,
  type Processor as BullProcessor,
} from 'bullmq';
import type { CommonQueryMethods, DatabasePool } from 'slonik';
import { coerceError, failureCodeOf, WorkFailure, type FailureCode } from '../lib/errors.js';
import { classifyFailure, deferralDelayMs } from '../lib/infrastructure.js';
import type { Logger } from '../lib/logger.js';
import { jobDuration, jobsActive, jobsTotal } from '../lib/metrics.js';
import type { PayloadOf, QueueDefinition } from '../queues/definition.js';
import { pingDb } from '../db/pool.js';
import { claimWorks, completeWork, completeWorks, findWork, type WorkClaim } from '../db/work.js';
import { GroupCommit } from '../lib/group-commit.js';
import { recordFinalFailure } from './undelivered.js';

/** What a processor gets besides its payload. */
export interface JobContext {
  readonly log: Logger;
  readonly db: DatabasePool;
  readonly job: Job;
  /** Aborted when the job is cancelled. */
  readonly signal: AbortSignal | undefined;
  /** The job's lock token (for `job.moveToDelayed`). */
  readonly token: string | undefined;
  /**
   * Ends the job's work: runs `within` and marks the work row done in one transaction. When the
   * row is no longer pending (a duplicate run finished first), `within` is rolled back and the
   * job ends as `stale`. Called by the runner when the processor does not call it.
   */
  complete<T>(within?: (tx: CommonQueryMethods) => Promise<T>): Promise<T | undefined>;
  /**
   * Declares that the processor marks the work row done itself (conditionally, in its own
   * transaction, e.g. for a batch of jobs) instead of through {@link JobContext.complete}. It then
   * throws {@link StaleWorkError} when the row was not pending.
   */
  completedHere(): void;
}

/**
 * A processor: one async function per queue. Throw to retry (BullMQ's attempts and backoff
 * apply); throw a `WorkFailure` (lib/errors.ts) for a permanent failure, with the catalogue code
 * its undelivered record carries (a retried one with `retry: true` names the code the last
 * attempt's failure is recorded with); return for success or a no-op.
 */
export type Processor<D extends QueueDefinition = QueueDefinition> = ((
  payload: PayloadOf<D>,
  context: JobContext,
) => Promise<void>) & {
  /**
   * The processor counts the attempt and completes the work row itself, in one conditional
   * statement of its own transaction (batch processors): the runner skips its separate claim.
   */
  readonly claimsItself?: boolean;
  /**
   * Something that runs beside the processor in every worker process that runs its queue
   * (started with the workers, stopped before they close), and what the processor's jobs use
   * that must outlive them (connection pools): `release` runs once the workers have closed, so
   * a job still sending during the grace keeps its connection.
   */
  readonly companion?: { start(): void; stop(): Promise<void>; release?(): Promise<void> };
};

type Outcome = 'completed' | 'stale' | 'retry' | 'failed' | 'deferred' | 'foreign';

/**
 * Thrown inside the completing transaction to roll back a stale duplicate's writes; processors
 * that complete their work themselves ({@link JobContext.completedHere}) throw it for a job whose
 * row was no longer pending.
 */
export class StaleWorkError extends Error {
  override readonly name = 'StaleWorkError';
}

/** The job has no work row at all: not this deployment's job. */
class ForeignJobError extends Error {
  override readonly name = 'ForeignJobError';
}

/**
 * Completions of concurrent jobs of a queue that have nothing else to commit share one statement
 * (group commit): a job whose row is no longer pending gets false. A job id twice in one flush
 * (two runs of one job) completes once: the first gets the answer, the other false.
 */
function completer(db: DatabasePool, queue: string): GroupCommit<string, boolean> {
  return new GroupCommit(
    async jobIds => {
      const done = await completeWorks(db, queue, jobIds);
      return jobIds.map(jobId => done.delete(jobId));
    },
    256,
    2,
  );
}

/**
 * Claims of concurrent jobs of a queue share one statement (group commit): the attempt is counted
 * on every pending row at once, and a job whose row is not pending gets nothing back.
 */
function claimer(db: DatabasePool, queue: string): GroupCommit<string, WorkClaim | undefined> {
  return new GroupCommit(
    async jobIds => {
      const rows = await claimWorks(db, queue, jobIds);
      const byId = new Map(rows.map(row => [row.job_id, row]));
      return jobIds.map(jobId => byId.get(jobId));
    },
    256,
    2,
  );
}

/**
 * Wraps a processor with everything every job needs: payload validation, the work-row check
 * (a job whose row is not pending is a stale duplicate and does nothing), the conditional
 * completion, undelivered recording on the final failure, the active gauge, the duration
 * histogram, the outcome counter, and a child logger bound to queue, job id and attempt.
 * Errors are rethrown so BullMQ applies attempts and backoff.
 */
export function instrumentProcessor<D extends QueueDefinition>(
  definition: D,
  processor: Processor<D>,
  deps: {
    db: DatabasePool;
    log: Logger;
    /** The queue prefix (named in the warning about another deployment's job). */
    prefix?: string | undefined;
    /** Whether the workers' Redis connection is up (a socket error is then not Redis's). */
    redisReady?: (() => boolean) | undefined;
    /** The longest deferral while PostgreSQL or Redis is unreachable. */
    deferMaxMs?: number | undefined;
    /** Called once a final failure is recorded (e.g. to flag the customer's interaction). */
    onFinalFailure?:
      | ((queue: string, payload: unknown, reason: string, code: FailureCode) => Promise<void>)
      | undefined;
  },
): BullProcessor {
  const queue = definition.name;
  const claims = claimer(deps.db, queue);
  const completions = completer(deps.db, queue);
  const policy = { baseMs: 1_000, maxMs: Math.max(1_000, deps.deferMaxMs ?? 30_000) };
  let lastDeferralLog = 0;

  /**
   * Whether a failure is the hub's infrastructure's (PostgreSQL or Redis unreachable) rather than
   * the work's. A bare socket error may be a remote's (an SMS provider's): it is ours only when
   * PostgreSQL or Redis does not answer now.
   */
  const isOutage = async (error: Error): Promise<boolean> => {
    const kind = classifyFailure(error);
    if (kind !== 'connection') return kind === 'infrastructure';
    if (deps.redisReady && !deps.redisReady()) return true;
    return !(await pingDb(deps.db, 2_000));
  };

  /**
   * Puts the job back, delayed, without using an attempt (BullMQ's `moveToDelayed` skips the
   * attempt count). The delay doubles with each deferral in a row: every start of the job not
   * followed by a counted attempt (`attemptsStarted` counts starts). When Redis is away too, the
   * move fails or waits; the job's lock then lapses and BullMQ's stall check hands the job back
   * (the sweeper re-adds a job that stalled out while its work is pending).
   */
  const putAside = async (job: Job, token: string | undefined, log: Logger) => {
    const deferrals = Math.max(0, (job.attemptsStarted ?? 0) - job.attemptsMade - 1);
    const delayMs = deferralDelayMs(deferrals, policy);
    try {
      if (!token) throw new Error('no lock token');
      await job.moveToDelayed(Date.now() + delayMs, token);
    } catch (moveError) {
      log.warn({ err: moveError }, 'could not put the job aside; the stall check retakes it');
    }
    return delayMs;
  };
  return async (job: Job, token?: string, signal?: AbortSignal) => {
    const jobId = job.id ?? '';
    const attempt = job.attemptsMade + 1;
    const log = deps.log.child({ queue, jobId, attempt });
    const stopTimer = jobDuration.startTimer({ queue });
    jobsActive.inc({ queue });
    let outcome: Outcome = 'completed';
    let firstAttemptAt: Date | null = null;
    let attempts = attempt;
    try {
      const parsed = definition.schema.safeParse(job.data);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new WorkFailure(
          'NEXUS_ERR_WORK_INVALID_PAYLOAD',
          `invalid payload: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim(),
        );
      }
      if (definition.durable && !processor.claimsItself) {
        // Claim check: count the attempt on the work row; no pending row means nothing to do.
        const row = await claims.submit(jobId);
        if (!row) {
          if (!(await findWork(deps.db, queue, jobId))) throw new ForeignJobError();
          outcome = 'stale';
          log.info('work is not pending: duplicate run skipped');
          return { stale: true };
        }
        attempts = row.attempts;
        firstAttemptAt = new Date(row.first_attempt_at);
      }

      let completed = false;
      const context: JobContext = {
        log,
        db: deps.db,
        job,
        signal,
        token,
        completedHere: () => {
          completed = true;
        },
        complete: async within => {
          completed = true;
          if (!definition.durable) return within ? deps.db.transaction(within) : undefined;
          if (!within) {
            if (!(await completions.submit(jobId))) throw new StaleWorkError();
            return undefined;
          }
          return deps.db.transaction(async tx => {
            const result = within ? await within(tx) : undefined;
            if (!(await completeWork(tx, queue, jobId))) throw new StaleWorkError();
            return result;
          });
        },
      };
      await processor(parsed.data as PayloadOf<D>, context);
      if (!completed) await context.complete();
      return undefined;
    } catch (thrown) {
      if (
        thrown instanceof DelayedError ||
        (thrown as Error | undefined)?.name === 'DelayedError'
      ) {
        // The processor scheduled its own next attempt (job.moveToDelayed): not a failure.
        outcome = 'retry';
        throw thrown;
      }
      const foreign =
        thrown instanceof ForeignJobError ||
        (thrown instanceof StaleWorkError &&
          definition.durable &&
          !(await findWork(deps.db, queue, jobId).catch(() => true)));
      if (foreign) {
        // No work row: the job is not this deployment's (another one shares the queue prefix).
        // Left for its owner: back to the delayed set, unchanged, without using an attempt.
        outcome = 'foreign';
        const delayMs = await putAside(job, token, log);
        log.warn(
          { prefix: deps.prefix, delayMs },
          "a job without a work row: another deployment's (same NEXUS_QUEUE_PREFIX?); left for it",
        );
        throw new DelayedError();
      }
      if (thrown instanceof StaleWorkError) {
        outcome = 'stale';
        log.info('work ended by another run: this run changed nothing');
        return { stale: true };
      }
      const error = coerceError(thrown);
      const unrecoverable =
        error instanceof UnrecoverableError || error.name === 'UnrecoverableError';
      if (definition.durable && !unrecoverable && (await isOutage(error))) {
        // PostgreSQL or Redis is unreachable: not the work's failure, so no attempt is used.
        outcome = 'deferred';
        const delayMs = await putAside(job, token, log);
        const now = Date.now();
        if (now - lastDeferralLog > 10_000) {
          lastDeferralLog = now;
          log.warn({ err: error, delayMs }, 'infrastructure unreachable; job deferred');
        } else log.debug({ err: error, delayMs }, 'infrastructure unreachable; job deferred');
        throw new DelayedError();
      }
      const final = unrecoverable || attempt >= (job.opts.attempts ?? 1);
      if (!final) {
        outcome = 'retry';
        log.warn({ err: error }, 'job failed; will retry');
        throw error;
      }
      outcome = 'failed';
      log.error({ err: error }, 'job failed for good');
      if (definition.durable) {
        try {
          // The failure's catalogue code (the generic one when it has none), the message as detail;
          // processors that count their own attempts (claimsItself) report them on the failure.
          const code = failureCodeOf(error);
          const reason = error.message || error.name;
          const recorded = await recordFinalFailure(deps.db, {
            queue,
            jobId,
            tenantId: definition.tenantOf(job.data as PayloadOf<D>) ?? null,
            code,
            reason,
            attempts: (error instanceof WorkFailure ? error.attempts : undefined) ?? attempts,
            firstAttemptAt,
            lastAttemptAt: new Date(),
          });
          if (recorded) await deps.onFinalFailure?.(queue, job.data, reason, code);
        } catch (recordError) {
          // The sweeper records it later: the row stays pending and BullMQ keeps the failed job.
          log.error({ err: recordError }, 'could not record undelivered work; the sweeper will');
        }
      }
      throw error;
    } finally {
      jobsActive.dec({ queue });
      stopTimer({ outcome });
      jobsTotal.inc({ queue, outcome });
    }
  };
}
