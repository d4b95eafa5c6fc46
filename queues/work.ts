import { sql, type CommonQueryMethods, type DatabasePool } from 'slonik';
import { z } from 'zod';
import type { Logger } from '../lib/logger.js';
import { enqueueDeferredTotal } from '../lib/metrics.js';
import type { PayloadOf, QueueDefinition } from './definition.js';
import { isQueueName, type QueueName, type QueueSet } from './index.js';

/**
 * The Postgres-first rule (design §2). Work is a `work` row committed with state `pending`
 * before any job exists; the job id is the row's key; a processor ends the row with a
 * conditional update, so a duplicate run changes nothing; the sweeper adds the job again when
 * Redis lost it. The SQL for the `work` table lives here because the table is the durable half
 * of the queues.
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

export interface WorkRecord {
  readonly id: number;
  readonly queue: string;
  readonly jobId: string;
  readonly payload: unknown;
  readonly state: WorkState;
  /** False when the same work (same idempotency key) had been recorded before. */
  readonly created: boolean;
  /** Add the job delayed by this much (a retry on a schedule). */
  readonly delayMs?: number | undefined;
}

/** What enqueueing needs: the pool, the producers, and the sweeper's bound. */
export interface EnqueueContext {
  readonly db: DatabasePool;
  readonly queues: QueueSet;
  readonly log: Logger;
  /** How long a pending row waits before the sweeper checks that its job exists. */
  readonly sweepAfterMs: number;
}

const recorded = z.object({ id: z.number(), state: z.enum(['pending', 'done', 'failed']) });

/**
 * Writes the work row inside the caller's transaction. Idempotent on the queue's key: recording
 * the same work twice returns the first row with `created: false`.
 * Call {@link dispatchWork} after the transaction commits.
 */
export async function recordWork<D extends QueueDefinition>(
  tx: CommonQueryMethods,
  definition: D,
  payload: PayloadOf<D>,
  sweepAfterMs: number,
): Promise<WorkRecord> {
  const data: unknown = definition.schema.parse(payload);
  const jobId = definition.jobId(data);
  const tenantId = definition.tenantOf(data) ?? null;
  const inserted = await tx.maybeOne(sql.type(recorded)`
    INSERT INTO work (queue, job_id, tenant_id, payload, next_sweep_at)
    VALUES (${definition.name}, ${jobId}, ${tenantId}, ${sql.jsonb(data as never)},
            now() + make_interval(secs => ${sweepAfterMs / 1000}))
    ON CONFLICT (queue, job_id) DO NOTHING
    RETURNING id, state`);
  if (inserted) return { ...inserted, queue: definition.name, jobId, payload: data, created: true };
  const existing = await tx.one(sql.type(recorded)`
    SELECT id, state FROM work WHERE queue = ${definition.name} AND job_id = ${jobId}`);
  return { ...existing, queue: definition.name, jobId, payload: data, created: false };
}

/**
 * {@link recordWork} for many payloads of one queue in one statement. Work already recorded
 * (same key) is answered with `created: false`.
 */
export async function recordWorkBatch<D extends QueueDefinition>(
  tx: CommonQueryMethods,
  definition: D,
  payloads: readonly PayloadOf<D>[],
  sweepAfterMs: number,
): Promise<WorkRecord[]> {
  if (payloads.length === 0) return [];
  const items = payloads.map(payload => {
    const data: unknown = definition.schema.parse(payload);
    return { data, jobId: definition.jobId(data), tenantId: definition.tenantOf(data) ?? null };
  });
  const inserted = await tx.any(sql.type(recorded.extend({ job_id: z.string() }))`
    INSERT INTO work (queue, job_id, tenant_id, payload, next_sweep_at)
    SELECT ${definition.name}, v.job_id, v.tenant_id, v.payload,
           now() + make_interval(secs => ${sweepAfterMs / 1000})
    FROM ${sql.unnest(
      items.map(item => [item.jobId, item.tenantId, JSON.stringify(item.data)]),
      ['text', 'text', 'jsonb'],
    )} AS v(job_id, tenant_id, payload)
    ON CONFLICT (queue, job_id) DO NOTHING
    RETURNING id, state, job_id`);
  const created = new Map(inserted.map(row => [row.job_id, row]));
  const missing = items.filter(item => !created.has(item.jobId)).map(item => item.jobId);
  const existing =
    missing.length === 0
      ? []
      : await tx.any(sql.type(recorded.extend({ job_id: z.string() }))`
          SELECT id, state, job_id FROM work
          WHERE queue = ${definition.name} AND job_id = ANY(${sql.array(missing, 'text')})`);
  const before = new Map(existing.map(row => [row.job_id, row]));
  return items.flatMap(item => {
    const row = created.get(item.jobId) ?? before.get(item.jobId);
    if (!row) return [];
    return [
      {
        id: row.id,
        state: row.state,
        queue: definition.name,
        jobId: item.jobId,
        payload: item.data,
        created: created.has(item.jobId),
      },
    ];
  });
}

/**
 * Adds the jobs of committed work rows, in one Redis round trip per queue (BullMQ `addBulk`; ids
 * already known to BullMQ are ignored). Never throws: when Redis is not ready or does not answer
 * within 2 s, the rows are left pending for the sweeper, which adds them later.
 */
export async function dispatchWork(
  ctx: EnqueueContext,
  records: readonly WorkRecord[],
): Promise<void> {
  const byQueue = new Map<QueueName, WorkRecord[]>();
  for (const record of records) {
    if (record.state !== 'pending' || !isQueueName(record.queue)) continue;
    const list = byQueue.get(record.queue) ?? [];
    list.push(record);
    byQueue.set(record.queue, list);
  }
  for (const [queue, list] of byQueue) {
    try {
      if (!ctx.queues.ready) throw new Error(`redis is not ready (${ctx.queues.connectionStatus})`);
      await withTimeout(
        ctx.queues.get(queue).addBulk(
          list.map(record => ({
            name: queue,
            data: record.payload,
            opts: {
              jobId: record.jobId,
              ...(record.delayMs ? { delay: Math.round(record.delayMs) } : {}),
            },
          })),
        ),
        ADD_TIMEOUT_MS,
        'adding the jobs to redis timed out',
      );
    } catch (error) {
      enqueueDeferredTotal.inc({ queue }, list.length);
      ctx.log.warn(
        {
          err: error,
          queue,
          jobIds: list.slice(0, 10).map(record => record.jobId),
          count: list.length,
        },
        'enqueue deferred to the sweeper',
      );
      await ctx.db
        .query(
          sql.unsafe`UPDATE work SET next_sweep_at = now()
            WHERE id = ANY(${sql.array(
              list.map(record => record.id),
              'int8',
            )}) AND state = 'pending'`,
        )
        .catch(() => undefined);
    }
  }
}

/**
 * How long a request waits for Redis to accept a job before leaving it to the sweeper. BullMQ
 * waits for a connection that drops mid-command; the request must not.
 */
const ADD_TIMEOUT_MS = 2_000;

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Records work and enqueues it: `within` (optional) writes the rows the work belongs to, in the
 * same transaction as the work row; the job is added only after that transaction commits.
 * When PostgreSQL is down this throws and nothing is stored or enqueued.
 */
export async function enqueueDurably<D extends QueueDefinition>(
  ctx: EnqueueContext,
  definition: D,
  payload: PayloadOf<D>,
  within?: (tx: CommonQueryMethods) => Promise<void>,
): Promise<WorkRecord> {
  const record = await ctx.db.transaction(async tx => {
    await within?.(tx);
    return recordWork(tx, definition, payload, ctx.sweepAfterMs);
  });
  await dispatchWork(ctx, [record]);
  return record;
}

export async function findWork(
  db: CommonQueryMethods,
  queue: string,
  jobId: string,
): Promise<WorkRow | null> {
  return db.maybeOne(sql.type(workRow)`
    SELECT id, queue, job_id, tenant_id, payload, state, created_at, updated_at
    FROM work WHERE queue = ${queue} AND job_id = ${jobId}`);
}

/**
 * Marks several jobs' work done, each only if it is still pending, in one statement (outside a
 * transaction, it commits alone); answers the job ids that were pending. `countAttempt` also
 * counts this attempt on each, for processors that claim their own work (`claimsItself`).
 */
export async function completeWorks(
  db: CommonQueryMethods,
  queue: string,
  jobIds: readonly string[],
  { countAttempt = false }: { countAttempt?: boolean } = {},
): Promise<Set<string>> {
  const attempt = countAttempt
    ? sql.fragment`attempts = attempts + 1, first_attempt_at = coalesce(first_attempt_at, now()),
                   last_attempt_at = now(),`
    : sql.fragment``;
  const done = await db.anyFirst(sql.type(z.object({ job_id: z.string() }))`
    UPDATE work SET ${attempt} state = 'done', finished_at = now(), updated_at = now()
    WHERE queue = ${queue} AND job_id = ANY(${sql.array([...jobIds], 'text')}) AND state = 'pending'
    RETURNING job_id`);
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
  sweepAfterMs: number,
): Promise<WorkRow | null> {
  return tx.maybeOne(sql.type(workRow)`
    UPDATE work SET state = 'pending', finished_at = NULL, updated_at = now(), stalls = 0,
                    next_sweep_at = now() + make_interval(secs => ${sweepAfterMs / 1000})
    WHERE queue = ${queue} AND job_id = ${jobId} AND state = 'failed'
    RETURNING id, queue, job_id, tenant_id, payload, state, created_at, updated_at`);
}

/**
 * Claims up to `limit` pending rows due for a sweep and pushes their next check `afterMs` away,
 * so successive sweeps walk the whole backlog instead of re-reading its head.
 */
export async function claimDueWork(
  tx: CommonQueryMethods,
  limit: number,
  afterMs: number,
): Promise<readonly WorkRow[]> {
  return tx.any(sql.type(workRow)`
    UPDATE work SET next_sweep_at = now() + make_interval(secs => ${afterMs / 1000})
    WHERE id IN (
      SELECT id FROM work
      WHERE state = 'pending' AND next_sweep_at <= now()
      ORDER BY next_sweep_at
      LIMIT ${limit}
      FOR NO KEY UPDATE SKIP LOCKED)
    RETURNING id, queue, job_id, tenant_id, payload, state, created_at, updated_at`);
}

/**
 * Enqueues reopened (replayed) work under its original job ids. The failed job is removed first,
 * or BullMQ would ignore the id; when Redis is down the sweeper enqueues it later.
 */
export async function redispatchWork(ctx: EnqueueContext, rows: readonly WorkRow[]): Promise<void> {
  for (const row of rows) {
    if (!isQueueName(row.queue)) continue;
    await ctx.queues
      .get(row.queue)
      .remove(row.job_id)
      .catch(() => undefined);
  }
  await dispatchWork(
    ctx,
    rows.map(row => ({
      id: row.id,
      queue: row.queue,
      jobId: row.job_id,
      payload: row.payload,
      state: row.state,
      created: false,
    })),
  );
}
