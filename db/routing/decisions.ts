import { sql, type CommonQueryMethods } from 'slonik';
import { appendEvents, type InteractionEvent } from '../conversation.js';
import { routingDecisionsTotal } from '../../lib/metrics.js';

/**
 * What every routing transition writes besides the interaction's routing columns: its row in
 * `routing_decisions` (the audit trail, counted in `nexus_routing_decisions_total`), and for a
 * return to waiting the `interaction.queued` event. The transitions themselves are in the files
 * beside this one (see db/routing/queueing.ts for how routing works).
 */

/** Back to waiting: an `interaction.queued` event (the transition, with its seq). */
export function queuedEvent(
  tx: CommonQueryMethods,
  interactionId: string,
  data: { queue: string; reason: string; preferredAgentId: string | null },
): Promise<InteractionEvent[]> {
  return appendEvents(tx, interactionId, [{ type: 'interaction.queued', payload: data }]);
}

export interface Decision {
  tenantId: string;
  interactionId: string;
  queue: string | null;
  agentId: string | null;
  decision: string;
  reason: string;
  waitedMs: number | null;
}

export async function recordDecision(tx: CommonQueryMethods, decision: Decision): Promise<void> {
  routingDecisionsTotal.inc({ decision: decision.decision });
  await tx.query(sql.unsafe`
    INSERT INTO routing_decisions (tenant_id, interaction_id, queue_name, agent_id, decision, reason, waited_ms)
    VALUES (${decision.tenantId}, ${decision.interactionId}, ${decision.queue}, ${decision.agentId},
            ${decision.decision}, ${decision.reason}, ${decision.waitedMs})`);
}
