import { z } from 'zod';
import { DEFAULT_RETENTION, defineQueue, jobIdFrom } from './definition.js';

/**
 * One event for one webhook target (a `webhook_deliveries` row). The event, the target and its
 * secret are read from PostgreSQL.
 */
export const webhookPayload = z.object({
  tenantId: z.string().min(1),
  eventId: z.string().min(1).max(255),
  targetId: z.string().min(1).max(255),
  deliveryId: z.number().int().positive(),
});
export type WebhookPayload = z.infer<typeof webhookPayload>;

/**
 * Receivers' failures do not use BullMQ's attempts: the processor schedules the next attempt on
 * the target's retry schedule itself (`moveToDelayed`). These attempts and this backoff only
 * cover the hub's own failures (PostgreSQL unreachable while recording, say).
 */
export const webhooksQueue = defineQueue({
  name: 'webhooks',
  schema: webhookPayload,
  jobOptions: {
    attempts: 10,
    backoff: { type: 'exponential', delay: 5_000 },
    ...DEFAULT_RETENTION,
  },
  jobId: p => jobIdFrom('webhooks', p.eventId, p.targetId),
  tenantOf: p => p.tenantId,
  durable: true,
});
