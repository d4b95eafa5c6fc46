import { z } from 'zod';
import { DEFAULT_RETENTION, defineQueue, jobIdFrom } from './definition.js';

/** One message for one AI connector (agent assist or bot). */
export const aiConnectorPayload = z.object({
  tenantId: z.string().min(1),
  messageId: z.string().min(1).max(255),
  connector: z.string().min(1).max(255),
});
export type AiConnectorPayload = z.infer<typeof aiConnectorPayload>;

export const aiConnectorQueue = defineQueue({
  name: 'ai-connector',
  schema: aiConnectorPayload,
  jobOptions: { attempts: 5, backoff: { type: 'exponential', delay: 1_000 }, ...DEFAULT_RETENTION },
  jobId: p => jobIdFrom('ai-connector', p.tenantId, p.messageId, p.connector),
  tenantOf: p => p.tenantId,
  durable: true,
});
