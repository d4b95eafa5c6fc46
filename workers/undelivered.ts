import type { CommonQueryMethods, DatabasePool } from 'slonik';
import { flagUndelivered, type InteractionEvent } from '../db/conversation.js';
import { applySmsStatus } from '../db/queries/sms.js';
import { applyCampaignStatus } from '../db/queries/sms-campaigns.js';
import { applyEmailStatus } from '../db/queries/email.js';
import type { FailureCode } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { upsertUndelivered, type UndeliveredFailure } from '../db/queries/undelivered.js';
import { undeliveredTotal } from '../lib/metrics.js';
import { failWork } from '../db/work.js';

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

/**
 * What a final failure means for the customer: an outbound message that finally failed flags its
 * interaction (`interaction.undelivered`, published to its sockets), with the failure's code and
 * reason (an SMS's status is `failed` with them). Other queues' failures are operational (the
 * undelivered records and their metric) and flag nothing.
 */
export function flagCustomerUndelivered(
  db: DatabasePool,
  publish: (events: InteractionEvent[]) => void,
  log: Logger,
): (queue: string, payload: unknown, reason: string, code: FailureCode) => Promise<void> {
  return async (queue, payload, reason, code) => {
    if (queue === 'outbound-email') return failEmail(db, payload, reason, code, log);
    if (queue !== 'outbound-sms') return;
    const messageId = (payload as { messageId?: unknown } | null)?.messageId;
    if (typeof messageId !== 'string') return;
    try {
      publish(
        await db.transaction(async tx => {
          // An SMS that could not be sent: its status says so (which also flags the interaction).
          if (queue === 'outbound-sms' && (payload as { campaign?: unknown }).campaign === true) {
            const tenantId = (payload as { tenantId?: unknown }).tenantId;
            if (typeof tenantId === 'string') {
              await applyCampaignStatus(
                tx,
                { tenantId, id: messageId },
                { status: 'failed', reason, code },
              );
            }
            return [];
          }
          if (queue === 'outbound-sms') {
            const events = await applySmsStatus(
              tx,
              { messageId },
              { status: 'failed', reason, code },
            );
            if (events) return events;
          }
          return flagUndelivered(tx, { messageId, queue, code, reason });
        }),
      );
    } catch (error) {
      log.warn({ err: error, messageId }, 'could not flag the undelivered interaction');
    }
  };
}

/** An email that could not be sent: its status is `failed` with the failure's code. */
async function failEmail(
  db: DatabasePool,
  payload: unknown,
  reason: string,
  code: FailureCode,
  log: Logger,
): Promise<void> {
  const { tenantId, recordId } = (payload ?? {}) as { tenantId?: unknown; recordId?: unknown };
  if (typeof tenantId !== 'string' || typeof recordId !== 'string') return;
  try {
    await db.transaction(tx =>
      applyEmailStatus(tx, { tenantId, id: recordId }, { status: 'failed', reason, code }),
    );
  } catch (error) {
    log.warn({ err: error, recordId }, "could not record the email's failure");
  }
}
