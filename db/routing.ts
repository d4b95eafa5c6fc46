import { sql, type CommonQueryMethods, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { appendEvents, type InteractionEvent } from './conversation.js';
import { joinInteraction } from './queries/chat.js';

/**
 * Routing: an interaction whose endpoint leads to a queue waits there (`routing_state` queued)
 * until an agent who serves the queue is ready and has room; the agent idle the longest gets it,
 * and the queue drains oldest first. Correct with any number of API and worker replicas routing
 * at once: the interaction is taken with `FOR UPDATE SKIP LOCKED` (never assigned twice) and the
 * agent row is locked before its load is counted (never above capacity).
 */

/**
 * Puts a new interaction in the queue its endpoint leads to; the queue's name, or undefined. It
 * waits from when the customer started it, so the queue drains in the order customers arrived.
 */
export async function queueInteraction(
  tx: CommonQueryMethods,
  interaction: { id: string; tenant_id: string; endpoint: string | null },
): Promise<string | undefined> {
  if (!interaction.endpoint) return undefined;
  const queue = await tx.maybeOneFirst(sql.type(z.object({ queue_name: z.string() }))`
    SELECT queue_name FROM routing_queue_endpoints
    WHERE tenant_id = ${interaction.tenant_id} AND endpoint = ${interaction.endpoint}`);
  if (!queue) return undefined;
  await tx.query(sql.unsafe`
    UPDATE interactions SET queue_name = ${queue}, routing_state = 'queued', queued_at = created_at
    WHERE id = ${interaction.id} AND routing_state IS NULL`);
  await recordDecision(tx, {
    tenantId: interaction.tenant_id,
    interactionId: interaction.id,
    queue,
    agentId: null,
    decision: 'queued',
    reason: `endpoint ${interaction.endpoint} leads to queue ${queue}`,
    waitedMs: 0,
  });
  return queue;
}

interface Decision {
  tenantId: string;
  interactionId: string;
  queue: string | null;
  agentId: string | null;
  decision: string;
  reason: string;
  waitedMs: number | null;
}

async function recordDecision(tx: CommonQueryMethods, decision: Decision): Promise<void> {
  await tx.query(sql.unsafe`
    INSERT INTO routing_decisions (tenant_id, interaction_id, queue_name, agent_id, decision, reason, waited_ms)
    VALUES (${decision.tenantId}, ${decision.interactionId}, ${decision.queue}, ${decision.agentId},
            ${decision.decision}, ${decision.reason}, ${decision.waitedMs})`);
}

const candidate = z.object({ id: z.string(), name: z.string(), capacity: z.number() });

/**
 * Assigns the queue's waiting interactions, oldest first, to ready agents with room, idle
 * longest first, until one or the other runs out. Each assignment is its own transaction;
 * `publish` gets its events after the commit. Answers how many were assigned.
 */
export async function routeQueue(
  db: DatabasePool,
  tenantId: string,
  queue: string,
  publish: (events: InteractionEvent[]) => void,
  limit = 500,
): Promise<number> {
  let assigned = 0;
  while (assigned < limit) {
    const events = await db.transaction(async tx => {
      const waiting = await tx.maybeOne(
        sql.type(z.object({ id: z.string(), waited_ms: z.number() }))`
          SELECT id, (extract(epoch FROM now() - queued_at) * 1000)::bigint AS waited_ms
          FROM interactions
          WHERE tenant_id = ${tenantId} AND queue_name = ${queue}
            AND routing_state = 'queued' AND state = 'open'
          ORDER BY queued_at, id LIMIT 1
          FOR UPDATE SKIP LOCKED`,
      );
      if (!waiting) return undefined;
      const candidates = await tx.any(sql.type(candidate)`
        SELECT a.id, a.name, a.capacity FROM agents a
        JOIN routing_queue_agents qa
          ON qa.agent_id = a.id AND qa.tenant_id = ${tenantId} AND qa.queue_name = ${queue}
        WHERE a.ready AND a.enabled AND a.capacity > 0
        ORDER BY a.idle_since NULLS FIRST, a.id`);
      for (const agent of candidates) {
        // Lock the agent, then count its load: nobody else can assign to it until we commit.
        const locked = await tx.maybeOne(sql.type(z.object({ id: z.string() }))`
          SELECT id FROM agents WHERE id = ${agent.id} AND ready AND enabled FOR UPDATE SKIP LOCKED`);
        if (!locked) continue;
        const load = await tx.oneFirst(sql.type(z.object({ n: z.number() }))`
          SELECT count(*)::int AS n FROM interactions
          WHERE assigned_agent_id = ${agent.id} AND routing_state = 'assigned' AND state = 'open'`);
        if (load >= agent.capacity) continue;
        await tx.query(sql.unsafe`
          UPDATE interactions SET routing_state = 'assigned', assigned_agent_id = ${agent.id},
                                  updated_at = now()
          WHERE id = ${waiting.id}`);
        await tx.query(sql.unsafe`UPDATE agents SET idle_since = now() WHERE id = ${agent.id}`);
        const reason = `idle longest among ready agents of ${queue} with room (${load + 1}/${agent.capacity})`;
        await recordDecision(tx, {
          tenantId,
          interactionId: waiting.id,
          queue,
          agentId: agent.id,
          decision: 'assigned',
          reason,
          waitedMs: waiting.waited_ms,
        });
        const joined = (await joinInteraction(tx, waiting.id, agent.id))
          ? [
              {
                type: 'participant.joined' as const,
                payload: { participant: { id: agent.id, type: 'agent', nickname: agent.name } },
              },
            ]
          : [];
        return appendEvents(tx, waiting.id, [
          ...joined,
          {
            type: 'interaction.assigned',
            payload: {
              agent: { id: agent.id, nickname: agent.name },
              queue,
              reason,
              waitedMs: waiting.waited_ms,
            },
          },
        ]);
      }
      return undefined;
    });
    if (!events) break;
    publish(events);
    assigned++;
  }
  return assigned;
}

/** The queues an agent serves (to drain when it becomes ready or frees capacity). */
export async function queuesOfAgent(
  db: CommonQueryMethods,
  agentId: string,
): Promise<{ tenantId: string; queue: string }[]> {
  const rows = await db.any(sql.type(z.object({ tenant_id: z.string(), queue_name: z.string() }))`
    SELECT tenant_id, queue_name FROM routing_queue_agents WHERE agent_id = ${agentId}`);
  return rows.map(row => ({ tenantId: row.tenant_id, queue: row.queue_name }));
}

/** Routes every queue that has interactions waiting. Answers how many were assigned. */
export async function routeWaiting(
  db: DatabasePool,
  publish: (events: InteractionEvent[]) => void,
): Promise<number> {
  const queues = await db.any(sql.type(z.object({ tenant_id: z.string(), queue_name: z.string() }))`
    SELECT DISTINCT tenant_id, queue_name FROM interactions
    WHERE routing_state = 'queued' AND state = 'open'`);
  let assigned = 0;
  for (const row of queues) {
    assigned += await routeQueue(db, row.tenant_id, row.queue_name, publish);
  }
  return assigned;
}
