import { z } from 'zod';
import { HANDOFF_REASONS } from './bots.js';
import { EMAIL_STATUSES } from './email-status.js';

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
  /** `code`: the failure's catalogue code (docs/errors.md, "Failed work"); `reason` its detail. */
  'interaction.undelivered': z
    .object({ messageId: z.string(), queue: z.string(), code: z.string(), reason: z.string() })
    .strict(),
  'interaction.finished': z.object({ by: participant }).strict(),
  /** An outbound message's delivery status changed (SMS: accepted, sent, delivered, failed). */
  'message.status': z
    .object({
      messageId: z.string().uuid(),
      status: z.enum(['accepted', 'sent', 'delivered', 'failed']),
      reason: z.string().nullable(),
      /** A `failed` status's catalogue code; null for the others. */
      code: z.string().nullable(),
      segments: z.number().int().nullable(),
    })
    .strict(),
  /** A `botFirst` queue gave the new conversation to the bot, until `handoffAt` at the latest. */
  'interaction.bot': z.object({ queue: z.string(), handoffAt: z.string() }).strict(),
  /** The bot's conversation goes to the queue's agents: the bot asked, or the deadline passed. */
  'interaction.handoff': z
    .object({ reason: z.enum(HANDOFF_REASONS), detail: z.string().nullable() })
    .strict(),
  /**
   * An AI connector's help for the agent with one customer message (`messageId`): what the
   * customer means and answers or articles to use (`POST /nexus/v3/ai/{ccid}/interactions/{id}/suggestions`).
   * Agents and webhooks only; never delivered to the connector's own target.
   */
  'assist.suggestion': z
    .object({
      messageId: z.string().uuid(),
      connector: z.string(),
      provider: z.string(),
      intent: z.object({ name: z.string(), confidence: z.number() }).strict().nullable(),
      entities: z.array(
        z
          .object({
            kind: z.string(),
            value: z.string(),
            text: z.string(),
            start: z.number().int().optional(),
            end: z.number().int().optional(),
          })
          .strict(),
      ),
      sentiment: z
        .object({ score: z.number(), label: z.enum(['negative', 'neutral', 'positive']) })
        .strict()
        .nullable(),
      suggestions: z.array(
        z
          .object({
            type: z.enum(['reply', 'article']),
            text: z.string(),
            confidence: z.number(),
            /** Articles only. */
            title: z.string().optional(),
            /** Articles only. */
            url: z.string().optional(),
          })
          .strict(),
      ),
    })
    .strict(),
} as const;

export type CatalogueEventType = keyof typeof EVENT_DATA;

/**
 * Operational events of a tenant (not of an interaction: no `interactionId`, no `seq`). They are
 * delivered to the tenant's webhook targets like interaction events, except to the target they
 * are about.
 */
export const OPERATIONAL_EVENT_DATA = {
  /** A webhook delivery failed for good (its schedule ran out, or the receiver refused it). */
  'delivery.exhausted': z
    .object({
      target: z.string(),
      deliveryId: z.number().int(),
      eventId: z.string().uuid(),
      eventType: z.string(),
      attempts: z.number().int(),
      /** The failure's catalogue code (docs/errors.md, "Failed work"); `reason` its detail. */
      code: z.string(),
      reason: z.string(),
    })
    .strict(),
  /**
   * A campaign record's delivery status changed: an SMS record (with its segments), or an email
   * record (`channel: "email"`, with the Message-ID it carries).
   */
  'campaign.record.status': z.union([
    z
      .object({
        campaign: z.string(),
        recordId: z.string(),
        to: z.string(),
        status: z.enum(['accepted', 'sent', 'delivered', 'failed']),
        reason: z.string().nullable(),
        /** A `failed` status's catalogue code; null for the others. */
        code: z.string().nullable(),
        segments: z.number().int(),
      })
      .strict(),
    z
      .object({
        channel: z.literal('email'),
        campaign: z.string(),
        recordId: z.string(),
        to: z.string(),
        status: z.enum(EMAIL_STATUSES),
        reason: z.string().nullable(),
        /** A `failed` status's catalogue code; null for the others. */
        code: z.string().nullable(),
        messageId: z.string(),
      })
      .strict(),
  ]),
  /** A text to a campaign number (a cxcOnly channel), with the campaign that last wrote to it. */
  'campaign.reply': z
    .object({
      campaign: z.string().nullable(),
      recordId: z.string().nullable(),
      from: z.string(),
      to: z.string(),
      text: z.string(),
      keyword: z.enum(['opt-out', 'opt-in', 'help']).nullable(),
    })
    .strict(),
  /** A webhook target was disabled: it answered 410, or failed every attempt for too long. */
  'webhook.disabled': z
    .object({ target: z.string(), reason: z.string(), failingSince: z.string().nullable() })
    .strict(),
} as const;

export type OperationalEventType = keyof typeof OPERATIONAL_EVENT_DATA;
export const OPERATIONAL_EVENT_TYPES = Object.keys(
  OPERATIONAL_EVENT_DATA,
) as OperationalEventType[];

/** Every event type a webhook target may subscribe to. */
export const ALL_EVENT_DATA = { ...EVENT_DATA, ...OPERATIONAL_EVENT_DATA };
export const ALL_EVENT_TYPES = Object.keys(ALL_EVENT_DATA) as (keyof typeof ALL_EVENT_DATA)[];
