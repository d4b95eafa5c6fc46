import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/**
 * The API's side of webhook deliveries (migration 0008): each target's delivery row kept in step
 * with its service, the delivery log (targets and their health, deliveries, every attempt), and
 * recovery (replay of failed deliveries, the events a target missed, re-enabling a target). What
 * the webhooks workers write is `db/webhook-dispatch.ts`.
 */

const targetState = z.object({
  enabled: z.boolean(),
  previous_secret_sealed: z.string().nullable(),
  previous_until: z.string().nullable(),
});

/**
 * Keeps a target's delivery row in step with its service (call in the service's transaction).
 * A replaced target starts afresh: enabled, not failing. When the secret changed, the previous
 * sealed secret stays valid for `graceMs`.
 */
export async function syncWebhookTarget(
  tx: CommonQueryMethods,
  target: {
    tenantId: string;
    name: string;
    eventTypes: readonly string[] | null;
    /** The secret replaced by this change, when it changed. */
    previous?: { sealed: string; keyId: string | null; graceMs: number } | undefined;
  },
): Promise<void> {
  const types = target.eventTypes ? sql.array([...target.eventTypes], 'text') : null;
  const previous = target.previous;
  await tx.query(sql.unsafe`
    INSERT INTO webhook_targets (tenant_id, name, event_types, previous_secret_sealed,
                                 previous_secret_key_id, previous_until)
    VALUES (${target.tenantId}, ${target.name}, ${types}, ${previous?.sealed ?? null},
            ${previous?.keyId ?? null},
            ${previous ? sql.fragment`now() + make_interval(secs => ${previous.graceMs / 1000})` : null})
    ON CONFLICT (tenant_id, name) DO UPDATE SET
      event_types = EXCLUDED.event_types, enabled = true, disabled_at = NULL,
      disabled_reason = NULL, failing_since = NULL, updated_at = now(),
      previous_secret_sealed = ${previous ? sql.fragment`EXCLUDED.previous_secret_sealed` : sql.fragment`webhook_targets.previous_secret_sealed`},
      previous_secret_key_id = ${previous ? sql.fragment`EXCLUDED.previous_secret_key_id` : sql.fragment`webhook_targets.previous_secret_key_id`},
      previous_until = ${previous ? sql.fragment`EXCLUDED.previous_until` : sql.fragment`webhook_targets.previous_until`}`);
}

export async function findTargetState(
  db: CommonQueryMethods,
  tenantId: string,
  name: string,
): Promise<z.infer<typeof targetState> | null> {
  return db.maybeOne(sql.type(targetState)`
    SELECT enabled, previous_secret_sealed, previous_until FROM webhook_targets
    WHERE tenant_id = ${tenantId} AND name = ${name}`);
}

export const targetView = z.object({
  name: z.string(),
  event_types: z.array(z.string()).nullable(),
  enabled: z.boolean(),
  disabled_at: z.string().nullable(),
  disabled_reason: z.string().nullable(),
  failing_since: z.string().nullable(),
  last_success_at: z.string().nullable(),
  previous_until: z.string().nullable(),
  pending: z.number(),
  failed: z.number(),
});

export async function listTargets(
  db: CommonQueryMethods,
  tenantId: string,
): Promise<readonly z.infer<typeof targetView>[]> {
  return db.any(sql.type(targetView)`
    SELECT t.name, t.event_types, t.enabled, t.disabled_at, t.disabled_reason, t.failing_since,
           t.last_success_at,
           CASE WHEN t.previous_until > now() THEN t.previous_until END AS previous_until,
           (SELECT count(*) FROM webhook_deliveries d
            WHERE d.tenant_id = t.tenant_id AND d.target = t.name AND d.state = 'pending')::int AS pending,
           (SELECT count(*) FROM webhook_deliveries d
            WHERE d.tenant_id = t.tenant_id AND d.target = t.name AND d.state = 'failed')::int AS failed
    FROM webhook_targets t WHERE t.tenant_id = ${tenantId} ORDER BY t.name`);
}

export const deliveryView = z.object({
  id: z.number(),
  target: z.string(),
  event_id: z.string(),
  event_type: z.string(),
  interaction_id: z.string().nullable(),
  state: z.enum(['pending', 'delivered', 'failed']),
  attempts: z.number(),
  last_status: z.number().nullable(),
  last_error: z.string().nullable(),
  next_attempt_at: z.string().nullable(),
  created_at: z.string(),
  finished_at: z.string().nullable(),
});
export type DeliveryView = z.infer<typeof deliveryView>;

const deliveryViewColumns = sql.fragment`d.id, d.target, d.event_id, e.type AS event_type,
  e.interaction_id, d.state, d.attempts, d.last_status, d.last_error, d.next_attempt_at,
  d.created_at, d.finished_at`;

export async function listDeliveries(
  db: CommonQueryMethods,
  tenantId: string,
  filter: {
    target?: string | undefined;
    state?: string | undefined;
    since?: Date | undefined;
    before?: number | undefined;
    limit: number;
  },
): Promise<readonly DeliveryView[]> {
  const conditions = [sql.fragment`d.tenant_id = ${tenantId}`];
  if (filter.target) conditions.push(sql.fragment`d.target = ${filter.target}`);
  if (filter.state) conditions.push(sql.fragment`d.state = ${filter.state}`);
  if (filter.since) conditions.push(sql.fragment`d.created_at >= ${filter.since.toISOString()}`);
  if (filter.before) conditions.push(sql.fragment`d.id < ${filter.before}`);
  return db.any(sql.type(deliveryView)`
    SELECT ${deliveryViewColumns}
    FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
    WHERE ${sql.join(conditions, sql.fragment` AND `)}
    ORDER BY d.id DESC LIMIT ${filter.limit}`);
}

export async function findDelivery(
  db: CommonQueryMethods,
  tenantId: string,
  id: number,
): Promise<DeliveryView | null> {
  return db.maybeOne(sql.type(deliveryView)`
    SELECT ${deliveryViewColumns}
    FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
    WHERE d.tenant_id = ${tenantId} AND d.id = ${id}`);
}

export const attemptView = z.object({
  attempt: z.number(),
  started_at: z.string(),
  duration_ms: z.number(),
  status_code: z.number().nullable(),
  outcome: z.string(),
  error: z.string().nullable(),
});

export async function listAttempts(
  db: CommonQueryMethods,
  deliveryId: number,
): Promise<readonly z.infer<typeof attemptView>[]> {
  return db.any(sql.type(attemptView)`
    SELECT attempt, started_at, duration_ms, status_code, outcome, error
    FROM webhook_attempts WHERE delivery_id = ${deliveryId} ORDER BY attempt`);
}

/** Puts failed deliveries back to pending for a new round (the caller reopens their work). */
export async function reopenDeliveries(
  tx: CommonQueryMethods,
  ids: readonly number[],
): Promise<void> {
  if (ids.length === 0) return;
  await tx.query(sql.unsafe`
    UPDATE webhook_deliveries SET state = 'pending', round_attempts = 0, next_attempt_at = NULL,
                                  finished_at = NULL, updated_at = now()
    WHERE id = ANY(${sql.array([...ids], 'int8')}) AND state = 'failed'`);
}

/** Failed deliveries of a target created at or after `since`, oldest first, locked. */
export async function lockFailedDeliveries(
  tx: CommonQueryMethods,
  tenantId: string,
  target: string,
  since: Date,
  limit: number,
): Promise<readonly { id: number; event_id: string }[]> {
  return tx.any(sql.type(z.object({ id: z.number(), event_id: z.string() }))`
    SELECT id, event_id FROM webhook_deliveries
    WHERE tenant_id = ${tenantId} AND target = ${target} AND state = 'failed'
      AND created_at >= ${since.toISOString()}
    ORDER BY id LIMIT ${limit} FOR NO KEY UPDATE SKIP LOCKED`);
}

/**
 * Creates deliveries for the events since `since` that the target's filter accepts and that it
 * never got (it was disabled, or did not exist yet). Answers how many.
 */
export async function fanOutMissed(
  tx: CommonQueryMethods,
  tenantId: string,
  target: string,
  since: Date,
): Promise<number> {
  const result = await tx.query(sql.unsafe`
    INSERT INTO webhook_deliveries (tenant_id, target, event_id)
    SELECT e.tenant_id, t.name, e.id
    FROM events e JOIN webhook_targets t ON t.tenant_id = e.tenant_id AND t.name = ${target}
    WHERE e.tenant_id = ${tenantId} AND e.occurred_at >= ${since.toISOString()}
      AND (t.event_types IS NULL OR e.type = ANY (t.event_types))
      AND (e.interaction_id IS NOT NULL OR e.payload->>'target' IS DISTINCT FROM t.name)
      -- As the fan-out trigger (migration 0022): a connector never gets suggestions back.
      AND NOT (e.type = 'assist.suggestion'
               AND (t.name = 'WebhookTransportTarget-ai-connector'
                    OR t.name IS NOT DISTINCT FROM ('WebhookTransportTarget-' || (e.payload->>'connector'))))
    ORDER BY e.occurred_at
    ON CONFLICT DO NOTHING`);
  return result.rowCount;
}

/** Re-enables a disabled target. False when there is no such target. */
export async function enableTarget(
  db: CommonQueryMethods,
  tenantId: string,
  name: string,
): Promise<boolean> {
  const result = await db.query(sql.unsafe`
    UPDATE webhook_targets SET enabled = true, disabled_at = NULL, disabled_reason = NULL,
                               failing_since = NULL, updated_at = now()
    WHERE tenant_id = ${tenantId} AND name = ${name}`);
  return result.rowCount === 1;
}
