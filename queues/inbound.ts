import { z } from 'zod';
import { DEFAULT_RETENTION, defineQueue, jobIdFrom } from './definition.js';

/** A normalized inbound message from any channel: web chat, SMS, third-party (Async), email reply. */
export const inboundPayload = z.object({
  tenantId: z.string().min(1),
  channel: z.enum(['chat', 'sms', 'async', 'email']),
  /** The provider's or client's message id: the de-duplication key. */
  externalId: z.string().min(1).max(255),
  /** The channel's id for the sender (phone number, email address, chat session id). */
  from: z.string().min(1).max(320),
  /** The channel's id of the destination (the company's number, channelId, mailbox). */
  to: z.string().min(1).max(320).optional(),
  text: z.string().max(10_000).optional(),
  attachments: z
    .array(z.object({ url: z.string().url(), mimeType: z.string().max(255).optional() }))
    .max(10)
    .optional(),
  receivedAt: z.string().datetime(),
  /**
   * `message` (default): a customer message. `session`: a chat session opened (match the
   * contact, announce the interaction).
   */
  kind: z.enum(['message', 'session']).optional(),
  /** Known when the API stored the message itself (web chat): the processor numbers it. */
  interactionId: z.string().uuid().optional(),
  messageId: z.string().uuid().optional(),
});
export type InboundPayload = z.infer<typeof inboundPayload>;

export const inboundQueue = defineQueue({
  name: 'inbound',
  schema: inboundPayload,
  jobOptions: { attempts: 8, backoff: { type: 'exponential', delay: 1_000 }, ...DEFAULT_RETENTION },
  jobId: p => jobIdFrom('inbound', p.tenantId, p.channel, p.externalId),
  tenantOf: p => p.tenantId,
  durable: true,
});
