import { z } from 'zod';
import { DEFAULT_RETENTION, defineQueue, jobIdFrom } from './definition.js';

/**
 * One event for one webhook target (a `webhook_deliveries` row): retries and replays. The event,
 * the target and its secret are read from PostgreSQL.
 */
export const singleDelivery = z.object({
  tenantId: z.string().min(1),
  eventId: z.string().min(1).max(255),
  targetId: z.string().min(1).max(255),
  deliveryId: z.number().int().positive(),
});

/**
 * The first attempts of new deliveries to one target, as the dispatcher found them. A delivery
 * that is not delivered on its first attempt continues as a {@link singleDelivery} job with the
 * delivery's own key, so retries, final failures and replays are per event and target.
 */
export const deliveryBatch = z.object({
  tenantId: z.string().min(1),
  targetId: z.string().min(1).max(255),
  deliveryIds: z.array(z.number().int().positive()).min(1).max(1_000),
});

export const webhookPayload = z.union([singleDelivery, deliveryBatch]);
export type WebhookPayload = z.infer<typeof webhookPayload>;
export type SingleDelivery = z.infer<typeof singleDelivery>;
export type DeliveryBatch = z.infer<typeof deliveryBatch>;

export const isDeliveryBatch = (p: WebhookPayload): p is DeliveryBatch => 'deliveryIds' in p;

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
  // A delivery is in one batch only (the dispatcher takes it off the dispatch queue), so its id
  // names the batch. Batch ids start `webhooks.batch.` (the index of pending batches in migration
  // 0016 selects them by it); a single delivery's start `webhooks.delivery.`, so no tenant id
  // (`batch` is a valid one) can make a single delivery look like a batch.
  jobId: p =>
    isDeliveryBatch(p)
      ? jobIdFrom('webhooks', 'batch', p.tenantId, String(p.deliveryIds[0]))
      : jobIdFrom('webhooks', 'delivery', p.tenantId, p.eventId, p.targetId),
  tenantOf: p => p.tenantId,
  durable: true,
});

/**
 * The job ids a delivery's own work may carry, newest form first: work recorded before job ids
 * carried the tenant (migration 0017's release) keeps its stored id, `webhooks.<event>.<target>`,
 * and a replay must find it under that id.
 */
export const deliveryJobIds = (p: SingleDelivery): readonly string[] => [
  webhooksQueue.jobId(p),
  jobIdFrom('webhooks', p.eventId, p.targetId),
];
