import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { appendEvents, type InteractionEvent } from '../conversation.js';
import { AppError } from '../../lib/errors.js';
import { queuedEvent, recordDecision } from './decisions.js';

/**
 * What an agent or the customer does to a routed chat besides answering an offer: the agent parks
 * it (and the customer's next message requeues it) or transfers it to another queue or agent; a
 * chat that ends while it waits is abandoned. Each answers the queue to route (the caller routes
 * it after the commit: queues/routing.ts). How routing works: db/routing/queueing.ts.
 */

/**
 * The agent parks its chat (`asynchold`): its capacity is free again; the chat waits for the
 * customer, and goes back to this agent first when they write. Answers the queue to route.
 */
export async function parkInteraction(
  tx: CommonQueryMethods,
  interaction: { id: string; tenantId: string },
  agent: { id: string; name: string },
): Promise<{ queue: string | null; events: InteractionEvent[] }> {
  const row = await tx.maybeOne(sql.type(z.object({ queue_name: z.string().nullable() }))`
    UPDATE interactions SET routing_state = 'parked', preferred_agent_id = ${agent.id},
           preferred_until = NULL, updated_at = now()
    WHERE id = ${interaction.id} AND tenant_id = ${interaction.tenantId} AND state = 'open'
      AND routing_state = 'assigned' AND assigned_agent_id = ${agent.id}
    RETURNING queue_name`);
  if (!row) throw new AppError('NEXUS_ERR_NOT_ASSIGNED');
  await recordDecision(tx, {
    tenantId: interaction.tenantId,
    interactionId: interaction.id,
    queue: row.queue_name,
    agentId: agent.id,
    decision: 'parked',
    reason: 'the agent parked the chat until the customer writes',
    waitedMs: null,
  });
  const events = await appendEvents(tx, interaction.id, [
    { type: 'interaction.parked', payload: { agent: { id: agent.id, nickname: agent.name } } },
  ]);
  return { queue: row.queue_name, events };
}

/**
 * Parked chats among `interactionIds` whose customer wrote again wait in their queue again,
 * for their agent first. Answers the queues to route.
 */
export async function requeueParked(
  tx: CommonQueryMethods,
  interactionIds: readonly string[],
): Promise<{ queues: { tenantId: string; queue: string }[]; events: InteractionEvent[] }> {
  if (interactionIds.length === 0) return { queues: [], events: [] };
  const events: InteractionEvent[] = [];
  const rows = await tx.any(
    sql.type(
      z.object({
        id: z.string(),
        tenant_id: z.string(),
        queue_name: z.string(),
        agent: z.string().nullable(),
      }),
    )`
      UPDATE interactions i SET routing_state = 'queued', queued_at = now(), assigned_agent_id = NULL,
             preferred_agent_id = coalesce(i.preferred_agent_id, i.assigned_agent_id),
             preferred_until = now() + make_interval(secs => q.last_agent_wait_ms / 1000.0),
             updated_at = now()
      FROM routing_queues q
      WHERE i.id = ANY(${sql.array([...interactionIds], 'uuid')}) AND i.routing_state = 'parked'
        AND i.state = 'open' AND q.tenant_id = i.tenant_id AND q.name = i.queue_name
      RETURNING i.id, i.tenant_id, i.queue_name, i.preferred_agent_id::text AS agent`,
  );
  const queues = new Map<string, { tenantId: string; queue: string }>();
  for (const row of rows) {
    await recordDecision(tx, {
      tenantId: row.tenant_id,
      interactionId: row.id,
      queue: row.queue_name,
      agentId: row.agent,
      decision: 'requeued',
      reason: 'the customer wrote to a parked chat',
      waitedMs: null,
    });
    events.push(
      ...(await queuedEvent(tx, row.id, {
        queue: row.queue_name,
        reason: 'the customer wrote to a parked chat',
        preferredAgentId: row.agent,
      })),
    );
    queues.set(`${row.tenant_id}/${row.queue_name}`, {
      tenantId: row.tenant_id,
      queue: row.queue_name,
    });
  }
  return { queues: [...queues.values()], events };
}

/**
 * The agent hands its chat over: to another queue (it waits there, oldest-first by the time of
 * the transfer) or to another agent of the same queue (preferred for the queue's
 * `lastAgentWaitMs`, then anyone). The agent leaves the chat. Answers the queue to route.
 */
export async function transferInteraction(
  tx: CommonQueryMethods,
  interaction: { id: string; tenantId: string },
  from: { id: string; name: string },
  to: { queue: string } | { agentId: string },
): Promise<{ queue: string; events: InteractionEvent[] }> {
  const current = await tx.maybeOne(sql.type(z.object({ queue_name: z.string().nullable() }))`
    SELECT queue_name FROM interactions
    WHERE id = ${interaction.id} AND tenant_id = ${interaction.tenantId} AND state = 'open'
      AND routing_state = 'assigned' AND assigned_agent_id = ${from.id}
    FOR NO KEY UPDATE`);
  if (!current) throw new AppError('NEXUS_ERR_NOT_ASSIGNED');
  let queue: string;
  let preferred: string | null = null;
  if ('queue' in to) {
    const known = await tx.exists(sql.unsafe`
      SELECT 1 FROM routing_queues WHERE tenant_id = ${interaction.tenantId} AND name = ${to.queue}`);
    if (!known) {
      throw new AppError(
        'NEXUS_ERR_VALIDATION',
        `body.queue: no queue ${to.queue} in the tenant`,
        'body.queue',
      );
    }
    queue = to.queue;
  } else {
    if (!current.queue_name) {
      throw new AppError(
        'NEXUS_ERR_VALIDATION',
        'body.agentId: the chat is in no queue; transfer it to a queue',
        'body.agentId',
      );
    }
    const serves = await tx.exists(sql.unsafe`
      SELECT 1 FROM routing_queue_agents
      WHERE tenant_id = ${interaction.tenantId} AND queue_name = ${current.queue_name} AND agent_id = ${to.agentId}`);
    if (!serves || to.agentId === from.id) {
      throw new AppError(
        'NEXUS_ERR_VALIDATION',
        `body.agentId: not another agent of queue ${current.queue_name}`,
        'body.agentId',
      );
    }
    queue = current.queue_name;
    preferred = to.agentId;
  }
  await tx.query(sql.unsafe`
    UPDATE interactions i SET queue_name = ${queue}, routing_state = 'queued', queued_at = now(),
           assigned_agent_id = NULL, offer_expires_at = NULL, preferred_agent_id = ${preferred},
           preferred_until = CASE WHEN ${preferred}::uuid IS NULL THEN NULL
                                  ELSE now() + make_interval(secs => q.last_agent_wait_ms / 1000.0) END,
           updated_at = now()
    FROM routing_queues q
    WHERE i.id = ${interaction.id} AND q.tenant_id = i.tenant_id AND q.name = ${queue}`);
  await tx.query(sql.unsafe`
    UPDATE interaction_agents SET left_at = now()
    WHERE interaction_id = ${interaction.id} AND agent_id = ${from.id} AND left_at IS NULL`);
  await recordDecision(tx, {
    tenantId: interaction.tenantId,
    interactionId: interaction.id,
    queue,
    agentId: preferred,
    decision: 'transferred',
    reason: preferred
      ? `transferred by ${from.id} to agent ${preferred}`
      : `transferred by ${from.id} to queue ${queue}`,
    waitedMs: null,
  });
  const events = await appendEvents(tx, interaction.id, [
    {
      type: 'participant.left',
      payload: { participant: { id: from.id, type: 'agent', nickname: from.name } },
    },
    {
      type: 'interaction.queued',
      payload: {
        queue,
        reason: preferred ? `transferred to agent ${preferred}` : `transferred to queue ${queue}`,
        preferredAgentId: preferred,
      },
    },
  ]);
  return { queue, events };
}

/**
 * A chat ended while it waited or was offered: abandoned (recorded, the offer released).
 * Call in the transaction that finishes the interaction, before it is marked done.
 */
export async function abandonIfWaiting(
  tx: CommonQueryMethods,
  interactionId: string,
): Promise<void> {
  const row = await tx.maybeOne(
    sql.type(
      z.object({ tenant_id: z.string(), queue_name: z.string().nullable(), waited_ms: z.number() }),
    )`
      UPDATE interactions SET routing_state = NULL, assigned_agent_id = NULL, offer_expires_at = NULL
      WHERE id = ${interactionId} AND routing_state IN ('queued', 'offered')
      RETURNING tenant_id, queue_name, (extract(epoch FROM now() - queued_at) * 1000)::bigint AS waited_ms`,
  );
  if (!row) return;
  await recordDecision(tx, {
    tenantId: row.tenant_id,
    interactionId,
    queue: row.queue_name,
    agentId: null,
    decision: 'abandoned',
    reason: 'the chat ended before an agent took it',
    waitedMs: row.waited_ms,
  });
}
