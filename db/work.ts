import { sql, type CommonQueryMethods, type FragmentSqlToken } from 'slonik';
import { z } from 'zod';
import type { Config } from '../lib/config.js';

/**
 * The `work` table (migration 0001): the durable record of every BullMQ job (design §2,
 * "Postgres-first, then enqueue"). Every statement on it lives here: the rows written before a
 * job exists, the runner's claim and completion, the sweeper's claim of rows due for a check,
 * replay, and the fragments that other statements embed (the chat intake's group commit, the
 * webhook dispatch and attempt record). `queues/work.ts` builds on these with the BullMQ side.
 */

export type WorkState = 'pending' | 'done' | 'failed';

export const workRow = z.object({
  id: z.number(),
  queue: z.string(),
  job_id: z.string(),
  tenant_id: z.string().nullable(),
  payload: z.unknown(),
  state: z.enum(['pending', 'done', 'failed']),
  created_at: z.string(),
  updated_at: z.string(),
});
export type WorkRow = z.infer<typeof workRow>;

const workColumns = sql.fragment`id, queue, job_id, tenant_id, payload, state, created_at, updated_at`;

/**
 * What writing a pending row needs besides the row: when the sweeper first checks that its job
 * exists. Bound once from the configuration ({@link workSettings}); an `EnqueueContext` is one.
 */
export interface WorkSettings {
  /** How long a pending row waits before the sweeper checks that its job exists. */
  readonly sweepAfterMs: number;
}

/** The settings from the configuration (`NEXUS_SWEEP_AFTER_MS`). */
export function workSettings(config: Pick<Config, 'workers'>): WorkSettings {
  return { sweepAfterMs: config.workers.sweepAfterMs };
}

/** When a row written now is first due for a sweep. */
const nextSweep = (settings: WorkSettings) =>
  sql.fragment`now() + make_interval(secs => ${settings.sweepAfterMs / 1000})`;

/** A pending row to write: the queue's job id is its key. */
export interface NewWork {
  readonly jobId: string;
  readonly tenantId: string | null;
  readonly payload: unknown;
}

const recorded = z.object({ id: z.number(), state: z.enum(['pending', 'done', 'failed']) });
const recordedJob = recorded.extend({ job_id: z.string() });

/**
 * Writes a pending row, or answers the row already recorded under the same key with
 * `created: false`.
 */
export async function insertWork(
  tx: CommonQueryMethods,
  queue: string,
  work: NewWork,
  settings: WorkSettings,
): Promise<{ id: number; state: WorkState; created: boolean }> {
  const inserted = await tx.maybeOne(sql.type(recorded)`
    INSERT INTO work (queue, job_id, tenant_id, payload, next_sweep_at)
    VALUES (${queue}, ${work.jobId}, ${work.tenantId}, ${sql.jsonb(work.payload as never)},
            ${nextSweep(settings)})
    ON CONFLICT (queue, job_id) DO NOTHING
    RETURNING id, state`);
  if (inserted) return { ...inserted, created: true };
  const existing = await tx.one(sql.type(recorded)`
    SELECT id, state FROM work WHERE queue = ${queue} AND job_id = ${work.jobId}`);
  return { ...existing, created: false };
}

/**
 * {@link insertWork} for many rows of one queue in one statement. Answers by job id the rows
 * written now and, apart, those recorded before.
 */
export async function insertWorks(
  tx: CommonQueryMethods,
  queue: string,
  works: readonly NewWork[],
  settings: WorkSettings,
): Promise<{
  created: Map<string, { id: number; state: WorkState }>;
  before: Map<string, { id: number; state: WorkState }>;
}> {
  const inserted = await tx.any(sql.type(recordedJob)`
    INSERT INTO work (queue, job_id, tenant_id, payload, next_sweep_at)
    SELECT ${queue}, v.job_id, v.tenant_id, v.payload, ${nextSweep(settings)}
    FROM ${sql.unnest(
      works.map(work => [work.jobId, work.tenantId, JSON.stringify(work.payload)]),
      ['text', 'text', 'jsonb'],
    )} AS v(job_id, tenant_id, payload)
    ON CONFLICT (queue, job_id) DO NOTHING
    RETURNING id, state, job_id`);
  const created = new Map(inserted.map(row => [row.job_id, row]));
  const missing = works.filter(work => !created.has(work.jobId)).map(work => work.jobId);
  const existing =
    missing.length === 0
      ? []
      : await tx.any(sql.type(recordedJob)`
          SELECT id, state, job_id FROM work
          WHERE queue = ${queue} AND job_id = ANY(${sql.array(missing, 'text')})`);
  return { created, before: new Map(existing.map(row => [row.job_id, row])) };
}

/**
 * The INSERT of pending rows for a statement that writes other rows too (a CTE of the chat
 * intake's group commit): `rows` selects `queue, job_id, tenant_id, payload`; keys already
 * recorded insert nothing. Returns `id, job_id`.
 */
export function insertWorkRows(rows: FragmentSqlToken, settings: WorkSettings): FragmentSqlToken {
  return sql.fragment`
    INSERT INTO work (queue, job_id, tenant_id, payload, next_sweep_at)
    SELECT w.queue, w.job_id, w.tenant_id, w.payload, ${nextSweep(settings)}
    FROM (${rows}) AS w
    ON CONFLICT (queue, job_id) DO NOTHING
    RETURNING id, job_id`;
}

/** Makes pending rows due for a sweep now (their jobs could not be added). */
export async function sweepSoon(db: CommonQueryMethods, ids: readonly number[]): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE work SET next_sweep_at = now()
    WHERE id = ANY(${sql.array([...ids], 'int8')}) AND state = 'pending'`);
}

export async function findWork(
  db: CommonQueryMethods,
  queue: string,
  jobId: string,
): Promise<WorkRow | null> {
  return db.maybeOne(sql.type(workRow)`
    SELECT ${workColumns} FROM work WHERE queue = ${queue} AND job_id = ${jobId}`);
}

/**
 * The job id and state of each row of `queue`, as a relation for a read that joins it (the
 * webhook load checks its work row's state in the same read).
 */
export function workStates(queue: string): FragmentSqlToken {
  return sql.fragment`(SELECT job_id, state FROM work WHERE queue = ${queue})`;
}

const claimed = z.object({
  job_id: z.string(),
  attempts: z.number(),
  first_attempt_at: z.string(),
});
export type WorkClaim = z.infer<typeof claimed>;

/**
 * The UPDATE that counts an attempt on each of several jobs' rows that are still pending,
 * returning `job_id, attempts, first_attempt_at`; a statement of its own ({@link claimWorks}) or a
 * CTE of a caller's (the outbound-email load).
 */
export function claimPendingWorks(queue: string, jobIds: readonly string[]): FragmentSqlToken {
  return sql.fragment`
    UPDATE work SET attempts = attempts + 1, first_attempt_at = coalesce(first_attempt_at, now()),
                    last_attempt_at = now(), updated_at = now()
    WHERE queue = ${queue} AND job_id = ANY(${sql.array([...jobIds], 'text')}) AND state = 'pending'
    RETURNING job_id, attempts, first_attempt_at`;
}

/**
 * Counts an attempt on each of several jobs' rows that are still pending, in one statement;
 * answers those rows (attempts so far, first attempt).
 */
export async function claimWorks(
  db: CommonQueryMethods,
  queue: string,
  jobIds: readonly string[],
): Promise<readonly WorkClaim[]> {
  return db.any(sql.type(claimed)`${claimPendingWorks(queue, jobIds)}`);
}

/**
 * The UPDATE that marks several jobs' rows done, each only if it is still pending, returning
 * the job ids it ended; a statement of its own ({@link completeWorks}) or a CTE of a caller's
 * (the webhook attempt record). `countAttempt` also counts this attempt, for processors that
 * claim their own work (`claimsItself`).
 */
export function completePendingWorks(
  queue: string,
  jobIds: readonly string[],
  { countAttempt = false }: { countAttempt?: boolean } = {},
): FragmentSqlToken {
  const attempt = countAttempt
    ? sql.fragment`attempts = attempts + 1, first_attempt_at = coalesce(first_attempt_at, now()),
                   last_attempt_at = now(),`
    : sql.fragment``;
  return sql.fragment`
    UPDATE work SET ${attempt} state = 'done', finished_at = now(), updated_at = now()
    WHERE queue = ${queue} AND job_id = ANY(${sql.array([...jobIds], 'text')}) AND state = 'pending'
    RETURNING job_id`;
}

/**
 * Marks several jobs' work done, each only if it is still pending, in one statement (outside a
 * transaction, it commits alone); answers the job ids that were pending.
 */
export async function completeWorks(
  db: CommonQueryMethods,
  queue: string,
  jobIds: readonly string[],
  options: { countAttempt?: boolean } = {},
): Promise<Set<string>> {
  const done = await db.anyFirst(
    sql.type(z.object({ job_id: z.string() }))`${completePendingWorks(queue, jobIds, options)}`,
  );
  return new Set(done);
}

export async function completeWork(
  tx: CommonQueryMethods,
  queue: string,
  jobId: string,
): Promise<boolean> {
  const result = await tx.query(sql.unsafe`
    UPDATE work SET state = 'done', finished_at = now(), updated_at = now()
    WHERE queue = ${queue} AND job_id = ${jobId} AND state = 'pending'`);
  return result.rowCount === 1;
}

/** Marks pending work failed. False when it was not pending (someone else ended it first). */
export async function failWork(
  tx: CommonQueryMethods,
  queue: string,
  jobId: string,
): Promise<boolean> {
  const result = await tx.query(sql.unsafe`
    UPDATE work SET state = 'failed', finished_at = now(), updated_at = now()
    WHERE queue = ${queue} AND job_id = ${jobId} AND state = 'pending'`);
  return result.rowCount === 1;
}

/** Puts failed work back to pending for a replay. Returns the row, or null when it was not failed. */
export async function reopenFailedWork(
  tx: CommonQueryMethods,
  queue: string,
  jobId: string,
  settings: WorkSettings,
): Promise<WorkRow | null> {
  return tx.maybeOne(sql.type(workRow)`
    UPDATE work SET state = 'pending', finished_at = NULL, updated_at = now(), stalls = 0,
                    next_sweep_at = ${nextSweep(settings)}
    WHERE queue = ${queue} AND job_id = ${jobId} AND state = 'failed'
    RETURNING ${workColumns}`);
}

/**
 * Claims up to `limit` pending rows due for a sweep and pushes their next check
 * `settings.sweepAfterMs` away, so successive sweeps walk the whole backlog instead of re-reading
 * its head.
 */
export async function claimDueWork(
  tx: CommonQueryMethods,
  limit: number,
  settings: WorkSettings,
): Promise<readonly WorkRow[]> {
  return tx.any(sql.type(workRow)`
    UPDATE work SET next_sweep_at = ${nextSweep(settings)}
    WHERE id IN (
      SELECT id FROM work
      WHERE state = 'pending' AND next_sweep_at <= now()
      ORDER BY next_sweep_at
      LIMIT ${limit}
      FOR NO KEY UPDATE SKIP LOCKED)
    RETURNING ${workColumns}`);
}

/** The attempts a row's runs counted (the runner's claim counts each) and its stall-outs. */
export async function workCounts(
  tx: CommonQueryMethods,
  id: number,
): Promise<{ attempts: number; stalls: number }> {
  return tx.one(sql.type(z.object({ attempts: z.number(), stalls: z.number() }))`
    SELECT attempts, stalls FROM work WHERE id = ${id}`);
}

/** Counts one more stall-out of a row (the sweeper added its job again after one). */
export async function countStall(tx: CommonQueryMethods, id: number): Promise<void> {
  await tx.query(sql.unsafe`UPDATE work SET stalls = stalls + 1 WHERE id = ${id}`);
}

/**
 * Pending first-attempt batches of the `webhooks` queue, counted per tenant and target
 * (`tenant_id, target, batches`), for the webhook dispatch's fairness. The predicate must stay
 * literal: it is the partial index `work_webhook_batches_pending_idx`'s (migration 0016).
 */
export const pendingWebhookBatches: FragmentSqlToken = sql.fragment`
  SELECT tenant_id, payload->>'targetId' AS target, count(*) AS batches FROM work
  WHERE queue = 'webhooks' AND state = 'pending' AND job_id LIKE 'webhooks.batch.%'
  GROUP BY 1, 2`;

/** Any constant unique to the sweeper: only one sweep runs at a time across all replicas. */
const SWEEP_LOCK_KEY = 0x73776565; // "swee"

/**
 * Takes the sweep's lock for the transaction, if no other replica holds it: true when this
 * replica may sweep now.
 */
export async function trySweepLock(tx: CommonQueryMethods): Promise<boolean> {
  return tx.oneFirst(
    sql.type(
      z.object({ locked: z.boolean() }),
    )`SELECT pg_try_advisory_xact_lock(${SWEEP_LOCK_KEY}) AS locked`,
  );
}
