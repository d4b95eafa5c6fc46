import { z } from 'zod';
import type { InteractionEvent } from '../db/conversation.js';
import type { InteractionRow } from '../db/queries/interactions.js';
import './openapi.js'; // extends zod with .openapi() before eventView below uses it

/**
 * How the API shows what it stores, shared by the HTTP routes and the socket layer: an
 * interaction's event (the chat transcript's unit), the customer as a participant, and an
 * interaction as agents and contacts see it.
 */

export const eventView = z
  .object({
    id: z.string().uuid(),
    seq: z.number(),
    type: z.string(),
    interactionId: z.string().uuid(),
    occurredAt: z.string(),
    data: z.record(z.unknown()),
  })
  .openapi('InteractionEvent');

export const presentEvent = (event: InteractionEvent) => ({
  id: event.id,
  seq: event.seq,
  type: event.type,
  interactionId: event.interactionId,
  occurredAt: event.occurredAt,
  data: event.data,
});

export const customer = (session: { participant_id: string; nickname: string }) => ({
  type: 'customer' as const,
  id: session.participant_id,
  nickname: session.nickname,
});

/** An interaction as the agent API and a contact's history show it. */
export const presentInteraction = (row: InteractionRow) => ({
  id: row.id,
  mediaType: row.media,
  interactionSubtype: row.subtype,
  state: row.state,
  endpoint: row.endpoint,
  contactId: row.contact_id,
  lastSeq: row.last_seq,
  created: row.created_at,
  updated: row.updated_at,
  finished: row.finished_at,
});

/** The delivery fields of an outbound SMS (a conversation's message or a campaign record). */
export const presentSmsDelivery = (row: {
  delivery_status: string | null;
  delivery_reason: string | null;
  delivery_code: string | null;
  encoding: string | null;
  segments: number | null;
  provider: string | null;
  delivery_updated_at: string | null;
}) => ({
  status: row.delivery_status,
  reason: row.delivery_reason,
  code: row.delivery_code,
  encoding: row.encoding,
  segments: row.segments,
  provider: row.provider,
  updated: row.delivery_updated_at,
});
