import type { CommonQueryMethods } from 'slonik';
import type { RoutingQueueStats } from '../../lib/metrics.js';
import { listQueues } from '../queries/routing-queues.js';

/** The routing queues' live figures, read at scrape time for the metrics (bin/serve-api.ts). */

/** Live figures of every routing queue (for the metrics): the API's queue statistics. */
export async function routingQueueStats(db: CommonQueryMethods): Promise<RoutingQueueStats[]> {
  return (await listQueues(db)).map(row => ({
    tenant: row.tenant_id,
    queue: row.name,
    waiting: row.waiting,
    oldestWaitSeconds: (row.oldest_wait_ms ?? 0) / 1000,
    agentsReady: row.agents_ready,
    assigned: row.assigned,
  }));
}
