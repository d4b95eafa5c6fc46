import { z } from 'zod';
import { DEFAULT_RETENTION, defineQueue, jobIdFrom } from './definition.js';

/** One email: a campaign record or an agent's reply, read from its row by id. */
export const outboundEmailPayload = z.object({
  tenantId: z.string().min(1),
  recordId: z.string().min(1).max(255),
});
export type OutboundEmailPayload = z.infer<typeof outboundEmailPayload>;

export const outboundEmailQueue = defineQueue({
  name: 'outbound-email',
  schema: outboundEmailPayload,
  jobOptions: { attempts: 6, backoff: { type: 'exponential', delay: 5_000 }, ...DEFAULT_RETENTION },
  jobId: p => jobIdFrom('outbound-email', p.tenantId, p.recordId),
  tenantOf: p => p.tenantId,
  durable: true,
});
