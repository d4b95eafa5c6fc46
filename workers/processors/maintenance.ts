import type { maintenanceQueue } from '../../queues/index.js';
import type { Processor } from '../run-processor.js';
import { sweepPendingWork, type SweepDeps } from '../sweeper.js';

/** Processor of the `maintenance` queue: runs the sweep the repeatable job asks for. */
export function createMaintenanceProcessor(
  deps: SweepDeps,
  options: { afterMs: number; batch: number },
): Processor<typeof maintenanceQueue> {
  return async payload => {
    switch (payload.task) {
      case 'sweep-pending-work':
        await sweepPendingWork(deps, options);
        return;
    }
  };
}
