import { Queue, type JobType, type JobsOptions } from 'bullmq';
import type { RedisConnection } from '../lib/redis.js';
import type { Logger } from '../lib/logger.js';
import type { QueueDepth } from '../lib/metrics.js';
import { aiConnectorQueue } from './ai-connector.js';
import type { QueueDefinition } from './definition.js';
import { inboundQueue } from './inbound.js';
import { maintenanceQueue } from './maintenance.js';
import { outboundEmailQueue } from './outbound-email.js';
import { outboundSmsQueue } from './outbound-sms.js';
import { receiptsQueue } from './receipts.js';
import { webhooksQueue } from './webhooks.js';

export * from './definition.js';
export * from './inbound.js';
export * from './outbound-sms.js';
export * from './outbound-email.js';
export * from './webhooks.js';
export * from './ai-connector.js';
export * from './receipts.js';
export * from './maintenance.js';

/**
 * Every queue, by name. `createProcessors` (workers/processors/index.ts) must map each name to a
 * processor (type-checked).
 */
export const QUEUES = {
  inbound: inboundQueue,
  'outbound-sms': outboundSmsQueue,
  'outbound-email': outboundEmailQueue,
  webhooks: webhooksQueue,
  'ai-connector': aiConnectorQueue,
  receipts: receiptsQueue,
  maintenance: maintenanceQueue,
} as const;

export type QueueName = keyof typeof QUEUES;
export type QueueOf<N extends QueueName> = (typeof QUEUES)[N];
export const QUEUE_NAMES = Object.keys(QUEUES) as QueueName[];

export const isQueueName = (name: string): name is QueueName => Object.hasOwn(QUEUES, name);

export function queueDefinition(name: string): QueueDefinition | undefined {
  return isQueueName(name) ? QUEUES[name] : undefined;
}

const COUNTED_STATES: JobType[] = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'waiting-children',
  'completed',
  'failed',
];

/**
 * Delayed jobs whose time has come: retries after their backoff and jobs delayed by a send rate
 * that a worker promotes to the wait list only when it next looks for work, so a saturated queue
 * holds them in its delayed set. BullMQ scores a delayed job `timestamp * 0x1000 + counter`
 * (commands/includes/getDelayedScore.lua), so the due ones score below `(now + 1) * 0x1000`.
 */
function countDueDelayed(connection: RedisConnection, queue: Queue, now: number): Promise<number> {
  return connection.zcount(queue.toKey('delayed'), 0, (now + 1) * 0x1000 - 1);
}

/**
 * The producer side: one BullMQ `Queue` per queue, all on one fail-fast Redis connection.
 * The caller owns the connection and closes it after {@link QueueSet.close}.
 */
export class QueueSet {
  private readonly queues = new Map<QueueName, Queue>();

  /** `overrides` replaces job options per queue (tests shrink attempts and backoff). */
  constructor(
    private readonly connection: RedisConnection,
    readonly prefix: string,
    log: Logger,
    overrides: Partial<Record<QueueName, JobsOptions>> = {},
  ) {
    for (const name of QUEUE_NAMES) {
      const defaultJobOptions = { ...QUEUES[name].jobOptions, ...overrides[name] };
      const queue = new Queue(name, { connection, prefix, defaultJobOptions });
      // Connection errors are logged, throttled, by lib/redis.ts; the queues re-emit each of them.
      queue.on('error', error => {
        if (this.ready) log.warn({ err: error, queue: name }, 'queue error');
      });
      this.queues.set(name, queue);
    }
  }

  /** Whether the producers' connection can take commands now. */
  get ready(): boolean {
    return this.connection.status === 'ready';
  }

  get connectionStatus(): string {
    return this.connection.status;
  }

  get(name: QueueName): Queue {
    const queue = this.queues.get(name);
    if (!queue) throw new Error(`unknown queue "${name}"`);
    return queue;
  }

  all(): Queue[] {
    return [...this.queues.values()];
  }

  /**
   * Job counts by state, the jobs a worker would take now (the backlog) and the age of the oldest
   * waiting job, per queue (for the gauges and the autoscalers).
   */
  async depths(now = Date.now()): Promise<QueueDepth[]> {
    return Promise.all(
      [...this.queues].map(async ([name, queue]) => {
        const [counts, oldest, dueDelayed] = await Promise.all([
          queue.getJobCounts(...COUNTED_STATES),
          queue.getJobs(['wait'], 0, 0, true),
          countDueDelayed(this.connection, queue, now),
        ]);
        const first = oldest[0];
        return {
          queue: name,
          counts,
          backlog: (counts.waiting ?? 0) + (counts.prioritized ?? 0) + dueDelayed,
          oldestWaitingAgeSeconds: first ? Math.max(0, (now - first.timestamp) / 1000) : 0,
        };
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.all().map(queue => queue.close()));
  }
}
