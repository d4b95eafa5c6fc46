import { expireOffers } from '../../db/routing/offers.js';
import { waitingQueues } from '../../db/routing/queueing.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import type { maintenanceQueue } from '../../queues/index.js';
import { routeQueues } from '../../queues/routing.js';
import type { Processor } from '../run-processor.js';
import { sweepPendingWork, type SweepDeps } from '../sweeper.js';

/**
 * Processor of the `maintenance` queue: the sweep the repeatable job asks for, then routing of
 * whatever still waits in a queue (a safety net behind the routing that follows every new
 * interaction, ready agent and freed capacity); and the expiry of unanswered routing offers.
 * Without a publisher nothing is routed (offers still expire). A routing failure fails the job.
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
    }
  };
}
