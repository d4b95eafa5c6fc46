import { z } from 'zod';
import { DEFAULT_RETENTION, defineQueue, jobIdFrom } from './definition.js';

/** One event for one webhook target. The event body and the target's secret are read from PostgreSQL. */
export const webhookPayload = z.object({
  tenantId: z.string().min(1),
  eventId: z.string().min(1).max(255),
  targetId: z.string().min(1).max(255),
});
export type WebhookPayload = z.infer<typeof webhookPayload>;

export const webhooksQueue = defineQueue({
  name: 'webhooks',
  schema: webhookPayload,
  jobOptions: { attempts: 8, backoff: { type: 'exponential', delay: 5_000 }, ...DEFAULT_RETENTION },
  jobId: p => jobIdFrom('webhooks', p.eventId, p.targetId),
  tenantOf: p => p.tenantId,
  durable: true,
});
