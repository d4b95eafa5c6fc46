import { expireOffers, routeQueue, routeWaiting } from '../../db/routing.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import { scheduleOfferTimeout, type maintenanceQueue } from '../../queues/index.js';
import type { Processor } from '../run-processor.js';
import { sweepPendingWork, type SweepDeps } from '../sweeper.js';

/**
 * Processor of the `maintenance` queue: the sweep the repeatable job asks for, then routing of
 * whatever still waits in a queue (a safety net behind the routing that follows every new
 * interaction, ready agent and freed capacity); and the expiry of unanswered routing offers.
 */
export function createMaintenanceProcessor(
  deps: SweepDeps & { publisher?: RealtimePublisher },
  options: { afterMs: number; batch: number },
): Processor<typeof maintenanceQueue> {
  const publish = deps.publisher;
  const route = async (queues: { tenantId: string; queue: string }[]) => {
    if (!publish) return;
    for (const { tenantId, queue } of queues) {
      await routeQueue(
        deps.db,
        tenantId,
        queue,
        events => publish.events(events),
        offer => scheduleOfferTimeout(deps.queues, offer, deps.log),
      );
    }
  };
  return async payload => {
    switch (payload.task) {
      case 'sweep-pending-work':
        await sweepPendingWork(deps, options);
        if (publish) {
          await routeWaiting(
            deps.db,
            events => publish.events(events),
            offer => scheduleOfferTimeout(deps.queues, offer, deps.log),
          );
        }
        return;
      case 'offer-timeout':
        await route(await expireOffers(deps.db, events => publish?.events(events)));
        return;
    }
  };
}
