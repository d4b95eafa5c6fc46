import { randomUUID } from 'node:crypto';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { CatalogueEventType } from '../domain/event-catalogue.js';
import type { FailureCode } from '../lib/errors.js';

/**
 * The interaction event log (design §6): every state change is one `events` row numbered by the
 * interaction's `seq`. Numbers are taken under the interaction's row lock, so they follow commit
 * order and have no gaps. Socket notifications and webhooks are read from this log.
 */

export const EVENT_TYPES = [
  'interaction.started',
  'participant.joined',
  'participant.left',
  'message.created',
  'read',
  'interaction.queued',
  'interaction.offered',
  'interaction.assigned',
  'interaction.parked',
  'interaction.undelivered',
  'interaction.finished',
  'message.status',
  'interaction.bot',
  'interaction.handoff',
  'assist.suggestion',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];
// Every event type has a schema in the catalogue, and the catalogue nothing else (type check).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const EVENT_TYPES_CATALOGUED: Same<EventType, CatalogueEventType> = true;

export const eventRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  interaction_id: z.string(),
  seq: z.number(),
  type: z.enum(EVENT_TYPES),
  payload: z.record(z.unknown()),
  occurred_at: z.string(),
});
export type EventRow = z.infer<typeof eventRow>;

/** An event as clients and subscribers see it. */
export interface InteractionEvent {
  id: string;
  tenantId: string;
  interactionId: string;
  seq: number;
  type: EventType;
  occurredAt: string;
  data: Record<string, unknown>;
}

export const toEvent = (row: EventRow): InteractionEvent => ({
  id: row.id,
  tenantId: row.tenant_id,
  interactionId: row.interaction_id,
  seq: row.seq,
  type: row.type,
  occurredAt: row.occurred_at,
  data: row.payload,
});

const eventColumns = sql.fragment`id, tenant_id, interaction_id, seq, type, payload, occurred_at`;

/** Locks the interaction and takes `count` sequence numbers; returns the first. */
async function takeSeq(
  tx: CommonQueryMethods,
  interactionId: string,
  count: number,
): Promise<{ first: number; tenantId: string; state: string }> {
  const row = await tx.one(sql.type(
    z.object({ last_seq: z.number(), tenant_id: z.string(), state: z.string() }),
  )`
    UPDATE interactions SET last_seq = last_seq + ${count}, updated_at = now()
    WHERE id = ${interactionId}
    RETURNING last_seq, tenant_id, state`);
  return { first: row.last_seq - count + 1, tenantId: row.tenant_id, state: row.state };
}

/** Appends events to an interaction's log, in order. Call inside a transaction. */
export async function appendEvents(
  tx: CommonQueryMethods,
  interactionId: string,
  events: readonly { type: EventType; payload: Record<string, unknown> }[],
): Promise<InteractionEvent[]> {
  if (events.length === 0) return [];
  const { first, tenantId } = await takeSeq(tx, interactionId, events.length);
  const rows = await tx.any(sql.type(eventRow)`
    INSERT INTO events (id, tenant_id, interaction_id, seq, type, payload)
    SELECT * FROM ${sql.unnest(
      events.map((event, index) => [
        randomUUID(),
        tenantId,
        interactionId,
        first + index,
        event.type,
        JSON.stringify(event.payload),
      ]),
      ['uuid', 'text', 'uuid', 'int8', 'text', 'jsonb'],
    )}
    RETURNING ${eventColumns}`);
  return [...rows].sort((a, b) => a.seq - b.seq).map(toEvent);
}

/** Events after `afterSeq`, in order. */
export async function listEvents(
  db: CommonQueryMethods,
  interactionId: string,
  afterSeq: number,
  limit: number,
  beforeSeq?: number,
): Promise<InteractionEvent[]> {
  const rows = await db.any(sql.type(eventRow)`
    SELECT ${eventColumns} FROM events
    WHERE interaction_id = ${interactionId} AND seq > ${afterSeq}
      ${beforeSeq === undefined ? sql.fragment`` : sql.fragment`AND seq < ${beforeSeq}`}
    ORDER BY seq LIMIT ${limit}`);
  return rows.map(toEvent);
}

/**
 * The numbering lock on an interaction, taken by whoever writes its events or numbers its
 * messages (the inbound processor, agent writes, reads, ends, and chat intake where it is free:
 * db/queries/intake.ts): `FOR NO KEY UPDATE`, which
 * serialises them but does not conflict with the KEY SHARE lock the foreign keys of `messages`
 * and `events` take on their interaction. `FOR UPDATE` would make every customer message's
 * insert wait behind a numbering transaction, and a stuck one stall chat intake for everybody.
 */
export const NUMBERING_LOCK = sql.fragment`FOR NO KEY UPDATE`;

const pendingMessage = z.object({
  id: z.string(),
  sender_type: z.string(),
  sender_id: z.string(),
  type: z.string(),
  text: z.string().nullable(),
  client_message_id: z.string().nullable(),
  created_at: z.string(),
  nickname: z.string().nullable(),
});

/**
 * Numbers every message of the interaction still waiting for its `seq`, in the order the API
 * accepted them, and writes their `message.created` events. Idempotent: a second call finds
 * nothing to do.
 */
export async function sequencePendingMessages(
  tx: CommonQueryMethods,
  interactionId: string,
  options: { locked?: boolean } = {},
): Promise<InteractionEvent[]> {
  // Lock the interaction first (unless the caller holds it): concurrent writers queue up here.
  if (!options.locked) {
    await tx.query(
      sql.unsafe`SELECT 1 FROM interactions WHERE id = ${interactionId} ${NUMBERING_LOCK}`,
    );
  }
  return sequencePendingMessagesOf(tx, [interactionId]);
}

function messagePayload(message: z.infer<typeof pendingMessage>): Record<string, unknown> {
  return {
    message: {
      id: message.id,
      type: message.type,
      text: message.text,
      clientMessageId: message.client_message_id,
      createdAt: message.created_at,
    },
    from: { type: message.sender_type, id: message.sender_id, nickname: message.nickname },
  };
}

export interface NewMessage {
  id: string;
  tenantId: string;
  interactionId: string;
  direction: 'inbound' | 'outbound';
  senderType: 'customer' | 'agent' | 'bot' | 'system';
  senderId: string;
  text: string;
  clientMessageId: string | null;
}

/**
 * Stores a message without its seq (the inbound processor numbers it). With a client message id
 * a retry finds the first message: `created` is false and nothing else is written.
 */
export async function insertMessage(
  tx: CommonQueryMethods,
  message: NewMessage,
): Promise<{ id: string; created: boolean; seq: number | null }> {
  const inserted = await tx.maybeOne(sql.type(z.object({ id: z.string() }))`
    INSERT INTO messages (id, tenant_id, interaction_id, direction, sender_type, sender_id, text, client_message_id)
    VALUES (${message.id}, ${message.tenantId}, ${message.interactionId}, ${message.direction},
            ${message.senderType}, ${message.senderId}, ${message.text}, ${message.clientMessageId})
    ON CONFLICT (interaction_id, sender_id, client_message_id) DO NOTHING
    RETURNING id`);
  if (inserted) return { id: inserted.id, created: true, seq: null };
  const existing = await tx.one(sql.type(z.object({ id: z.string(), seq: z.number().nullable() }))`
    SELECT id, seq FROM messages
    WHERE interaction_id = ${message.interactionId} AND sender_id = ${message.senderId}
      AND client_message_id = ${message.clientMessageId}`);
  return { id: existing.id, created: false, seq: existing.seq };
}

/**
 * {@link sequencePendingMessages} for many interactions at once, in a fixed number of
 * statements whatever their count. The caller holds the interactions' row locks.
 */
export async function sequencePendingMessagesOf(
  tx: CommonQueryMethods,
  interactionIds: readonly string[],
): Promise<InteractionEvent[]> {
  if (interactionIds.length === 0) return [];
  const pending = await tx.any(sql.type(pendingMessage.extend({ interaction_id: z.string() }))`
    SELECT m.id, m.interaction_id, m.sender_type, m.sender_id, m.type, m.text, m.client_message_id,
           m.created_at, coalesce(s.nickname, a.name) AS nickname
    FROM messages m
    LEFT JOIN chat_sessions s ON m.sender_type = 'customer' AND s.interaction_id = m.interaction_id
    LEFT JOIN agents a ON m.sender_type = 'agent' AND a.id::text = m.sender_id
    WHERE m.interaction_id = ANY(${sql.array([...interactionIds], 'uuid')}) AND m.seq IS NULL
    ORDER BY m.interaction_id, m.received`);
  if (pending.length === 0) return [];
  const counts = new Map<string, number>();
  for (const message of pending) {
    counts.set(message.interaction_id, (counts.get(message.interaction_id) ?? 0) + 1);
  }
  const taken = await tx.any(sql.type(
    z.object({ id: z.string(), last_seq: z.number(), tenant_id: z.string() }),
  )`
    UPDATE interactions i SET last_seq = i.last_seq + v.k, updated_at = now()
    FROM ${sql.unnest(
      [...counts].map(([id, k]) => [id, k]),
      ['uuid', 'int8'],
    )} AS v(id, k)
    WHERE i.id = v.id
    RETURNING i.id, i.last_seq, i.tenant_id`);
  const next = new Map(
    taken.map(row => [
      row.id,
      { seq: row.last_seq - (counts.get(row.id) ?? 0) + 1, tenant: row.tenant_id },
    ]),
  );
  const events = pending.map(message => {
    const slot = next.get(message.interaction_id) as { seq: number; tenant: string };
    const seq = slot.seq++;
    return { message, seq, tenant: slot.tenant, id: randomUUID() };
  });
  const rows = await tx.any(sql.type(eventRow)`
    INSERT INTO events (id, tenant_id, interaction_id, seq, type, payload)
    SELECT * FROM ${sql.unnest(
      events.map(event => [
        event.id,
        event.tenant,
        event.message.interaction_id,
        event.seq,
        'message.created',
        JSON.stringify(messagePayload(event.message)),
      ]),
      ['uuid', 'text', 'uuid', 'int8', 'text', 'jsonb'],
    )}
    RETURNING ${eventColumns}`);
  await tx.query(sql.unsafe`
    UPDATE messages m SET seq = v.seq
    FROM ${sql.unnest(
      events.map(event => [event.message.id, event.seq]),
      ['uuid', 'int8'],
    )} AS v(id, seq)
    WHERE m.id = v.id`);
  return [...rows]
    .sort((a, b) => a.interaction_id.localeCompare(b.interaction_id) || a.seq - b.seq)
    .map(toEvent);
}

/**
 * An outbound message to the customer finally failed: its interaction is flagged (the tenant's
 * undelivered view) with an `interaction.undelivered` event. Answers the events, none when the
 * message is unknown (not an interaction's message).
 */
export async function flagUndelivered(
  tx: CommonQueryMethods,
  failure: { messageId: string; queue: string; code: FailureCode; reason: string },
): Promise<InteractionEvent[]> {
  if (!/^[0-9a-f-]{36}$/i.test(failure.messageId)) return [];
  const interactionId = await tx.maybeOneFirst(sql.type(z.object({ interaction_id: z.string() }))`
    UPDATE interactions i SET undelivered_at = now(), undelivered_code = ${failure.code},
           undelivered_reason = ${failure.reason.slice(0, 2_000)}, updated_at = now()
    FROM messages m
    WHERE m.id = ${failure.messageId} AND i.id = m.interaction_id
    RETURNING i.id AS interaction_id`);
  if (!interactionId) return [];
  return appendEvents(tx, interactionId, [
    {
      type: 'interaction.undelivered',
      payload: {
        messageId: failure.messageId,
        queue: failure.queue,
        code: failure.code,
        reason: failure.reason.slice(0, 2_000),
      },
    },
  ]);
}
