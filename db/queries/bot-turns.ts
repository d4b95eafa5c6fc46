import { randomUUID } from 'node:crypto';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { appendEvents, type InteractionEvent } from '../conversation.js';

/**
 * SQL on `bot_turns` and the bot's messages: a bot turn is the connector's answer to one
 * customer message, stored as messages from the bot participant with their `message.created`
 * events, once per (interaction, customer message, connector).
 */

/** The messages of an earlier answer to this customer message by this connector, in order. */
export async function findBotTurn(
  tx: CommonQueryMethods,
  turn: { interactionId: string; replyTo: string; connector: string },
): Promise<readonly string[] | undefined> {
  const ids = await tx.maybeOneFirst(sql.type(z.object({ message_ids: z.array(z.string()) }))`
    SELECT message_ids::text[] AS message_ids FROM bot_turns
    WHERE interaction_id = ${turn.interactionId} AND reply_to = ${turn.replyTo}
      AND connector = ${turn.connector}`);
  return ids ?? undefined;
}

/** Whether the message is one the customer wrote in this interaction. */
export async function isCustomerMessageOf(
  tx: CommonQueryMethods,
  interactionId: string,
  messageId: string,
): Promise<boolean> {
  return tx.exists(sql.unsafe`
    SELECT 1 FROM messages
    WHERE id = ${messageId} AND interaction_id = ${interactionId} AND sender_type = 'customer'`);
}

/**
 * Stores the bot's answer: one outbound message per text, in order, each numbered at once with
 * its `message.created` event from the bot participant, and the turn itself (the key a repeat
 * finds). The caller holds the interaction's numbering lock and has numbered the customer's
 * pending messages first, so the answer follows what it answers.
 */
export async function insertBotTurn(
  tx: CommonQueryMethods,
  turn: {
    tenantId: string;
    interactionId: string;
    replyTo: string;
    connector: string;
    participant: { id: string; type: 'bot'; nickname: string };
    texts: readonly string[];
  },
): Promise<{ ids: string[]; events: InteractionEvent[] }> {
  const stored: { id: string; text: string; created_at: string }[] = [];
  for (const text of turn.texts) {
    const row = await tx.one(sql.type(z.object({ id: z.string(), created_at: z.string() }))`
      INSERT INTO messages (id, tenant_id, interaction_id, direction, sender_type, sender_id, text)
      VALUES (${randomUUID()}, ${turn.tenantId}, ${turn.interactionId}, 'outbound', 'bot',
              ${turn.participant.id}, ${text})
      RETURNING id, created_at`);
    stored.push({ ...row, text });
  }
  const events = await appendEvents(
    tx,
    turn.interactionId,
    stored.map(message => ({
      type: 'message.created' as const,
      payload: {
        message: {
          id: message.id,
          type: 'Text',
          text: message.text,
          clientMessageId: null,
          createdAt: message.created_at,
        },
        from: turn.participant,
      },
    })),
  );
  await tx.query(sql.unsafe`
    UPDATE messages m SET seq = v.seq
    FROM ${sql.unnest(
      events.map((event, index) => [stored[index]?.id ?? '', event.seq]),
      ['uuid', 'int8'],
    )} AS v(id, seq)
    WHERE m.id = v.id`);
  const ids = stored.map(message => message.id);
  await tx.query(sql.unsafe`
    INSERT INTO bot_turns (interaction_id, reply_to, connector, tenant_id, message_ids)
    VALUES (${turn.interactionId}, ${turn.replyTo}, ${turn.connector}, ${turn.tenantId},
            ${sql.array(ids, 'uuid')})`);
  return { ids, events };
}
