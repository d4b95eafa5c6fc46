import type { CommonQueryMethods } from 'slonik';
import { upsertUndelivered, type UndeliveredFailure } from '../db/queries/undelivered.js';
import { undeliveredTotal } from '../lib/metrics.js';
import { failWork } from '../queues/work.js';

/**
 * Ends pending work as failed and records it as undelivered, in one transaction. Does nothing
 * when the work was not pending (another run or the sweeper recorded it first), so each final
 * failure is counted once. Returns whether it recorded. Inside a transaction, nests as a savepoint.
 */
export async function recordFinalFailure(
  db: CommonQueryMethods,
  failure: UndeliveredFailure,
): Promise<boolean> {
  const recorded = await db.transaction(async tx => {
    if (!(await failWork(tx, failure.queue, failure.jobId))) return false;
    await upsertUndelivered(tx, failure);
    return true;
  });
  if (recorded) undeliveredTotal.inc({ queue: failure.queue });
  return recorded;
}
