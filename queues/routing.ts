import type { DatabasePool } from 'slonik';
import { routeQueue } from '../db/routing/queueing.js';
import type { Logger } from '../lib/logger.js';
import type { RealtimePublisher } from '../lib/realtime-publisher.js';
import type { QueueSet } from './index.js';
import { scheduleOfferTimeout } from './maintenance.js';

/**
 * Routing queues, the one way the API and the workers do it: what waits in each queue is offered
 * to ready agents with room (db/routing/queueing.ts), each offer's events are published after its
 * commit, and each offer's timeout is scheduled as a delayed maintenance job. It lives here, above
 * db/, because the timeout is a job (queues/maintenance.ts).
 */

/** What routing needs: the database, the publisher of events, and what times offers out. */
export interface RoutingDeps {
  db: DatabasePool;
  publisher: RealtimePublisher;
  /** Producers and a logger to time offers out; without both, the maintenance sweep expires them. */
  queues?: QueueSet | undefined;
  log?: Logger | undefined;
}

/**
 * Routes each queue in turn. After a change that may let work flow (an interaction waiting, an
 * agent ready, capacity freed) a queue's failure is logged and the next is routed (`'log'`, the
 * default): the maintenance sweep retries. The sweep itself passes `'throw'`: the first failure
 * fails its job.
 */
export async function routeQueues(
  deps: RoutingDeps,
  queues: Iterable<{ tenantId: string; queue: string }>,
  failures: 'log' | 'throw' = 'log',
): Promise<void> {
  for (const { tenantId, queue } of queues) {
    const routed = routeQueue(
      deps.db,
      tenantId,
      queue,
      events => deps.publisher.events(events),
      offer => {
        if (deps.queues && deps.log) scheduleOfferTimeout(deps.queues, offer, deps.log);
      },
    );
    if (failures === 'throw') {
      await routed;
    } else {
      await routed.catch((error: unknown) =>
        deps.log?.warn({ err: error, queue }, 'routing failed; the sweep retries'),
      );
    }
  }
}
