import { routeWaiting } from '../../db/routing.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import type { maintenanceQueue } from '../../queues/index.js';
import type { Processor } from '../run-processor.js';
import { sweepPendingWork, type SweepDeps } from '../sweeper.js';

/**
 * Processor of the `maintenance` queue: runs the sweep the repeatable job asks for, then routes
 * whatever still waits in a queue while an agent has room (a safety net behind the routing that
 * follows every new interaction, ready agent and freed capacity).
 */
export function createMaintenanceProcessor(
  deps: SweepDeps & { publisher?: RealtimePublisher },
  options: { afterMs: number; batch: number },
): Processor<typeof maintenanceQueue> {
  return async payload => {
    switch (payload.task) {
      case 'sweep-pending-work':
        await sweepPendingWork(deps, options);
        if (deps.publisher) {
          const publisher = deps.publisher;
          await routeWaiting(deps.db, events => publisher.events(events));
        }
        return;
    }
  };
}
