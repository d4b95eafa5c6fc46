import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/**
 * SQL on `assist_suggestions` (migration 0022): which `assist.suggestion` event answers a
 * connector's suggestion for one customer message, so that its retries append nothing.
 */

export interface SuggestionKey {
  interactionId: string;
  messageId: string;
  connector: string;
}

/** The event already recorded for this message and connector, if any. */
export async function findSuggestion(
  db: CommonQueryMethods,
  key: SuggestionKey,
): Promise<{ eventId: string; seq: number } | undefined> {
  const row = await db.maybeOne(sql.type(z.object({ event_id: z.string(), seq: z.number() }))`
    SELECT s.event_id, e.seq
    FROM assist_suggestions s JOIN events e ON e.id = s.event_id
    WHERE s.interaction_id = ${key.interactionId} AND s.message_id = ${key.messageId}
      AND s.connector = ${key.connector}`);
  return row ? { eventId: row.event_id, seq: row.seq } : undefined;
}

/** Records the event that answers this message and connector (in the event's transaction). */
export async function recordSuggestion(
  tx: CommonQueryMethods,
  key: SuggestionKey,
  eventId: string,
): Promise<void> {
  await tx.query(sql.unsafe`
    INSERT INTO assist_suggestions (interaction_id, message_id, connector, event_id)
    VALUES (${key.interactionId}, ${key.messageId}, ${key.connector}, ${eventId})`);
}

/**
 * Who sent a message of the interaction: `customer`, `agent`, `bot` or `system`; undefined when
 * the interaction has no such message.
 */
export async function messageSender(
  db: CommonQueryMethods,
  interactionId: string,
  messageId: string,
): Promise<string | undefined> {
  const sender = await db.maybeOneFirst(sql.type(z.object({ sender_type: z.string() }))`
    SELECT sender_type FROM messages WHERE id = ${messageId} AND interaction_id = ${interactionId}`);
  return sender ?? undefined;
}
