import type { JobsOptions } from 'bullmq';
import type { z } from 'zod';

/**
 * A queue's contract, shared by the API (which enqueues) and the workers (which process):
 * name, payload schema, default job options and the idempotency key that becomes the job id.
 */
export interface QueueDefinition<P = unknown> {
  /** kebab-case, never ":" (BullMQ uses it as a key separator). */
  readonly name: string;
  readonly schema: z.ZodType<P, z.ZodTypeDef, unknown>;
  /** Defaults for every job of this queue; see {@link DEFAULT_RETENTION}. */
  readonly jobOptions: JobsOptions;
  /** The idempotency key of design §3. Deterministic: the same work always gets the same id. */
  jobId(payload: P): string;
  tenantOf(payload: P): string | undefined;
  /**
   * Durable queues keep a `work` row per job (Postgres-first). Only internal housekeeping
   * (the sweeper's own schedule) is not durable.
   */
  readonly durable: boolean;
}

export type PayloadOf<D> = D extends QueueDefinition<infer P> ? P : never;

/**
 * Bounded retention: Redis keeps the last 1,000 completed jobs for a day and the last 5,000
 * failed ones for a week. PostgreSQL keeps the durable record; Redis only needs enough for the
 * dashboard.
 */
export const DEFAULT_RETENTION = {
  removeOnComplete: { age: 24 * 3600, count: 1_000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 5_000 },
} as const satisfies JobsOptions;

export const defineQueue = <P>(definition: QueueDefinition<P>): QueueDefinition<P> =>
  Object.freeze(definition);

/**
 * Builds a job id from parts. Each part is percent-encoded and "." joins them, so ids never
 * hold ":" (BullMQ's separator) and distinct part lists never collide. The queue name leads,
 * so an id is never all digits (BullMQ reserves those).
 */
export function jobIdFrom(queue: string, ...parts: readonly string[]): string {
  return [queue, ...parts].map(part => encodeURIComponent(part).replace(/\./g, '%2E')).join('.');
}
