import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { FailureCode } from '../../lib/errors.js';

/**
 * The `undelivered` table: one record per job that failed for good, with its catalogue `code`
 * and human `reason`; listed, filtered and replayed by the operator's API.
 */

export const undeliveredRow = z.object({
  id: z.number(),
  queue: z.string(),
  job_id: z.string(),
  tenant_id: z.string().nullable(),
  /** A code of the catalogue's failed-work table (docs/errors.md). */
  code: z.string(),
  reason: z.string(),
  attempts: z.number(),
  failures: z.number(),
  first_attempt_at: z.string().nullable(),
  last_attempt_at: z.string(),
  replayed_at: z.string().nullable(),
  replays: z.number(),
});
export type UndeliveredRow = z.infer<typeof undeliveredRow>;

const columns = sql.fragment`id, queue, job_id, tenant_id, code, reason, attempts, failures,
  first_attempt_at, last_attempt_at, replayed_at, replays`;

export interface UndeliveredFailure {
  queue: string;
  jobId: string;
  tenantId: string | null;
  /** Why, as a catalogue code (the generic one for a failure without its own). */
  code: FailureCode;
  /** Why, in words (the code's detail). */
  reason: string;
  attempts: number;
  firstAttemptAt: Date | null;
  lastAttemptAt: Date;
}

/** Records a final failure; a replayed job that fails again updates its row. */
export async function upsertUndelivered(
  tx: CommonQueryMethods,
  failure: UndeliveredFailure,
): Promise<void> {
  await tx.query(sql.unsafe`
    INSERT INTO undelivered (queue, job_id, tenant_id, code, reason, attempts, first_attempt_at, last_attempt_at)
    VALUES (${failure.queue}, ${failure.jobId}, ${failure.tenantId}, ${failure.code},
            ${failure.reason.slice(0, 2_000)}, ${failure.attempts},
            ${failure.firstAttemptAt?.toISOString() ?? null}, ${failure.lastAttemptAt.toISOString()})
    ON CONFLICT (queue, job_id) DO UPDATE SET
      code = EXCLUDED.code,
      reason = EXCLUDED.reason,
      attempts = EXCLUDED.attempts,
      failures = undelivered.failures + 1,
      last_attempt_at = EXCLUDED.last_attempt_at,
      replayed_at = NULL`);
}

export interface UndeliveredFilter {
  tenantId?: string | undefined;
  queue?: string | undefined;
  /** Failures whose last attempt is at or after this instant. */
  since?: Date | undefined;
  /** Only rows not replayed since they last failed. */
  openOnly?: boolean | undefined;
}

function where(filter: UndeliveredFilter) {
  const conditions = [sql.fragment`TRUE`];
  if (filter.tenantId !== undefined) conditions.push(sql.fragment`tenant_id = ${filter.tenantId}`);
  if (filter.queue !== undefined) conditions.push(sql.fragment`queue = ${filter.queue}`);
  if (filter.since !== undefined) {
    conditions.push(sql.fragment`last_attempt_at >= ${filter.since.toISOString()}`);
  }
  if (filter.openOnly) conditions.push(sql.fragment`replayed_at IS NULL`);
  return sql.join(conditions, sql.fragment` AND `);
}

/** Newest first, keyset-paginated by id (`before` = the last id of the previous page). */
export async function listUndelivered(
  db: CommonQueryMethods,
  filter: UndeliveredFilter,
  page: { limit: number; before?: number | undefined },
): Promise<readonly UndeliveredRow[]> {
  const before = page.before === undefined ? sql.fragment`TRUE` : sql.fragment`id < ${page.before}`;
  return db.any(sql.type(undeliveredRow)`
    SELECT ${columns} FROM undelivered
    WHERE ${where(filter)} AND ${before}
    ORDER BY id DESC
    LIMIT ${page.limit}`);
}

export async function findUndelivered(
  db: CommonQueryMethods,
  id: number,
): Promise<UndeliveredRow | null> {
  return db.maybeOne(sql.type(undeliveredRow)`SELECT ${columns} FROM undelivered WHERE id = ${id}`);
}

/** Locks the open rows a bulk replay will reopen, oldest first. */
export async function lockOpenUndelivered(
  tx: CommonQueryMethods,
  filter: UndeliveredFilter,
  limit: number,
): Promise<readonly UndeliveredRow[]> {
  return tx.any(sql.type(undeliveredRow)`
    SELECT ${columns} FROM undelivered
    WHERE ${where({ ...filter, openOnly: true })}
    ORDER BY last_attempt_at, id
    LIMIT ${limit}
    FOR NO KEY UPDATE SKIP LOCKED`);
}

export async function markReplayed(tx: CommonQueryMethods, ids: readonly number[]): Promise<void> {
  if (ids.length === 0) return;
  await tx.query(sql.unsafe`
    UPDATE undelivered SET replayed_at = now(), replays = replays + 1
    WHERE id = ANY(${sql.array(ids, 'int8')})`);
}

/** Marks the open records of these jobs replayed (replays started from another API). */
export async function markJobsReplayed(
  tx: CommonQueryMethods,
  queue: string,
  jobIds: readonly string[],
): Promise<void> {
  if (jobIds.length === 0) return;
  await tx.query(sql.unsafe`
    UPDATE undelivered SET replayed_at = now(), replays = replays + 1
    WHERE queue = ${queue} AND job_id = ANY(${sql.array([...jobIds], 'text')})`);
}
