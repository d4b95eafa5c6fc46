import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/** Queries on `interaction_agents`: which agents work on which interactions (joined, not left). */

/** Adds the agent to the interaction; false when already in it. */
export async function joinInteraction(
  tx: CommonQueryMethods,
  interactionId: string,
  agentId: string,
): Promise<boolean> {
  const result = await tx.query(sql.unsafe`
    INSERT INTO interaction_agents (interaction_id, agent_id) VALUES (${interactionId}, ${agentId})
    ON CONFLICT (interaction_id, agent_id) DO UPDATE SET left_at = NULL, joined_at = now()
    WHERE interaction_agents.left_at IS NOT NULL`);
  return result.rowCount > 0;
}

/** Whether the agent works on the interaction: assigned to it, or joined and not left. */
export async function agentWorksOn(
  tx: CommonQueryMethods,
  interactionId: string,
  agentId: string,
): Promise<boolean> {
  return tx.exists(sql.unsafe`
    SELECT 1 FROM interactions i
    WHERE i.id = ${interactionId}
      AND (i.assigned_agent_id = ${agentId} OR EXISTS (
        SELECT 1 FROM interaction_agents ia
        WHERE ia.interaction_id = i.id AND ia.agent_id = ${agentId} AND ia.left_at IS NULL))`);
}

/** Open interactions the agent works on. */
export async function listAgentInteractionIds(
  db: CommonQueryMethods,
  agentId: string,
): Promise<readonly string[]> {
  return db.anyFirst(sql.type(z.object({ interaction_id: z.string() }))`
    SELECT ia.interaction_id FROM interaction_agents ia JOIN interactions i ON i.id = ia.interaction_id
    WHERE ia.agent_id = ${agentId} AND ia.left_at IS NULL AND i.state = 'open'`);
}

/** Open interactions each of these agents works on (joined, not left), in one query. */
export async function listAgentsInteractionIds(
  db: CommonQueryMethods,
  agentIds: readonly string[],
): Promise<readonly { agent_id: string; interaction_id: string }[]> {
  if (agentIds.length === 0) return [];
  return db.any(sql.type(z.object({ agent_id: z.string(), interaction_id: z.string() }))`
    SELECT ia.agent_id, ia.interaction_id
    FROM interaction_agents ia JOIN interactions i ON i.id = ia.interaction_id
    WHERE ia.agent_id = ANY(${sql.array([...agentIds], 'uuid')}) AND ia.left_at IS NULL
      AND i.state = 'open'`);
}
