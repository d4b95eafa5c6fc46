import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/** SQL on `routing_queues` and their endpoints and agents: the definitions of the queues agents serve. */

export const queueView = z.object({
  tenant_id: z.string(),
  name: z.string(),
  offer_timeout_ms: z.number(),
  last_agent_wait_ms: z.number(),
  bot_first: z.boolean(),
  endpoints: z.array(z.string()),
  agents: z.array(z.string()),
  waiting: z.number(),
  oldest_wait_ms: z.number().nullable(),
  agents_ready: z.number(),
  assigned: z.number(),
  offered_total: z.number(),
  accepted_total: z.number(),
  abandoned_total: z.number(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type QueueView = z.infer<typeof queueView>;

export interface QueueDefinition {
  tenantId: string;
  name: string;
  offerTimeoutMs: number;
  lastAgentWaitMs: number;
  botFirst: boolean;
  endpoints: readonly string[];
  agents: readonly string[];
}

/**
 * Creates or replaces a queue with its endpoints and agents. Throws slonik's
 * UniqueIntegrityConstraintViolationError when an endpoint leads to another queue already.
 */
export async function upsertQueue(
  tx: CommonQueryMethods,
  queue: QueueDefinition,
): Promise<boolean> {
  const created = await tx.oneFirst(sql.type(z.object({ created: z.boolean() }))`
    INSERT INTO routing_queues (tenant_id, name, offer_timeout_ms, last_agent_wait_ms, bot_first)
    VALUES (${queue.tenantId}, ${queue.name}, ${queue.offerTimeoutMs}, ${queue.lastAgentWaitMs},
            ${queue.botFirst})
    ON CONFLICT (tenant_id, name) DO UPDATE SET
      offer_timeout_ms = EXCLUDED.offer_timeout_ms, last_agent_wait_ms = EXCLUDED.last_agent_wait_ms,
      bot_first = EXCLUDED.bot_first, updated_at = now()
    RETURNING (xmax = 0) AS created`);
  await tx.query(sql.unsafe`
    DELETE FROM routing_queue_endpoints WHERE tenant_id = ${queue.tenantId} AND queue_name = ${queue.name}`);
  await tx.query(sql.unsafe`
    DELETE FROM routing_queue_agents WHERE tenant_id = ${queue.tenantId} AND queue_name = ${queue.name}`);
  if (queue.endpoints.length > 0) {
    await tx.query(sql.unsafe`
      INSERT INTO routing_queue_endpoints (tenant_id, endpoint, queue_name)
      SELECT ${queue.tenantId}, e, ${queue.name} FROM unnest(${sql.array([...queue.endpoints], 'text')}::text[]) AS e`);
  }
  if (queue.agents.length > 0) {
    await tx.query(sql.unsafe`
      INSERT INTO routing_queue_agents (tenant_id, queue_name, agent_id)
      SELECT ${queue.tenantId}, ${queue.name}, a FROM unnest(${sql.array([...queue.agents], 'uuid')}::uuid[]) AS a`);
  }
  return created;
}

/**
 * Queues with their endpoints, agents and live statistics: of one tenant (and one name), or of
 * every tenant when `tenantId` is undefined (the metrics).
 */
export async function listQueues(
  db: CommonQueryMethods,
  tenantId?: string,
  name?: string,
): Promise<readonly QueueView[]> {
  const where = [sql.fragment`TRUE`];
  if (tenantId !== undefined) where.push(sql.fragment`q.tenant_id = ${tenantId}`);
  if (name !== undefined) where.push(sql.fragment`q.name = ${name}`);
  return db.any(sql.type(queueView)`
    SELECT q.tenant_id, q.name, q.offer_timeout_ms, q.last_agent_wait_ms, q.bot_first, q.created_at, q.updated_at,
      coalesce((SELECT array_agg(endpoint ORDER BY endpoint) FROM routing_queue_endpoints e
                WHERE e.tenant_id = q.tenant_id AND e.queue_name = q.name), '{}') AS endpoints,
      coalesce((SELECT array_agg(agent_id::text ORDER BY agent_id) FROM routing_queue_agents a
                WHERE a.tenant_id = q.tenant_id AND a.queue_name = q.name), '{}') AS agents,
      (SELECT count(*)::int FROM interactions i WHERE i.tenant_id = q.tenant_id AND i.queue_name = q.name
         AND i.routing_state = 'queued' AND i.state = 'open') AS waiting,
      (SELECT (extract(epoch FROM now() - min(i.queued_at)) * 1000)::bigint FROM interactions i
         WHERE i.tenant_id = q.tenant_id AND i.queue_name = q.name
           AND i.routing_state = 'queued' AND i.state = 'open') AS oldest_wait_ms,
      (SELECT count(*)::int FROM routing_queue_agents a JOIN agents g ON g.id = a.agent_id
         WHERE a.tenant_id = q.tenant_id AND a.queue_name = q.name AND g.ready AND g.enabled) AS agents_ready,
      (SELECT count(*)::int FROM interactions i WHERE i.tenant_id = q.tenant_id AND i.queue_name = q.name
         AND i.routing_state = 'assigned' AND i.state = 'open') AS assigned,
      d.offered_total, d.accepted_total, d.abandoned_total
    FROM routing_queues q
    LEFT JOIN LATERAL (
      SELECT count(*) FILTER (WHERE decision = 'offered')::int AS offered_total,
             count(*) FILTER (WHERE decision = 'accepted')::int AS accepted_total,
             count(*) FILTER (WHERE decision = 'abandoned')::int AS abandoned_total
      FROM routing_decisions rd WHERE rd.tenant_id = q.tenant_id AND rd.queue_name = q.name
    ) d ON true
    WHERE ${sql.join(where, sql.fragment` AND `)}
    ORDER BY q.tenant_id, q.name`);
}

/** Deletes a queue; interactions waiting in it stop waiting (they stay open, unrouted). */
export async function deleteQueue(
  tx: CommonQueryMethods,
  tenantId: string,
  name: string,
): Promise<boolean> {
  await tx.query(sql.unsafe`
    UPDATE interactions SET routing_state = NULL
    WHERE tenant_id = ${tenantId} AND queue_name = ${name} AND routing_state = 'queued'`);
  const result = await tx.query(sql.unsafe`
    DELETE FROM routing_queues WHERE tenant_id = ${tenantId} AND name = ${name}`);
  return result.rowCount > 0;
}
