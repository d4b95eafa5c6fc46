import { randomUUID } from 'node:crypto';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { OPERATIONAL_EVENT_DATA, type OperationalEventType } from '../domain/event-catalogue.js';
import { completePendingWorks, pendingWebhookBatches, workStates } from './work.js';

/**
 * The webhooks workers' side of webhook deliveries (migration 0008): deliveries are created by
 * the `events` fan-out trigger; the dispatcher turns them into work rows and jobs
 * ({@link claimUndispatched}); the processor loads them ({@link loadDeliveries}) and their
 * target ({@link findWebhookTarget}), attempts them, records every attempt
 * ({@link recordAttempts}), disables failing targets and appends operational events. The API's
 * delivery log (targets, deliveries, attempts, replay) is `db/webhook-log.ts`.
 */

const dispatchedRow = z.object({
  id: z.number(),
  tenant_id: z.string(),
  target: z.string(),
  event_id: z.string(),
});
export type DispatchedDelivery = z.infer<typeof dispatchedRow>;

/**
 * Takes up to `limit` new deliveries off the dispatch queue and answers them: targets in the order
 * of their oldest waiting delivery, each at most `fairness.targetBatches` batches' worth less its
 * batches still pending. A target's deliveries beyond that wait here until some of its batches
 * end. Call in the transaction that also records their work rows (a rollback puts them back),
 * after {@link lockDispatch}, which keeps the pending counts exact; without it, each delivery is
 * still taken once (the DELETE answers only the rows it deleted).
 */
export async function claimUndispatched(
  tx: CommonQueryMethods,
  limit: number,
  fairness: { batchSize: number; targetBatches: number },
): Promise<readonly DispatchedDelivery[]> {
  return tx.any(sql.type(dispatchedRow)`
    WITH RECURSIVE waiting AS (
      -- Each target with deliveries waiting and its oldest one: one index probe per target.
      (SELECT tenant_id, target, delivery_id FROM webhook_dispatch_queue
       ORDER BY tenant_id, target, delivery_id LIMIT 1)
      UNION ALL
      SELECT next.* FROM waiting w CROSS JOIN LATERAL (
        SELECT q.tenant_id, q.target, q.delivery_id FROM webhook_dispatch_queue q
        WHERE (q.tenant_id, q.target) > (w.tenant_id, w.target)
        ORDER BY q.tenant_id, q.target, q.delivery_id LIMIT 1) next
    ), busy AS (${pendingWebhookBatches}), turn AS (
      SELECT w.tenant_id, w.target,
             ${fairness.batchSize}::int * greatest(0,
               ${fairness.targetBatches}::int - coalesce(b.batches, 0)) AS n
      FROM waiting w LEFT JOIN busy b ON b.tenant_id = w.tenant_id AND b.target = w.target
      ORDER BY w.delivery_id
    ), batch AS (
      -- Stops reading targets once it has enough.
      SELECT p.delivery_id FROM turn t CROSS JOIN LATERAL (
        SELECT q.delivery_id FROM webhook_dispatch_queue q
        WHERE q.tenant_id = t.tenant_id AND q.target = t.target
        ORDER BY q.delivery_id LIMIT t.n) p
      LIMIT ${limit}
    ), claimed AS (
      DELETE FROM webhook_dispatch_queue q USING batch
      WHERE q.delivery_id = batch.delivery_id
      RETURNING q.delivery_id
    )
    SELECT d.id, d.tenant_id, d.target, d.event_id
    FROM claimed JOIN webhook_deliveries d ON d.id = claimed.delivery_id
    ORDER BY d.id`);
}

/**
 * Makes the calling transaction the only dispatcher until it ends (a transaction-level advisory
 * lock): {@link claimUndispatched} then never waits on rows another dispatcher is taking, and the
 * per-target counts it reads do not change meanwhile. False when another dispatcher holds it:
 * try again later.
 */
export async function lockDispatch(tx: CommonQueryMethods): Promise<boolean> {
  return tx.oneFirst(sql.type(z.object({ locked: z.boolean() }))`
    SELECT pg_try_advisory_xact_lock(hashtext('nexus.webhook-dispatch')) AS locked`);
}

/** How many new deliveries wait in the dispatch queue, and how old the oldest is (seconds). */
export async function undispatchedDeliveries(
  db: CommonQueryMethods,
): Promise<{ count: number; oldestAgeSeconds: number }> {
  const row = await db.one(sql.type(z.object({ count: z.number(), oldest: z.number() }))`
    SELECT count(*)::int AS count,
           coalesce(extract(epoch FROM now() - (
             SELECT d.created_at FROM webhook_dispatch_queue q
             JOIN webhook_deliveries d ON d.id = q.delivery_id
             ORDER BY q.delivery_id LIMIT 1)), 0)::float8 AS oldest
    FROM webhook_dispatch_queue`);
  return { count: row.count, oldestAgeSeconds: Math.max(0, row.oldest) };
}

export const deliveryRow = z.object({
  id: z.number(),
  tenant_id: z.string(),
  target: z.string(),
  state: z.enum(['pending', 'delivered', 'failed']),
  round_attempts: z.number(),
  created_at: z.string(),
  event_id: z.string(),
  type: z.string(),
  interaction_id: z.string().nullable(),
  seq: z.number().nullable(),
  payload: z.record(z.unknown()),
  occurred_at: z.string(),
  media: z.string().nullable(),
  subtype: z.string().nullable(),
  /** The state of the delivery's work row: only `pending` work may be attempted. */
  work_state: z.string(),
});
export type DeliveryRow = z.infer<typeof deliveryRow>;

/**
 * Deliveries with their events (and the interaction's media) and their work rows' state, by id
 * and job id: the claim check and the load in one read.
 */
export async function loadDeliveries(
  db: CommonQueryMethods,
  items: readonly { id: number; jobId: string }[],
): Promise<Map<number, DeliveryRow>> {
  const rows = await db.any(sql.type(deliveryRow)`
    SELECT d.id, d.tenant_id, d.target, d.state, d.round_attempts, d.created_at,
           e.id AS event_id, e.type, e.interaction_id, e.seq, e.payload, e.occurred_at,
           i.media, i.subtype, w.state AS work_state
    FROM ${sql.unnest(
      items.map(item => [item.id, item.jobId]),
      ['int8', 'text'],
    )} AS v(id, job_id)
    JOIN webhook_deliveries d ON d.id = v.id
    JOIN ${workStates('webhooks')} w ON w.job_id = v.job_id
    JOIN events e ON e.id = d.event_id
    LEFT JOIN interactions i ON i.id = e.interaction_id`);
  return new Map(rows.map(row => [row.id, row]));
}

export type AttemptOutcome = 'delivered' | 'retry' | 'failed' | 'gone';

export interface AttemptRecord {
  deliveryId: number;
  /** The job whose work row a delivered attempt completes; none for a batch's first attempts. */
  jobId: string | undefined;
  tenantId: string;
  target: string;
  startedAt: Date;
  durationMs: number;
  status: number | null;
  error: string | null;
  outcome: AttemptOutcome;
  /** The delivery's state after this attempt. */
  state: 'pending' | 'delivered' | 'failed';
  /** When the next attempt is due (retries). */
  nextAttemptAt: Date | null;
  /** This attempt starts a new round (the delivery was replayed). */
  newRound: boolean;
}

const recordedRow = z.object({
  kind: z.enum(['delivery', 'work']),
  key: z.string(),
  attempts: z.number(),
});

/**
 * Records attempts of many deliveries in one statement (atomic without a transaction of its
 * own): each delivery's state and its attempt rows, the targets' health (`failing_since`,
 * `last_success_at`), and the work rows of delivered ones that have their own job
 * (conditionally). Answers, per attempt, whether its work was still pending (false for a
 * delivered attempt whose work another run had already ended) and the attempt's number.
 */
export async function recordAttempts(
  db: CommonQueryMethods,
  attempts: readonly AttemptRecord[],
): Promise<{ pending: boolean; attempt: number }[]> {
  const delivered = attempts.flatMap(a =>
    a.outcome === 'delivered' && a.jobId !== undefined ? [a.jobId] : [],
  );
  // One delivery may appear twice in a batch (a duplicate run): its row is updated once, by its
  // last attempt, and its attempts are numbered k of n after the attempts it had.
  const counts = new Map<number, number>();
  const ordinals = attempts.map(attempt => {
    const k = (counts.get(attempt.deliveryId) ?? 0) + 1;
    counts.set(attempt.deliveryId, k);
    return k;
  });
  const { ok, failing } = targetHealth(attempts);
  const rows = await db.any(sql.type(recordedRow)`
    WITH v AS (
      SELECT * FROM ${sql.unnest(
        [...lastPerDelivery(attempts)].map(a => [
          a.deliveryId,
          counts.get(a.deliveryId) ?? 1,
          a.newRound,
          a.state,
          a.status,
          a.error,
          a.nextAttemptAt?.toISOString() ?? null,
        ]),
        ['int8', 'int4', 'bool', 'text', 'int4', 'text', 'timestamptz'],
      )} AS v(id, n, new_round, state, status, error, next_at)
    ), u AS (
      UPDATE webhook_deliveries d SET
        attempts = d.attempts + v.n,
        round_attempts = CASE WHEN v.new_round THEN v.n ELSE d.round_attempts + v.n END,
        state = CASE WHEN d.state = 'delivered' THEN 'delivered' ELSE v.state END,
        last_status = v.status, last_error = v.error, next_attempt_at = v.next_at,
        finished_at = CASE WHEN v.state = 'pending' THEN NULL ELSE now() END,
        updated_at = now()
      FROM v WHERE d.id = v.id
      RETURNING d.id, d.attempts
    ), a AS (
      SELECT * FROM ${sql.unnest(
        attempts.map((attempt, index) => [
          attempt.deliveryId,
          ordinals[index] as number,
          counts.get(attempt.deliveryId) ?? 1,
          attempt.startedAt.toISOString(),
          Math.round(attempt.durationMs),
          attempt.status,
          attempt.outcome,
          attempt.error,
        ]),
        ['int8', 'int4', 'int4', 'timestamptz', 'int4', 'int4', 'text', 'text'],
      )} AS a(delivery_id, k, n, started_at, duration_ms, status_code, outcome, error)
    ), logged AS (
      INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code,
                                    outcome, error)
      SELECT a.delivery_id, u.attempts - a.n + a.k, a.started_at, a.duration_ms, a.status_code,
             a.outcome, a.error
      FROM a JOIN u ON u.id = a.delivery_id
      ON CONFLICT DO NOTHING
    ), done AS (${completePendingWorks('webhooks', delivered, { countAttempt: true })}), healthy AS (
      -- A success clears failing_since; written only when it changes (or last_success_at is
      -- older than 10 s), so a busy healthy target is not a hot row.
      UPDATE webhook_targets t SET failing_since = NULL, last_success_at = now(), updated_at = now()
      FROM ${sql.unnest(ok, ['text', 'text'])} AS h(tenant_id, name)
      WHERE t.tenant_id = h.tenant_id AND t.name = h.name
        AND (t.failing_since IS NOT NULL OR t.last_success_at IS NULL
             OR t.last_success_at < now() - interval '10 seconds')
    ), unhealthy AS (
      -- A failure sets failing_since when unset.
      UPDATE webhook_targets t SET failing_since = now(), updated_at = now()
      FROM ${sql.unnest(failing, ['text', 'text'])} AS h(tenant_id, name)
      WHERE t.tenant_id = h.tenant_id AND t.name = h.name AND t.failing_since IS NULL
    )
    SELECT 'delivery' AS kind, id::text AS key, attempts FROM u
    UNION ALL
    SELECT 'work' AS kind, job_id AS key, 0 AS attempts FROM done`);
  const last = new Map<number, number>();
  const completed = new Set<string>();
  for (const row of rows) {
    if (row.kind === 'delivery') last.set(Number(row.key), row.attempts);
    else completed.add(row.key);
  }
  return attempts.map((attempt, index) => {
    const count = counts.get(attempt.deliveryId) ?? 1;
    const after = last.get(attempt.deliveryId) ?? count;
    return {
      pending:
        attempt.outcome !== 'delivered' ||
        attempt.jobId === undefined ||
        completed.has(attempt.jobId),
      attempt: after - count + (ordinals[index] as number),
    };
  });
}

function lastPerDelivery(attempts: readonly AttemptRecord[]): Iterable<AttemptRecord> {
  const byDelivery = new Map<number, AttemptRecord>();
  for (const attempt of attempts) byDelivery.set(attempt.deliveryId, attempt);
  return byDelivery.values();
}

/** The targets with a success among the attempts, and those with failures only. */
function targetHealth(attempts: readonly AttemptRecord[]): {
  ok: [string, string][];
  failing: [string, string][];
} {
  const ok = new Map<string, [string, string]>();
  const failing = new Map<string, [string, string]>();
  for (const attempt of attempts) {
    const key = `${attempt.tenantId}/${attempt.target}`;
    if (attempt.outcome === 'delivered') {
      ok.set(key, [attempt.tenantId, attempt.target]);
      failing.delete(key);
    } else if (!ok.has(key)) failing.set(key, [attempt.tenantId, attempt.target]);
  }
  return { ok: [...ok.values()], failing: [...failing.values()] };
}

export const webhookTargetRow = z.object({
  url: z.string().nullable(),
  data: z.record(z.unknown()),
  secret_sealed: z.string().nullable(),
  enabled: z.boolean(),
  disabled_reason: z.string().nullable(),
  previous_secret_sealed: z.string().nullable(),
  previous_until: z.string().nullable(),
});
export type WebhookTargetRow = z.infer<typeof webhookTargetRow>;

/**
 * A webhook target as the processor delivers to it: its service (URL, data, sealed secret) and
 * its delivery state (enabled, the secret before the last rotation). Undefined when the tenant
 * has no such target.
 */
export async function findWebhookTarget(
  db: CommonQueryMethods,
  tenantId: string,
  name: string,
): Promise<WebhookTargetRow | undefined> {
  const row = await db.maybeOne(sql.type(webhookTargetRow)`
    SELECT s.url, s.data, s.secret_sealed, t.enabled, t.disabled_reason,
           t.previous_secret_sealed, t.previous_until
    FROM services s JOIN webhook_targets t ON t.tenant_id = s.tenant_id AND t.name = s.name
    WHERE s.tenant_id = ${tenantId} AND s.name = ${name}`);
  return row ?? undefined;
}

/**
 * Disables a target when it has failed every attempt for `windowMs` (or at once with
 * `windowMs` 0, for a 410), appending a `webhook.disabled` event. Answers the event's data when
 * this call disabled it, undefined when it was not due or already disabled.
 */
export async function disableTargetIfFailing(
  tx: CommonQueryMethods,
  target: { tenantId: string; name: string },
  reason: string,
  windowMs: number,
): Promise<z.infer<(typeof OPERATIONAL_EVENT_DATA)['webhook.disabled']> | undefined> {
  const row = await tx.maybeOne(sql.type(z.object({ failing_since: z.string().nullable() }))`
    UPDATE webhook_targets SET enabled = false, disabled_at = now(), disabled_reason = ${reason},
                               updated_at = now()
    WHERE tenant_id = ${target.tenantId} AND name = ${target.name} AND enabled
      AND (${windowMs} = 0 OR failing_since < now() - make_interval(secs => ${windowMs / 1000}))
    RETURNING failing_since`);
  if (!row) return undefined;
  const data = { target: target.name, reason, failingSince: row.failing_since };
  await appendOperationalEvent(tx, target.tenantId, 'webhook.disabled', data);
  return data;
}

/** Appends a tenant-level event (no interaction); the fan-out trigger delivers it. */
export async function appendOperationalEvent<T extends OperationalEventType>(
  tx: CommonQueryMethods,
  tenantId: string,
  type: T,
  data: z.infer<(typeof OPERATIONAL_EVENT_DATA)[T]>,
): Promise<string> {
  const id = randomUUID();
  OPERATIONAL_EVENT_DATA[type].parse(data);
  await tx.query(sql.unsafe`
    INSERT INTO events (id, tenant_id, interaction_id, seq, type, payload)
    VALUES (${id}, ${tenantId}, NULL, NULL, ${type}, ${sql.jsonb(data as never)})`);
  return id;
}
