import { z } from 'zod';
import type { Logger } from '../lib/logger.js';
import { defineQueue, jobIdFrom } from './definition.js';
import type { QueueSet } from './index.js';

/**
 * Internal housekeeping: the sweeper's repeatable job. Not durable (it is its own safety net)
 * and never recorded as undelivered: a failed sweep simply runs again on the next tick.
 */
export const maintenancePayload = z.discriminatedUnion('task', [
  z.object({ task: z.literal('sweep-pending-work') }),
  /** Expires a routing offer not answered in time (the sweep is the safety net). */
  z.object({
    task: z.literal('offer-timeout'),
    interactionId: z.string().uuid(),
    expiresAt: z.string().datetime(),
  }),
  /** Hands a bot's conversation to agents at the queue's deadline, if the bot still holds it. */
  z.object({
    task: z.literal('bot-deadline'),
    interactionId: z.string().uuid(),
    handoffAt: z.string().datetime(),
  }),
]);
export type MaintenancePayload = z.infer<typeof maintenancePayload>;

export const SWEEP_SCHEDULER_ID = 'sweep-pending-work';

export const maintenanceQueue = defineQueue({
  name: 'maintenance',
  schema: maintenancePayload,
  jobOptions: { attempts: 1, removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } },
  // Housekeeping belongs to no tenant: the sweep is one job for the deployment, and an offer's
  // timeout or a bot's deadline is keyed on its interaction's id, a UUID no two tenants share.
  jobId: p => {
    switch (p.task) {
      case 'offer-timeout':
        return jobIdFrom('maintenance', p.task, p.interactionId, p.expiresAt);
      case 'bot-deadline':
        return jobIdFrom('maintenance', p.task, p.interactionId);
      case 'sweep-pending-work':
        return jobIdFrom('maintenance', p.task);
    }
  },
  tenantOf: () => undefined,
  durable: false,
});

/** Times out a routing offer: a delayed maintenance job when it expires. Never throws. */
export function scheduleOfferTimeout(
  queues: QueueSet,
  offer: { interactionId: string; expiresAt: Date },
  log: Logger,
): void {
  const payload: MaintenancePayload = {
    task: 'offer-timeout',
    interactionId: offer.interactionId,
    expiresAt: offer.expiresAt.toISOString(),
  };
  queues
    .get('maintenance')
    .add('offer-timeout', payload, {
      jobId: maintenanceQueue.jobId(payload),
      delay: Math.max(0, offer.expiresAt.getTime() - Date.now()) + 50,
    })
    .catch((error: unknown) =>
      log.warn({ err: error }, 'could not time the offer; the sweep expires it'),
    );
}

/**
 * Times a bot's conversation out: a delayed maintenance job at the queue's deadline, which hands
 * it to agents if the bot still holds it (the sweep is the safety net). Never throws.
 */
export function scheduleBotDeadline(
  queues: QueueSet,
  bot: { interactionId: string; handoffAt: Date },
  log: Logger,
): void {
  const payload: MaintenancePayload = {
    task: 'bot-deadline',
    interactionId: bot.interactionId,
    handoffAt: bot.handoffAt.toISOString(),
  };
  queues
    .get('maintenance')
    .add('bot-deadline', payload, {
      jobId: maintenanceQueue.jobId(payload),
      delay: Math.max(0, bot.handoffAt.getTime() - Date.now()) + 50,
    })
    .catch((error: unknown) =>
      log.warn({ err: error }, "could not time the bot's deadline; the sweep hands it off"),
    );
}
