import { z } from 'zod';
import type { EventType, InteractionEvent } from '../../db/conversation.js';

/**
 * What a customer sees of its chat: the one place that decides it, used by the REST transcript
 * and the `/chat` socket alike. Customers get the conversation (messages, who joined and left,
 * reads, typing, the end) and nothing of routing: no offers, assignments, queues, routing
 * reasons, parking, transfers' internals, undelivered flags or delivery statuses. Participants
 * other than the customer appear by type and display name only (no agent id); the interaction's
 * start carries no contact or endpoint. See docs/chat.md.
 */
export const CUSTOMER_EVENT_TYPES = [
  'interaction.started',
  'participant.joined',
  'participant.left',
  'message.created',
  'read',
  'interaction.finished',
] as const satisfies readonly EventType[];
export type CustomerEventType = (typeof CUSTOMER_EVENT_TYPES)[number];

const participantView = z
  .object({
    type: z.enum(['customer', 'agent', 'bot', 'system']),
    /** The customer's own participant id; absent for agents, bots and the system. */
    id: z.string().optional(),
    nickname: z.string().nullable(),
  })
  .strict();
export type CustomerParticipant = z.infer<typeof participantView>;

/** The `data` of each event a customer receives (the tests check every one against these). */
export const CUSTOMER_EVENT_DATA = {
  'interaction.started': z
    .object({ interaction: z.object({ id: z.string().uuid(), mediaType: z.string() }).strict() })
    .strict(),
  'participant.joined': z.object({ participant: participantView }).strict(),
  'participant.left': z.object({ participant: participantView }).strict(),
  'message.created': z
    .object({
      message: z
        .object({
          id: z.string().uuid(),
          type: z.string(),
          text: z.string().nullable(),
          /** The customer's own client message id; absent on others' messages. */
          clientMessageId: z.string().nullable().optional(),
          createdAt: z.string(),
        })
        .strict(),
      from: participantView,
    })
    .strict(),
  read: z.object({ participant: participantView, seq: z.number().int().positive() }).strict(),
  'interaction.finished': z.object({ by: participantView }).strict(),
} as const satisfies Record<CustomerEventType, z.ZodTypeAny>;

/** An event as the customer receives it. */
export interface CustomerEvent {
  id: string;
  seq: number;
  type: CustomerEventType;
  interactionId: string;
  occurredAt: string;
  data: Record<string, unknown>;
}

/** A participant as the customer sees it: the customer itself in full, anyone else by name. */
export function customerParticipant(value: unknown): CustomerParticipant {
  const p = (value ?? {}) as { type?: unknown; id?: unknown; nickname?: unknown };
  const type =
    p.type === 'customer' || p.type === 'bot' || p.type === 'system' ? p.type : ('agent' as const);
  const nickname = typeof p.nickname === 'string' ? p.nickname : null;
  return type === 'customer' && typeof p.id === 'string'
    ? { type, id: p.id, nickname }
    : { type, nickname };
}

function customerData(event: InteractionEvent): Record<string, unknown> | undefined {
  const data = event.data;
  switch (event.type) {
    case 'interaction.started': {
      const interaction = (data.interaction ?? {}) as { id?: unknown; mediaType?: unknown };
      return { interaction: { id: interaction.id, mediaType: interaction.mediaType } };
    }
    case 'participant.joined':
    case 'participant.left':
      return { participant: customerParticipant(data.participant) };
    case 'message.created': {
      const message = (data.message ?? {}) as Record<string, unknown>;
      const from = customerParticipant(data.from);
      return {
        message: {
          id: message.id,
          type: message.type,
          text: message.text,
          ...(from.type === 'customer' ? { clientMessageId: message.clientMessageId } : {}),
          createdAt: message.createdAt,
        },
        from,
      };
    }
    case 'read':
      return { participant: customerParticipant(data.participant), seq: data.seq };
    case 'interaction.finished':
      return { by: customerParticipant(data.by) };
    case 'interaction.queued':
    case 'interaction.offered':
    case 'interaction.assigned':
    case 'interaction.parked':
    case 'interaction.undelivered':
    case 'message.status':
    case 'interaction.bot':
    case 'interaction.handoff':
    case 'assist.suggestion':
      return undefined;
  }
}

/**
 * The event as the customer receives it, or undefined when customers do not see this type. A
 * caller that skips an event still counts its seq as read (the customer's seqs have gaps).
 */
export function customerEvent(event: InteractionEvent): CustomerEvent | undefined {
  const data = customerData(event);
  if (!data) return undefined;
  return {
    id: event.id,
    seq: event.seq,
    type: event.type as CustomerEventType,
    interactionId: event.interactionId,
    occurredAt: event.occurredAt,
    data,
  };
}
