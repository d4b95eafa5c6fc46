import type { DatabasePool } from 'slonik';
import { handOffBot, overdueBots } from '../../db/routing/handoff.js';
import { expireOffers } from '../../db/routing/offers.js';
import { waitingQueues } from '../../db/routing/queueing.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import type { maintenanceQueue } from '../../queues/index.js';
import { routeQueues } from '../../queues/routing.js';
import type { Processor } from '../run-processor.js';
import { sweepPendingWork, type SweepDeps } from '../sweeper.js';

/**
 * Hands the bots' conversations among `interactionIds` to their queues' agents (reason
 * `deadline`), each in its own transaction; those the bot no longer holds are left alone.
 * Answers the queues to route.
 */
async function handOffAtDeadline(
  db: DatabasePool,
  interactionIds: readonly string[],
  publisher: RealtimePublisher | undefined,
): Promise<{ tenantId: string; queue: string }[]> {
  const queues = new Map<string, { tenantId: string; queue: string }>();
  for (const id of interactionIds) {
    const outcome = await db.transaction(tx =>
      handOffBot(tx, { id }, { reason: 'deadline', detail: null }),
    );
    if (!outcome?.handedOff) continue;
    publisher?.events(outcome.events);
    if (outcome.queue) {
      const { tenantId, queue } = { tenantId: outcome.tenantId, queue: outcome.queue };
      queues.set(`${tenantId}/${queue}`, { tenantId, queue });
    }
  }
  return [...queues.values()];
}

/**
 * Processor of the `maintenance` queue: the sweep the repeatable job asks for, then routing of
 * whatever still waits in a queue (a safety net behind the routing that follows every new
 * interaction, ready agent and freed capacity); the expiry of unanswered routing offers; and the
 * bots' deadlines (a conversation still with its bot goes to the queue's agents). The sweep
 * hands off bots past their deadline too, should a deadline's job be lost. Without a publisher
 * nothing is routed (offers still expire, bots are still handed off). A routing failure fails
 * the job.
 */
export function createMaintenanceProcessor(
  deps: SweepDeps & { publisher?: RealtimePublisher },
  options: { afterMs: number; batch: number },
): Processor<typeof maintenanceQueue> {
  const publisher = deps.publisher;
  const routing = publisher
    ? { db: deps.db, queues: deps.queues, log: deps.log, publisher }
    : undefined;
  return async payload => {
    switch (payload.task) {
      case 'sweep-pending-work':
        await sweepPendingWork(deps, options);
        await handOffAtDeadline(deps.db, await overdueBots(deps.db), publisher);
        if (routing) {
          // Unanswered offers first: their interactions wait again, and are routed below.
          await expireOffers(deps.db, events => routing.publisher.events(events));
          await routeQueues(routing, await waitingQueues(deps.db), 'throw');
        }
        return;
      case 'offer-timeout': {
        const expired = await expireOffers(deps.db, events => publisher?.events(events));
        if (routing) await routeQueues(routing, expired, 'throw');
        return;
      }
      case 'bot-deadline': {
        const handedOff = await handOffAtDeadline(deps.db, [payload.interactionId], publisher);
        if (routing) await routeQueues(routing, handedOff, 'throw');
        return;
      }
    }
  };
}
