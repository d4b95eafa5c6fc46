import { z } from 'zod';
import { DEFAULT_RETENTION, defineQueue, jobIdFrom } from './definition.js';

/** A provider's delivery receipt or status callback. */
export const receiptPayload = z.object({
  tenantId: z.string().min(1),
  provider: z.string().min(1).max(64),
  providerMessageId: z.string().min(1).max(255),
  status: z.string().min(1).max(64),
  occurredAt: z.string().datetime().optional(),
  errorCode: z.string().max(64).optional(),
});
export type ReceiptPayload = z.infer<typeof receiptPayload>;

export const receiptsQueue = defineQueue({
  name: 'receipts',
  schema: receiptPayload,
  jobOptions: { attempts: 8, backoff: { type: 'exponential', delay: 1_000 }, ...DEFAULT_RETENTION },
  // Providers' ids are unique per account, not across tenants: two tenants' aggregators may give
  // the same id, and a tenant may post another's. The tenant keeps their receipts apart.
  jobId: p => jobIdFrom('receipts', p.tenantId, p.provider, p.providerMessageId, p.status),
  tenantOf: p => p.tenantId,
  durable: true,
});
