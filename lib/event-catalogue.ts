import { z } from 'zod';

/**
 * The interaction event catalogue: the `data` of every event type (design §6). Events are
 * `{id, seq, type, interactionId, occurredAt, data}`; sockets, webhooks and transcripts carry
 * them. The OpenAPI document publishes these schemas (components `EventData.<type>`), and the
 * tests check that every event the hub emits matches its schema.
 */
const participant = z
  .object({
    id: z.string(),
    type: z.enum(['customer', 'agent', 'bot', 'system']),
    nickname: z.string().nullable(),
  })
  .strict();
const agent = z.object({ id: z.string().uuid(), nickname: z.string() }).strict();

export const EVENT_DATA = {
  'interaction.started': z
    .object({
      interaction: z
        .object({
          id: z.string().uuid(),
          mediaType: z.string(),
          interactionSubtype: z.string(),
          endpoint: z.string().nullable(),
          contactId: z.string().uuid(),
          returningContact: z.boolean(),
        })
        .strict(),
    })
    .strict(),
  'participant.joined': z.object({ participant }).strict(),
  'participant.left': z.object({ participant }).strict(),
  'message.created': z
    .object({
      message: z
        .object({
          id: z.string().uuid(),
          type: z.string(),
          text: z.string().nullable(),
          clientMessageId: z.string().nullable(),
          createdAt: z.string(),
        })
        .strict(),
      from: participant,
    })
    .strict(),
  read: z.object({ participant, seq: z.number().int().positive() }).strict(),
  'interaction.offered': z
    .object({
      agent,
      queue: z.string(),
      reason: z.string(),
      waitedMs: z.number(),
      expiresAt: z.string(),
    })
    .strict(),
  'interaction.queued': z
    .object({ queue: z.string(), reason: z.string(), preferredAgentId: z.string().nullable() })
    .strict(),
  'interaction.assigned': z
    .object({ agent, queue: z.string().nullable(), waitedMs: z.number() })
    .strict(),
  'interaction.parked': z.object({ agent }).strict(),
  'interaction.undelivered': z
    .object({ messageId: z.string(), queue: z.string(), reason: z.string() })
    .strict(),
  'interaction.finished': z.object({ by: participant }).strict(),
} as const;

export type CatalogueEventType = keyof typeof EVENT_DATA;
