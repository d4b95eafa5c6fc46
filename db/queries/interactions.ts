import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { eventRow, toEvent, type InteractionEvent } from '../conversation.js';

/**
 * Queries on `interactions`: the conversation itself (media, state, contact, last seq), the
 * agents' work lists and the open offers sockets show. Routing's columns are written by
 * db/routing/; the numbering lock is taken in interaction-state.ts.
 */

export const interactionRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  media: z.string(),
  subtype: z.string(),
  state: z.enum(['open', 'done']),
  endpoint: z.string().nullable(),
  contact_id: z.string().nullable(),
  last_seq: z.number(),
  created_at: z.string(),
  updated_at: z.string(),
  finished_at: z.string().nullable(),
});
export type InteractionRow = z.infer<typeof interactionRow>;
const interactionColumns = sql.fragment`id, tenant_id, media, subtype, state, endpoint, contact_id,
  last_seq, created_at, updated_at, finished_at`;

export async function insertInteraction(
  tx: CommonQueryMethods,
  interaction: {
    id: string;
    tenantId: string;
    media: string;
    subtype: string;
    endpoint: string | null;
  },
): Promise<void> {
  await tx.query(sql.unsafe`
    INSERT INTO interactions (id, tenant_id, media, subtype, endpoint)
    VALUES (${interaction.id}, ${interaction.tenantId}, ${interaction.media}, ${interaction.subtype},
            ${interaction.endpoint})`);
}

export async function findInteraction(
  db: CommonQueryMethods,
  tenantId: string,
  id: string,
): Promise<InteractionRow | undefined> {
  const row = await db.maybeOne(sql.type(interactionRow)`
    SELECT ${interactionColumns} FROM interactions WHERE id = ${id} AND tenant_id = ${tenantId}`);
  return row ?? undefined;
}

/** The committed head (last seq) of each interaction: what sockets following it should have. */
export async function interactionHeads(
  db: CommonQueryMethods,
  ids: readonly string[],
): Promise<readonly { id: string; last_seq: number }[]> {
  if (ids.length === 0) return [];
  return db.any(sql.type(z.object({ id: z.string(), last_seq: z.number() }))`
    SELECT id, last_seq FROM interactions WHERE id = ANY(${sql.array([...ids], 'uuid')})`);
}

/**
 * Open interactions of the tenant, oldest first (the agent's work list): up to `limit`, after
 * the interaction `after` (a cursor: the last id of the previous page) in (created_at, id) order.
 */
export async function listOpenInteractions(
  db: CommonQueryMethods,
  tenantId: string,
  limit: number,
  after?: string,
): Promise<readonly InteractionRow[]> {
  // The cursor's own created_at, at full precision (the row's text form may round it).
  const cursor = after
    ? sql.fragment`AND (created_at, id) > (SELECT c.created_at, c.id FROM interactions c WHERE c.id = ${after})`
    : sql.fragment``;
  return db.any(sql.type(interactionRow)`
    SELECT ${interactionColumns} FROM interactions
    WHERE tenant_id = ${tenantId} AND state = 'open' ${cursor}
    ORDER BY created_at, id LIMIT ${limit}`);
}

export async function listContactInteractions(
  db: CommonQueryMethods,
  tenantId: string,
  contactId: string,
  limit: number,
): Promise<readonly InteractionRow[]> {
  return db.any(sql.type(interactionRow)`
    SELECT ${interactionColumns} FROM interactions
    WHERE tenant_id = ${tenantId} AND contact_id = ${contactId}
    ORDER BY created_at DESC LIMIT ${limit}`);
}

/** Marks an open interaction done; false when it was done already. */
export async function finishInteraction(tx: CommonQueryMethods, id: string): Promise<boolean> {
  const result = await tx.query(sql.unsafe`
    UPDATE interactions SET state = 'done', finished_at = now(), updated_at = now()
    WHERE id = ${id} AND state = 'open'`);
  return result.rowCount > 0;
}

export async function setInteractionContact(
  tx: CommonQueryMethods,
  interactionId: string,
  contactId: string,
): Promise<void> {
  await tx.query(sql.unsafe`
    UPDATE interactions SET contact_id = ${contactId}, updated_at = now()
    WHERE id = ${interactionId} AND contact_id IS NULL`);
}

/** Whether the STARTED event was written; set once, under the interaction's lock. */
export async function markStarted(tx: CommonQueryMethods, interactionId: string): Promise<boolean> {
  const result = await tx.query(sql.unsafe`
    UPDATE interactions SET started_event_at = now()
    WHERE id = ${interactionId} AND started_event_at IS NULL`);
  return result.rowCount > 0;
}

/**
 * Open interactions of the tenant flagged undelivered, most recent first (the undelivered view).
 * One whose failure was followed by a newer outbound message (the agent sent it again, or wrote
 * on) has been followed up and leaves the view; a failure of that message flags it again.
 */
export async function listUndeliveredInteractions(
  db: CommonQueryMethods,
  tenantId: string,
  limit: number,
): Promise<
  readonly (InteractionRow & {
    undelivered_at: string;
    undelivered_code: string | null;
    undelivered_reason: string | null;
  })[]
> {
  return db.any(sql.type(
    interactionRow.extend({
      undelivered_at: z.string(),
      undelivered_code: z.string().nullable(),
      undelivered_reason: z.string().nullable(),
    }),
  )`
    SELECT ${interactionColumns}, undelivered_at, undelivered_code, undelivered_reason FROM interactions
    WHERE tenant_id = ${tenantId} AND undelivered_at IS NOT NULL AND state = 'open'
      AND NOT EXISTS (
        SELECT 1 FROM messages m
        WHERE m.interaction_id = interactions.id AND m.direction = 'outbound'
          AND m.created_at > interactions.undelivered_at)
    ORDER BY undelivered_at DESC LIMIT ${limit}`);
}

/**
 * Offers still open for these agents (offered, not expired), each with the
 * `interaction.offered` event that made it, in one query.
 */
export async function listPendingOffers(
  db: CommonQueryMethods,
  agentIds: readonly string[],
): Promise<readonly { agentId: string; event: InteractionEvent }[]> {
  if (agentIds.length === 0) return [];
  const rows = await db.any(sql.type(eventRow.extend({ agent_id: z.string() }))`
    SELECT i.assigned_agent_id AS agent_id, e.id, e.tenant_id, e.interaction_id, e.seq, e.type,
           e.payload, e.occurred_at
    FROM interactions i
    JOIN LATERAL (
      SELECT * FROM events e
      WHERE e.interaction_id = i.id AND e.type = 'interaction.offered'
      ORDER BY e.seq DESC LIMIT 1) e ON e.payload->'agent'->>'id' = i.assigned_agent_id::text
    WHERE i.assigned_agent_id = ANY(${sql.array([...agentIds], 'uuid')})
      AND i.routing_state = 'offered' AND i.state = 'open' AND i.offer_expires_at > now()`);
  return rows.map(row => ({ agentId: row.agent_id, event: toEvent(row) }));
}
