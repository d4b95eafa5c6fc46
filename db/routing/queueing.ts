import { sql, type CommonQueryMethods, type DatabasePool, type ValueExpression } from 'slonik';
import { z } from 'zod';
import { appendEvents, type InteractionEvent } from '../conversation.js';
import { engageBot, queueBot } from './bots.js';
import { recordDecision } from './decisions.js';

/**
 * Routing: an interaction whose endpoint leads to a queue waits there (`routing_state` queued)
 * until an agent who serves the queue is ready and has room; the agent idle the longest is
 * offered it, and the queue drains oldest first. The agent accepts (assigned), rejects, or lets
 * the offer expire (it waits again, for another agent). Correct with any number of API and
 * worker replicas routing at once: the interaction is taken with `FOR NO KEY UPDATE SKIP LOCKED`
 * (never assigned twice) and the agent row is locked before its load is counted (never above
 * capacity). Rows are locked `FOR NO KEY UPDATE`, never `FOR UPDATE`: no key changes, and the
 * foreign keys' KEY SHARE locks (a customer message inserted meanwhile) must not wait on routing.
 *
 * This file: an interaction enters its queue (or its `botFirst` queue's bot: db/routing/bots.ts),
 * and a queue is routed (its waiting interactions offered to agents), with the reads that say
 * which queues to route. Offers are answered in db/routing/offers.ts; park, requeue, transfer
 * and abandon are in db/routing/handover.ts; a bot's handoff in db/routing/handoff.ts; every
 * transition records its decision through db/routing/decisions.ts. The API and the workers route
 * through `routeQueues` (queues/routing.ts), which publishes the events and times the offers out.
 */

/** What routing a new interaction did: its queue, the events written, the bot's deadline. */
export interface NewRouting {
  queue: string;
  events: InteractionEvent[];
  /** Given to the queue's bot: the caller times it out at `handoffAt` after the commit. */
  bot?: { interactionId: string; handoffAt: Date } | undefined;
}

/**
 * Routes a new interaction to the queue its endpoint leads to; undefined when it leads to none.
 * A `botFirst` queue whose tenant runs the AI connector gives it to its bot (db/routing/bots.ts);
 * any other queue lets it wait for an agent, from when the customer started it, so the queue
 * drains in the order customers arrived.
 */
export async function routeNewInteraction(
  tx: CommonQueryMethods,
  interaction: { id: string; tenant_id: string; endpoint: string | null },
): Promise<NewRouting | undefined> {
  if (!interaction.endpoint) return undefined;
  const queue = await tx.maybeOneFirst(sql.type(z.object({ queue_name: z.string() }))`
    SELECT queue_name FROM routing_queue_endpoints
    WHERE tenant_id = ${interaction.tenant_id} AND endpoint = ${interaction.endpoint}`);
  if (!queue) return undefined;
  const bot = await queueBot(tx, interaction.tenant_id, queue);
  if (bot) {
    const engaged = await engageBot(
      tx,
      { id: interaction.id, tenantId: interaction.tenant_id },
      queue,
      bot,
    );
    return {
      queue,
      events: engaged?.events ?? [],
      bot: engaged && { interactionId: interaction.id, handoffAt: engaged.handoffAt },
    };
  }
  // A returning customer goes to the agent of their last interaction first, for a while.
  const lastAgent = await lastAgentOf(tx, interaction.id);
  await tx.query(sql.unsafe`
    UPDATE interactions i SET queue_name = ${queue}, routing_state = 'queued', queued_at = i.created_at,
      preferred_agent_id = ${lastAgent},
      preferred_until = CASE WHEN ${lastAgent}::uuid IS NULL THEN NULL
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
  return { queue, events: [] };
}

/**
 * {@link routeNewInteraction} for callers that publish no events: the queue's name, or
 * undefined. A bot's events are then read by sockets from PostgreSQL with the next event, and
 * its deadline is kept by the maintenance sweep.
 */
export async function queueInteraction(
  tx: CommonQueryMethods,
  interaction: { id: string; tenant_id: string; endpoint: string | null },
): Promise<string | undefined> {
  return (await routeNewInteraction(tx, interaction))?.queue;
}

/** The agent of the contact's last interaction before this one (who a returning customer gets). */
export async function lastAgentOf(
  tx: CommonQueryMethods,
  interactionId: string,
): Promise<string | null> {
  const agent = await tx.maybeOneFirst(sql.type(z.object({ agent: z.string() }))`
    SELECT p.assigned_agent_id::text AS agent FROM interactions i
    JOIN interactions p ON p.contact_id = i.contact_id AND p.id <> i.id
    WHERE i.id = ${interactionId} AND p.assigned_agent_id IS NOT NULL
    ORDER BY p.created_at DESC LIMIT 1`);
  return agent ?? null;
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

/** The queues an agent serves (to drain when it becomes ready or frees capacity). */
export async function queuesOfAgent(
  db: CommonQueryMethods,
  agentId: string,
): Promise<{ tenantId: string; queue: string }[]> {
  const rows = await db.any(sql.type(z.object({ tenant_id: z.string(), queue_name: z.string() }))`
    SELECT tenant_id, queue_name FROM routing_queue_agents WHERE agent_id = ${agentId}`);
  return rows.map(row => ({ tenantId: row.tenant_id, queue: row.queue_name }));
}

/** The queue the tenant's interaction was routed to; undefined when none (or no such interaction). */
export async function queueOfInteraction(
  db: CommonQueryMethods,
  tenantId: string,
  interactionId: string,
): Promise<string | undefined> {
  const row = await db.maybeOne(sql.type(z.object({ queue_name: z.string() }))`
    SELECT queue_name FROM interactions
    WHERE id = ${interactionId} AND tenant_id = ${tenantId} AND queue_name IS NOT NULL`);
  return row?.queue_name;
}

/** The queues with interactions waiting (the maintenance sweep routes each). */
export async function waitingQueues(
  db: CommonQueryMethods,
): Promise<{ tenantId: string; queue: string }[]> {
  const rows = await db.any(sql.type(z.object({ tenant_id: z.string(), queue_name: z.string() }))`
    SELECT DISTINCT tenant_id, queue_name FROM interactions
    WHERE routing_state = 'queued' AND state = 'open'`);
  return rows.map(row => ({ tenantId: row.tenant_id, queue: row.queue_name }));
}
