import { z } from 'zod';
import { DEFAULT_RETENTION, defineQueue, jobIdFrom } from './definition.js';

/** One SMS to send through the tenant's provider. Text and numbers are read from the message row. */
export const outboundSmsPayload = z.object({
  tenantId: z.string().min(1),
  messageId: z.string().min(1).max(255),
  /** The id is a campaign record's, not a conversation message's. */
  campaign: z.boolean().optional(),
});
export type OutboundSmsPayload = z.infer<typeof outboundSmsPayload>;

export const outboundSmsQueue = defineQueue({
  name: 'outbound-sms',
  schema: outboundSmsPayload,
  jobOptions: { attempts: 6, backoff: { type: 'exponential', delay: 2_000 }, ...DEFAULT_RETENTION },
  jobId: p => jobIdFrom('outbound-sms', p.tenantId, p.messageId),
  tenantOf: p => p.tenantId,
  durable: true,
});
