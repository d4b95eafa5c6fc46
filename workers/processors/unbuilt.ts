import { WorkFailure } from '../../lib/errors.js';
import type { QueueDefinition } from '../../queues/definition.js';
import type { Processor } from '../run-processor.js';

/**
 * The processor of a queue whose capability has not shipped yet. Work sent to it is not lost:
 * it fails permanently at once (`NEXUS_ERR_WORK_NOT_BUILT`), lands in `undelivered` (counted,
 * listed, alerting), and can be replayed with the admin API once the real processor is deployed.
 */
export function parkUntilBuilt<D extends QueueDefinition>(
  definition: D,
  capability: string,
): Processor<D> {
  return () =>
    Promise.reject(
      new WorkFailure(
        'NEXUS_ERR_WORK_NOT_BUILT',
        `queue "${definition.name}" has no processor in this version (${capability}); replay this work after upgrading`,
      ),
    );
}
