import type { CommonQueryMethods, DatabasePool } from 'slonik';
import {
  insertWork,
  insertWorks,
  sweepSoon,
  workSettings,
  type WorkRow,
  type WorkSettings,
  type WorkState,
} from '../db/work.js';
import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import { enqueueDeferredTotal } from '../lib/metrics.js';
import type { PayloadOf, QueueDefinition } from './definition.js';
import { isQueueName, type QueueName, type QueueSet } from './index.js';

/**
 * The Postgres-first rule (design §2). Work is a `work` row committed with state `pending`
 * before any job exists; the job id is the row's key; a processor ends the row with a
 * conditional update, so a duplicate run changes nothing; the sweeper adds the job again when
 * Redis lost it. This file is the BullMQ side (record a queue's payload, add its jobs, add them
 * again on a replay); the SQL on the `work` table is `db/work.ts`'s.
 */

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

/**
 * What enqueueing needs: the pool, the producers, and the work settings (the sweeper's bound),
 * built once per process part with {@link enqueueContext}. Pass it wherever work is recorded.
 */
export interface EnqueueContext extends WorkSettings {
  readonly db: DatabasePool;
  readonly queues: QueueSet;
  readonly log: Logger;
}

/** The context of a process part, its settings from the configuration. */
export function enqueueContext(
  deps: { db: DatabasePool; queues: QueueSet; log: Logger },
  config: Pick<Config, 'workers'>,
): EnqueueContext {
  return { db: deps.db, queues: deps.queues, log: deps.log, ...workSettings(config) };
}

/**
 * Writes the work row inside the caller's transaction. Idempotent on the queue's key: recording
 * the same work twice returns the first row with `created: false`.
 * Call {@link dispatchWork} after the transaction commits. `settings` is the caller's
 * {@link EnqueueContext}.
 */
export async function recordWork<D extends QueueDefinition>(
  tx: CommonQueryMethods,
  definition: D,
  payload: PayloadOf<D>,
  settings: WorkSettings,
): Promise<WorkRecord> {
  const data: unknown = definition.schema.parse(payload);
  const jobId = definition.jobId(data);
  const row = await insertWork(
    tx,
    definition.name,
    { jobId, tenantId: definition.tenantOf(data) ?? null, payload: data },
    settings,
  );
  return { ...row, queue: definition.name, jobId, payload: data };
}

/**
 * {@link recordWork} for many payloads of one queue in one statement. Work already recorded
 * (same key) is answered with `created: false`.
 */
export async function recordWorkBatch<D extends QueueDefinition>(
  tx: CommonQueryMethods,
  definition: D,
  payloads: readonly PayloadOf<D>[],
  settings: WorkSettings,
): Promise<WorkRecord[]> {
  if (payloads.length === 0) return [];
  const items = payloads.map(payload => {
    const data: unknown = definition.schema.parse(payload);
    return {
      payload: data,
      jobId: definition.jobId(data),
      tenantId: definition.tenantOf(data) ?? null,
    };
  });
  const { created, before } = await insertWorks(tx, definition.name, items, settings);
  return items.flatMap(item => {
    const row = created.get(item.jobId) ?? before.get(item.jobId);
    if (!row) return [];
    return [
      {
        id: row.id,
        state: row.state,
        queue: definition.name,
        jobId: item.jobId,
        payload: item.payload,
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
      await sweepSoon(
        ctx.db,
        list.map(record => record.id),
      ).catch(() => undefined);
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
    return recordWork(tx, definition, payload, ctx);
  });
  await dispatchWork(ctx, [record]);
  return record;
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
