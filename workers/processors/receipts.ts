import type { DatabasePool } from 'slonik';
import { applyCampaignStatus } from '../../db/queries/sms-campaigns.js';
import { applySmsStatus } from '../../db/queries/sms.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import { kannelReportStatus, SMS_STATUSES, type SmsStatus } from '../../domain/sms-status.js';
import { WorkFailure, type FailureCode } from '../../lib/errors.js';
import type { receiptsQueue, ReceiptPayload } from '../../queues/receipts.js';
import type { JobContext, Processor } from '../run-processor.js';

/**
 * A receipt in the hub's vocabulary, or undefined for a report type that means nothing here. A
 * `failed` report's code is `NEXUS_ERR_SMS_REPORTED_FAILED`; its reason is the provider's.
 */
function statusOf(
  receipt: ReceiptPayload,
): { status: SmsStatus; reason: string | null; code?: FailureCode } | undefined {
  const coded = (status: SmsStatus, reason: string | null) =>
    status === 'failed'
      ? { status, reason, code: 'NEXUS_ERR_SMS_REPORTED_FAILED' as const }
      : { status, reason };
  if (receipt.provider === 'Kannel') {
    const mapped = kannelReportStatus(Number(receipt.status));
    if (!mapped) return undefined;
    return coded(
      mapped.status,
      mapped.reason ? [mapped.reason, receipt.errorCode].filter(Boolean).join(': ') : null,
    );
  }
  if (!(SMS_STATUSES as readonly string[]).includes(receipt.status)) {
    throw new WorkFailure(
      'NEXUS_ERR_RECEIPT_UNKNOWN_STATUS',
      `unknown receipt status ${receipt.status}`,
    );
  }
  return coded(receipt.status as SmsStatus, receipt.errorCode ?? null);
}

/**
 * The `receipts` processor: applies a provider's delivery report to its message, forward only
 * (a late `sent` never overwrites `delivered`; a terminal status is final), with a
 * `message.status` event when the status changed and the undelivered flag for a failure. A
 * report for a message the hub does not know (yet) is retried, then kept as undelivered.
 */
export function createReceiptProcessor(deps: {
  db: DatabasePool;
  publisher: RealtimePublisher;
}): Processor<typeof receiptsQueue> {
  return async (receipt: ReceiptPayload, ctx: JobContext) => {
    const report = statusOf(receipt);
    if (!report) {
      ctx.log.info({ status: receipt.status }, 'report type without a status change');
      return;
    }
    // Kannel reports carry the hub's own message id; aggregators' the id they gave.
    const where =
      receipt.provider === 'Kannel'
        ? { messageId: receipt.providerMessageId, tenantId: receipt.tenantId }
        : { tenantId: receipt.tenantId, providerMessageId: receipt.providerMessageId };
    const events = await ctx.complete(async tx => {
      const changed = await applySmsStatus(tx, where, report);
      if (changed) return changed;
      // Not a conversation message: a campaign record, perhaps.
      const record =
        receipt.provider === 'Kannel'
          ? { tenantId: receipt.tenantId, id: receipt.providerMessageId }
          : { tenantId: receipt.tenantId, providerMessageId: receipt.providerMessageId };
      if (await applyCampaignStatus(tx, record, report)) return [];
      // A receipt can overtake the send's own record of the provider's id (a fast provider):
      // retried with the queue's backoff until the message is found, an undelivered record after.
      throw new WorkFailure(
        'NEXUS_ERR_RECEIPT_NO_MESSAGE',
        `no outbound SMS with ${receipt.provider} id ${receipt.providerMessageId} (yet)`,
        { retry: true },
      );
    });
    if (events && events.length > 0) deps.publisher.events(events);
  };
}
