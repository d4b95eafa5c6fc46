import type { QueueName, QueueOf } from '../../queues/index.js';
import type { Processor } from '../run-processor.js';
import type { SweepDeps } from '../sweeper.js';
import { processAiConnector } from './ai-connector.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import { createInboundProcessor } from './inbound.js';
import { createMaintenanceProcessor } from './maintenance.js';
import { createOutboundEmailProcessor } from './outbound-email.js';
import { createOutboundSmsProcessor } from './outbound-sms.js';
import { createReceiptProcessor } from './receipts.js';
import { createWebhookProcessor } from './webhooks.js';
import type { Config } from '../../lib/config.js';
import type { RedisConnection } from '../../lib/redis.js';
import type { InvalidationBus } from '../../lib/invalidation.js';

/** One processor per queue; a queue added to `QUEUES` without one here fails the type check. */
export type ProcessorMap = { [N in QueueName]: Processor<QueueOf<N>> };

export function createProcessors(
  deps: SweepDeps & {
    publisher: RealtimePublisher;
    bus: InvalidationBus;
    config: Config;
    redis: RedisConnection;
  },
  sweep: { afterMs: number; batch: number },
): ProcessorMap {
  return {
    inbound: createInboundProcessor(deps),
    'outbound-sms': createOutboundSmsProcessor(deps),
    'outbound-email': createOutboundEmailProcessor(deps),
    webhooks: createWebhookProcessor(deps),
    'ai-connector': processAiConnector,
    receipts: createReceiptProcessor(deps),
    maintenance: createMaintenanceProcessor(deps, sweep),
  };
}
