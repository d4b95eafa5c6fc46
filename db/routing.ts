import { sql, type CommonQueryMethods, type DatabasePool, type ValueExpression } from 'slonik';
import { z } from 'zod';
import { appendEvents, type InteractionEvent } from './conversation.js';
import { AppError } from '../lib/errors.js';
import { routingDecisionsTotal, type RoutingQueueStats } from '../lib/metrics.js';
import { joinInteraction } from './queries/interaction-agents.js';
import { listQueues } from './queries/routing-queues.js';

/**
 * Routing: an interaction whose endpoint leads to a queue waits there (`routing_state` queued)
 * until an agent who serves the queue is ready and has room; the agent idle the longest is
 * offered it, and the queue drains oldest first. The agent accepts (assigned), rejects, or lets
 * the offer expire (it waits again, for another agent). Correct with any number of API and worker replicas routing
 * at once: the interaction is taken with `FOR NO KEY UPDATE SKIP LOCKED` (never assigned twice) and
 * the agent row is locked before its load is counted (never above capacity). Rows are locked
 * `FOR NO KEY UPDATE`, never `FOR UPDATE`: no key changes, and the foreign keys' KEY SHARE locks
 * (a customer message inserted meanwhile) must not wait on routing.
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
  // A returning customer goes to the agent of their last interaction first, for a while.
  const lastAgent = await tx.maybeOneFirst(sql.type(z.object({ agent: z.string() }))`
    SELECT p.assigned_agent_id::text AS agent FROM interactions i
    JOIN interactions p ON p.contact_id = i.contact_id AND p.id <> i.id
    WHERE i.id = ${interaction.id} AND p.assigned_agent_id IS NOT NULL
    ORDER BY p.created_at DESC LIMIT 1`);
  await tx.query(sql.unsafe`
    UPDATE interactions i SET queue_name = ${queue}, routing_state = 'queued', queued_at = i.created_at,
      preferred_agent_id = ${lastAgent ?? null},
      preferred_until = CASE WHEN ${lastAgent ?? null}::uuid IS NULL THEN NULL
                             ELSE now() + make_interval(secs => q.last_agent_wait_ms / 1000.0) END
    FROM routing_queues q
    WHERE i.id = ${interaction.id} AND i.routing_state IS NULL
      AND q.tenant_id = i.tenant_id AND q.name = ${queue}`);
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

/** Back to waiting: an `interaction.queued` event (the transition, with its seq). */
function queuedEvent(
  tx: CommonQueryMethods,
  interactionId: string,
  data: { queue: string; reason: string; preferredAgentId: string | null },
): Promise<InteractionEvent[]> {
  return appendEvents(tx, interactionId, [{ type: 'interaction.queued', payload: data }]);
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
  routingDecisionsTotal.inc({ decision: decision.decision });
  await tx.query(sql.unsafe`
    INSERT INTO routing_decisions (tenant_id, interaction_id, queue_name, agent_id, decision, reason, waited_ms)
    VALUES (${decision.tenantId}, ${decision.interactionId}, ${decision.queue}, ${decision.agentId},
            ${decision.decision}, ${decision.reason}, ${decision.waitedMs})`);
}

const candidate = z.object({ id: z.string(), name: z.string(), capacity: z.number() });

/** An agent's load, the count its capacity limits: open interactions offered or assigned to it. */
const loadOf = (agent: ValueExpression) => sql.fragment`
  (SELECT count(*)::int FROM interactions
   WHERE assigned_agent_id = ${agent} AND routing_state IN ('offered', 'assigned') AND state = 'open')`;

export async function agentLoad(db: CommonQueryMethods, agentId: string): Promise<number> {
  return db.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT ${loadOf(agentId)} AS n`);
}

/** Whether any ready agent of the queue has room (no locks: a hint to stop a routing pass). */
async function anyRoom(db: DatabasePool, tenantId: string, queue: string): Promise<boolean> {
  return db.oneFirst(sql.type(z.object({ room: z.boolean() }))`
    SELECT EXISTS (
      SELECT 1 FROM agents a
      JOIN routing_queue_agents qa
        ON qa.agent_id = a.id AND qa.tenant_id = ${tenantId} AND qa.queue_name = ${queue}
      WHERE a.ready AND a.enabled AND a.capacity > ${loadOf(sql.identifier(['a', 'id']))}) AS room`);
}

/** An offer made: the timer that expires it is the caller's (a delayed maintenance job). */
export interface Offer {
  tenantId: string;
  interactionId: string;
  agentId: string;
  expiresAt: Date;
}

/**
 * Offers the queue's waiting interactions, oldest first, to ready agents with room, idle
 * longest first (skipping agents who rejected or let an offer of that interaction expire), until
 * one or the other runs out. An offered interaction counts against the agent's capacity until
 * it is rejected or expires. Each offer is its own transaction; `publish` gets its events after
 * the commit and `onOffer` the offer (to time it out). Answers how many were offered.
 */
export async function routeQueue(
  db: DatabasePool,
  tenantId: string,
  queue: string,
  publish: (events: InteractionEvent[]) => void,
  onOffer: (offer: Offer) => void = () => undefined,
  limit = 500,
): Promise<number> {
  let offered = 0;
  // No agent of the queue has room: nothing to offer, and no waiting interaction to lock.
  if (!(await anyRoom(db, tenantId, queue))) return 0;
  // Interactions this pass could not place (their preferred agent is busy, or every agent with
  // room rejected them): the next waiting one is tried.
  const skip: string[] = [];
  for (let attempt = 0; offered < limit && attempt < limit * 2; attempt++) {
    const result = await db.transaction(async tx => {
      const waiting = await tx.maybeOne(
        sql.type(
          z.object({
            id: z.string(),
            waited_ms: z.number(),
            timeout_ms: z.number(),
            preferred: z.string().nullable(),
          }),
        )`
          SELECT i.id, (extract(epoch FROM now() - i.queued_at) * 1000)::bigint AS waited_ms,
                 q.offer_timeout_ms AS timeout_ms,
                 CASE WHEN i.preferred_until > now() THEN i.preferred_agent_id::text END AS preferred
          FROM interactions i
          JOIN routing_queues q ON q.tenant_id = i.tenant_id AND q.name = i.queue_name
          WHERE i.tenant_id = ${tenantId} AND i.queue_name = ${queue}
            AND i.routing_state = 'queued' AND i.state = 'open'
            AND NOT (i.id = ANY(${sql.array(skip, 'uuid')}))
          ORDER BY i.queued_at, i.id LIMIT 1
          FOR NO KEY UPDATE OF i SKIP LOCKED`,
      );
      if (!waiting) return undefined;
      const candidates = await tx.any(sql.type(candidate)`
        SELECT a.id, a.name, a.capacity FROM agents a
        JOIN routing_queue_agents qa
          ON qa.agent_id = a.id AND qa.tenant_id = ${tenantId} AND qa.queue_name = ${queue}
        WHERE a.ready AND a.enabled AND a.capacity > 0
          AND NOT EXISTS (
            SELECT 1 FROM routing_decisions d
            WHERE d.interaction_id = ${waiting.id} AND d.agent_id = a.id
              AND d.decision IN ('rejected', 'expired'))
        ORDER BY a.idle_since NULLS FIRST, a.id`);
      for (const agent of candidates) {
        // A returning customer or a parked chat waits for its agent for a while.
        if (waiting.preferred && agent.id !== waiting.preferred) continue;
        // Lock the agent, then count its load: nobody else can give it work until we commit.
        const locked = await tx.maybeOne(sql.type(z.object({ id: z.string() }))`
          SELECT id FROM agents WHERE id = ${agent.id} AND ready AND enabled FOR NO KEY UPDATE SKIP LOCKED`);
        if (!locked) continue;
        const load = await agentLoad(tx, agent.id);
        if (load >= agent.capacity) continue;
        const expiresAt = await tx.oneFirst(sql.type(z.object({ offer_expires_at: z.string() }))`
          UPDATE interactions SET routing_state = 'offered', assigned_agent_id = ${agent.id},
                 offer_expires_at = now() + make_interval(secs => ${waiting.timeout_ms / 1000}),
                 updated_at = now()
          WHERE id = ${waiting.id}
          RETURNING offer_expires_at`);
        await tx.query(sql.unsafe`UPDATE agents SET idle_since = now() WHERE id = ${agent.id}`);
        const reason = `idle longest among ready agents of ${queue} with room (${load + 1}/${agent.capacity})`;
        await recordDecision(tx, {
          tenantId,
          interactionId: waiting.id,
          queue,
          agentId: agent.id,
          decision: 'offered',
          reason,
          waitedMs: waiting.waited_ms,
        });
        const events = await appendEvents(tx, waiting.id, [
          {
            type: 'interaction.offered',
            payload: {
              agent: { id: agent.id, nickname: agent.name },
              queue,
              reason,
              waitedMs: waiting.waited_ms,
              expiresAt,
            },
          },
        ]);
        return {
          events,
          offer: {
            tenantId,
            interactionId: waiting.id,
            agentId: agent.id,
            expiresAt: new Date(expiresAt),
          },
        };
      }
      // Nobody took it. The next waiting one may still fit when a preference or rejections kept
      // this one out (`maybeRoom`); otherwise the caller stops unless some agent has room.
      return {
        skipped: waiting.id,
        maybeRoom: waiting.preferred !== null || candidates.length === 0,
      };
    });
    if (!result) break;
    if (result.skipped !== undefined) {
      if (!result.maybeRoom && !(await anyRoom(db, tenantId, queue))) break;
      skip.push(result.skipped);
      continue;
    }
    publish(result.events);
    onOffer(result.offer);
    offered++;
  }
  return offered;
}

/**
 * The agent accepts its offer: the interaction is assigned to it, the agent joins. Throws
 * NEXUS_ERR_OFFER_INVALID (409) when the interaction is not offered to this agent (any more).
 */
export async function acceptOffer(
  tx: CommonQueryMethods,
  interaction: { id: string; tenantId: string },
  agent: { id: string; name: string },
): Promise<InteractionEvent[]> {
  const offer = await tx.maybeOne(
    sql.type(z.object({ queue_name: z.string().nullable(), waited_ms: z.number() }))`
      SELECT queue_name, (extract(epoch FROM now() - queued_at) * 1000)::bigint AS waited_ms
      FROM interactions
      WHERE id = ${interaction.id} AND tenant_id = ${interaction.tenantId} AND state = 'open'
        AND routing_state = 'offered' AND assigned_agent_id = ${agent.id} AND offer_expires_at > now()
      FOR NO KEY UPDATE`,
  );
  if (!offer) throw new AppError('NEXUS_ERR_OFFER_INVALID');
  await tx.query(sql.unsafe`
    UPDATE interactions SET routing_state = 'assigned', offer_expires_at = NULL, updated_at = now()
    WHERE id = ${interaction.id}`);
  const reason = 'accepted';
  await recordDecision(tx, {
    tenantId: interaction.tenantId,
    interactionId: interaction.id,
    queue: offer.queue_name,
    agentId: agent.id,
    decision: 'accepted',
    reason,
    waitedMs: offer.waited_ms,
  });
  const joined = (await joinInteraction(tx, interaction.id, agent.id))
    ? [
        {
          type: 'participant.joined' as const,
          payload: { participant: { id: agent.id, type: 'agent', nickname: agent.name } },
        },
      ]
    : [];
  return appendEvents(tx, interaction.id, [
    ...joined,
    {
      type: 'interaction.assigned',
      payload: {
        agent: { id: agent.id, nickname: agent.name },
        queue: offer.queue_name,
        waitedMs: offer.waited_ms,
      },
    },
  ]);
}

/**
 * The agent rejects its offer: the interaction waits again (in its place: it keeps its queued
 * time) and is not offered to this agent again. Answers the queue to route.
 */
export async function rejectOffer(
  tx: CommonQueryMethods,
  interaction: { id: string; tenantId: string },
  agentId: string,
): Promise<{ queue: string | null; events: InteractionEvent[] }> {
  const row = await tx.maybeOne(sql.type(z.object({ queue_name: z.string().nullable() }))`
    UPDATE interactions SET routing_state = 'queued', assigned_agent_id = NULL,
           offer_expires_at = NULL, updated_at = now()
    WHERE id = ${interaction.id} AND tenant_id = ${interaction.tenantId} AND state = 'open'
      AND routing_state = 'offered' AND assigned_agent_id = ${agentId}
    RETURNING queue_name`);
  if (!row) throw new AppError('NEXUS_ERR_OFFER_INVALID');
  await recordDecision(tx, {
    tenantId: interaction.tenantId,
    interactionId: interaction.id,
    queue: row.queue_name,
    agentId,
    decision: 'rejected',
    reason: 'the agent rejected the offer',
    waitedMs: null,
  });
  const events = row.queue_name
    ? await queuedEvent(tx, interaction.id, {
        queue: row.queue_name,
        reason: 'the agent rejected the offer',
        preferredAgentId: null,
      })
    : [];
  return { queue: row.queue_name, events };
}

/**
 * Offers not answered in time go back to waiting (not to be offered to that agent again).
 * Answers the queues to route.
 */
export async function expireOffers(
  db: DatabasePool,
  publish: (events: InteractionEvent[]) => void = () => undefined,
): Promise<{ tenantId: string; queue: string }[]> {
  const written: InteractionEvent[] = [];
  const queues = await db.transaction(async tx => {
    const expired = await tx.any(
      sql.type(
        z.object({
          id: z.string(),
          tenant_id: z.string(),
          queue_name: z.string().nullable(),
          agent: z.string(),
        }),
      )`
        WITH due AS (
          SELECT id, assigned_agent_id FROM interactions
          WHERE routing_state = 'offered' AND offer_expires_at <= now()
          FOR NO KEY UPDATE SKIP LOCKED
        )
        UPDATE interactions i SET routing_state = 'queued', assigned_agent_id = NULL,
               offer_expires_at = NULL, updated_at = now()
        FROM due WHERE i.id = due.id
        RETURNING i.id, i.tenant_id, i.queue_name, due.assigned_agent_id::text AS agent`,
    );
    for (const row of expired) {
      await recordDecision(tx, {
        tenantId: row.tenant_id,
        interactionId: row.id,
        queue: row.queue_name,
        agentId: row.agent,
        decision: 'expired',
        reason: 'the offer was not answered in time',
        waitedMs: null,
      });
      if (row.queue_name) {
        written.push(
          ...(await queuedEvent(tx, row.id, {
            queue: row.queue_name,
            reason: 'the offer was not answered in time',
            preferredAgentId: null,
          })),
        );
      }
    }
    const queues = new Map<string, { tenantId: string; queue: string }>();
    for (const row of expired) {
      if (row.queue_name) {
        queues.set(`${row.tenant_id}/${row.queue_name}`, {
          tenantId: row.tenant_id,
          queue: row.queue_name,
        });
      }
    }
    return [...queues.values()];
  });
  publish(written);
  return queues;
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

/**
 * Expires unanswered offers, then routes every queue that has interactions waiting. Answers how
 * many were offered.
 */
export async function routeWaiting(
  db: DatabasePool,
  publish: (events: InteractionEvent[]) => void,
  onOffer: (offer: Offer) => void = () => undefined,
): Promise<number> {
  await expireOffers(db, publish);
  const queues = await db.any(sql.type(z.object({ tenant_id: z.string(), queue_name: z.string() }))`
    SELECT DISTINCT tenant_id, queue_name FROM interactions
    WHERE routing_state = 'queued' AND state = 'open'`);
  let assigned = 0;
  for (const row of queues) {
    assigned += await routeQueue(db, row.tenant_id, row.queue_name, publish, onOffer);
  }
  return assigned;
}

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

/** Live figures of every routing queue (for the metrics): the API's queue statistics. */
export async function routingQueueStats(db: CommonQueryMethods): Promise<RoutingQueueStats[]> {
  return (await listQueues(db)).map(row => ({
    tenant: row.tenant_id,
    queue: row.name,
    waiting: row.waiting,
    oldestWaitSeconds: (row.oldest_wait_ms ?? 0) / 1000,
    agentsReady: row.agents_ready,
    assigned: row.assigned,
  }));
}
