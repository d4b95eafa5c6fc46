import { sql, type CommonQueryMethods, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { appendEvents, type InteractionEvent } from '../conversation.js';
import { AppError } from '../../lib/errors.js';
import { joinInteraction } from '../queries/interaction-agents.js';
import { queuedEvent, recordDecision } from './decisions.js';

/**
 * Offers answered: the agent accepts (assigned, joined) or rejects its offer, or lets it expire
 * (it waits again, for another agent). How offers are made: db/routing/queueing.ts.
 */

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
