import { WorkFailure } from '../../lib/errors.js';
import type { aiConnectorQueue } from '../../queues/index.js';
import type { Processor } from '../run-processor.js';

/**
 * The `ai-connector` queue in a hub worker. Its processor is the AI connector's (`npm run athena`,
 * athena/worker/connector.ts), and hub workers leave the queue to it unless NEXUS_WORKER_QUEUES
 * names it. A hub worker told to run it parks the work (`NEXUS_ERR_WORK_NOT_BUILT`): an
 * undelivered record, replayed once the connector runs.
 */
export const processAiConnector: Processor<typeof aiConnectorQueue> = () =>
  Promise.reject(
    new WorkFailure(
      'NEXUS_ERR_WORK_NOT_BUILT',
      'the ai-connector queue is run by the AI connector (npm run athena), not by hub workers; replay this work once the connector runs',
    ),
  );
