/**
 * Provider feedback on outbound email: SparkPost's event webhook batches and an Async gateway's
 * email receipts, mapped to the hub's statuses and suppression list and applied in one
 * transaction per call. SparkPost retries a batch until it answers 2xx, so batches
 * (`X-MessageSystems-Batch-ID`) and events (`event_id`) are recorded as seen and a repeat
 * changes nothing; a gateway's repeated receipt changes nothing twice either, since statuses
 * only move forward and suppressing a suppressed address is a no-op. Feedback about a mail the
 * tenant does not have is counted as ignored, never refused: a provider would retry it forever.
 */
import type { CommonQueryMethods, DatabasePool } from 'slonik';
import { z } from 'zod';
import { changeEmailConsent, type SuppressionReason } from '../../db/queries/email-consent.js';
import {
  applyEmailStatus,
  findEmail,
  findEmailByProviderId,
  markFeedbackSeen,
  type EmailRow,
} from '../../db/queries/email.js';
import { suppressionKey } from '../../domain/email-status.js';
import { AppError, type FailureCode } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { emailFeedbackTotal } from '../../lib/metrics.js';

export interface EmailFeedbackDeps {
  db: DatabasePool;
  log: Logger;
}

/** What one piece of feedback does to its mail. */
export interface EmailFeedback {
  /** The recipient it concerns; the mail's only recipient when the provider names none. */
  address: string | undefined;
  status?: 'delivered' | 'bounced' | 'complained' | 'failed';
  reason: string | null;
  /** A `failed` status's code. */
  code?: FailureCode;
  /** Adds the recipient to the suppression list. */
  suppress?: { reason: Exclude<SuppressionReason, 'manual'>; detail: string | null };
}

/** The kinds of `nexus_email_feedback_total`. */
type FeedbackKind = 'delivered' | 'bounced' | 'hard_bounce' | 'complained' | 'unsubscribed';

/** Provider text kept in a status reason or an audit detail. */
const MAX_TEXT = 500;
const clip = (text: string | undefined): string | null =>
  text === undefined || text.trim() === '' ? null : text.trim().slice(0, MAX_TEXT);

const recipientsOf = (mail: EmailRow): string[] =>
  [...mail.to_addresses, ...mail.cc_addresses, ...mail.bcc_addresses].map(entry =>
    suppressionKey(entry.address),
  );

/**
 * The recipient feedback concerns: the one it names when the mail went to it, else (none named)
 * the mail's only recipient; undefined otherwise, and nothing is suppressed.
 */
function recipientOf(mail: EmailRow, address: string | undefined): string | undefined {
  const recipients = recipientsOf(mail);
  if (address === undefined) return recipients.length === 1 ? recipients[0] : undefined;
  return recipients.includes(suppressionKey(address)) ? suppressionKey(address) : undefined;
}

/** Applies one piece of feedback to its mail; answers the metric kinds it changed. */
async function applyFeedback(
  tx: CommonQueryMethods,
  mail: EmailRow,
  feedback: EmailFeedback,
  source: string,
  log: Logger,
): Promise<FeedbackKind[]> {
  const kinds: FeedbackKind[] = [];
  if (feedback.status) {
    const result = await applyEmailStatus(
      tx,
      { tenantId: mail.tenant_id, id: mail.id },
      { status: feedback.status, reason: feedback.reason, code: feedback.code },
    );
    const now = result?.changed ? result.row.delivery_status : undefined;
    if (now === 'delivered' || now === 'bounced' || now === 'complained') kinds.push(now);
  }
  if (feedback.suppress) {
    const address = recipientOf(mail, feedback.address);
    if (address === undefined) {
      log.warn(
        { mailId: mail.id, source, address: feedback.address },
        'email feedback names no recipient of the mail: nothing suppressed',
      );
    } else if (
      await changeEmailConsent(tx, {
        tenantId: mail.tenant_id,
        address,
        action: 'suppress',
        reason: feedback.suppress.reason,
        source,
        detail: feedback.suppress.detail,
      })
    ) {
      if (feedback.suppress.reason === 'hard-bounce') kinds.push('hard_bounce');
      if (feedback.suppress.reason === 'unsubscribe') kinds.push('unsubscribed');
    }
  }
  return kinds;
}

// SparkPost ---------------------------------------------------------------------------------

/**
 * The fields of a SparkPost event the hub reads; SparkPost sends strings (numbers accepted too).
 * Events arrive wrapped by class: `{msys: {message_event | gen_event | unsubscribe_event |
 * track_event | relay_event | …: {type, …}}}`.
 */
const sparkPostEvent = z
  .object({
    type: z.string(),
    event_id: z.string().min(1).max(255).optional(),
    transmission_id: z.string().min(1).max(255).optional(),
    rcpt_to: z.string().max(254).optional(),
    bounce_class: z.union([z.string(), z.number()]).optional(),
    reason: z.string().optional(),
    raw_reason: z.string().optional(),
    fbtype: z.string().optional(),
  })
  .passthrough();
export type SparkPostEvent = z.infer<typeof sparkPostEvent>;

/**
 * Bounce classes that mean the address will never take mail: 10 Invalid Recipient, 30 No RCPT,
 * 90 Unsubscribe (SparkPost's "Hard" category).
 */
const HARD_BOUNCE_CLASSES = new Set(['10', '30', '90']);

/** The event of one element of a batch (undefined for a ping `{msys: {}}` or an odd element). */
export function sparkPostEventOf(element: unknown): SparkPostEvent | undefined {
  const msys = (element as { msys?: unknown } | null)?.msys;
  if (msys === null || typeof msys !== 'object') return undefined;
  for (const wrapped of Object.values(msys)) {
    const parsed = sparkPostEvent.safeParse(wrapped);
    if (parsed.success) return parsed.data;
  }
  return undefined;
}

/** What a SparkPost event does; undefined for the events the hub does not act on. */
export function sparkPostFeedback(event: SparkPostEvent): EmailFeedback | undefined {
  const reason = clip(event.reason ?? event.raw_reason);
  const address = event.rcpt_to;
  switch (event.type) {
    case 'delivery':
      return { address, status: 'delivered', reason: null };
    case 'bounce':
    case 'out_of_band': {
      const bounceClass = event.bounce_class === undefined ? '' : String(event.bounce_class);
      return {
        address,
        status: 'bounced',
        reason,
        ...(HARD_BOUNCE_CLASSES.has(bounceClass)
          ? {
              suppress: {
                reason: 'hard-bounce',
                detail: clip(`bounce_class ${bounceClass}: ${reason ?? event.type}`),
              },
            }
          : {}),
      };
    }
    case 'spam_complaint':
      return {
        address,
        status: 'complained',
        reason: clip(`spam complaint${event.fbtype ? ` (${event.fbtype})` : ''}`),
        suppress: { reason: 'complaint', detail: clip(event.fbtype ?? 'spam_complaint') },
      };
    case 'list_unsubscribe':
    case 'link_unsubscribe':
      return { address, reason: null, suppress: { reason: 'unsubscribe', detail: event.type } };
    case 'policy_rejection':
    case 'generation_failure':
    case 'generation_rejection':
      return {
        address,
        status: 'failed',
        reason: reason ?? event.type,
        code: 'NEXUS_ERR_EMAIL_PROVIDER_REFUSED',
      };
    default:
      // injection, delay, opens, clicks, relay events: nothing changes.
      return undefined;
  }
}

export interface FeedbackCounts {
  applied: number;
  duplicates: number;
  ignored: number;
}

/**
 * Applies one SparkPost webhook batch of a tenant, in one transaction: a batch id already seen
 * makes every event a duplicate; each event is applied once (by `event_id`) to the mail whose
 * transmission it reports.
 */
export async function applySparkPostBatch(
  deps: EmailFeedbackDeps,
  tenantId: string,
  batchId: string | undefined,
  elements: readonly unknown[],
): Promise<FeedbackCounts> {
  const { counts, kinds } = await deps.db.transaction(async tx => {
    const counts: FeedbackCounts = { applied: 0, duplicates: 0, ignored: 0 };
    const kinds: { domain: string; kind: FeedbackKind }[] = [];
    if (
      batchId !== undefined &&
      !(await markFeedbackSeen(tx, tenantId, 'sparkpost-batch', batchId))
    ) {
      counts.duplicates = elements.length;
      return { counts, kinds };
    }
    for (const element of elements) {
      const event = sparkPostEventOf(element);
      const feedback = event && sparkPostFeedback(event);
      if (!event?.transmission_id || !event.event_id || !feedback) {
        counts.ignored += 1;
        continue;
      }
      // By the transmission id the send stored; else by the hub's own id the send gave SparkPost
      // as metadata (events carry it in `rcpt_meta`), for an event that overtook the send's commit
      // or concerns a transmission whose outcome the hub lost.
      const mail =
        (await findEmailByProviderId(tx, tenantId, 'SparkPost', event.transmission_id)) ??
        (await mailOfMetadata(tx, tenantId, event));
      if (!mail) {
        deps.log.info(
          { tenantId, transmissionId: event.transmission_id, type: event.type },
          'SparkPost event for a transmission the tenant does not have: ignored',
        );
        counts.ignored += 1;
        continue;
      }
      if (!(await markFeedbackSeen(tx, tenantId, 'sparkpost-event', event.event_id))) {
        counts.duplicates += 1;
        continue;
      }
      const changed = await applyFeedback(tx, mail, feedback, 'sparkpost', deps.log);
      kinds.push(...changed.map(kind => ({ domain: mail.domain, kind })));
      counts.applied += 1;
    }
    return { counts, kinds };
  });
  // Counted once committed, so a rolled-back batch counts nothing.
  for (const labels of kinds) emailFeedbackTotal.inc(labels);
  return counts;
}

/** The mail a SparkPost event's metadata names (`{tenant, mailId}`), if the tenant sent it there. */
async function mailOfMetadata(
  tx: CommonQueryMethods,
  tenantId: string,
  event: SparkPostEvent,
): Promise<EmailRow | undefined> {
  const meta = [event.rcpt_meta, event.metadata].find(
    (entry): entry is Record<string, unknown> => typeof entry === 'object' && entry !== null,
  );
  if (meta?.tenant !== tenantId || typeof meta.mailId !== 'string') return undefined;
  const mail = await findEmail(tx, tenantId, meta.mailId);
  return mail && (mail.provider === null || mail.provider === 'SparkPost') ? mail : undefined;
}

// Async gateway -----------------------------------------------------------------------------

export const ASYNC_EMAIL_RECEIPT_STATUSES = [
  'delivered',
  'bounced',
  'complained',
  'failed',
] as const;

export interface AsyncEmailReceipt {
  /** The id the gateway answered when it took the mail. */
  messageId: string;
  status: (typeof ASYNC_EMAIL_RECEIPT_STATUSES)[number];
  address?: string | undefined;
  reason?: string | undefined;
  /** A bounce that will never clear (the address does not exist). */
  permanent?: boolean | undefined;
}

/** What an Async gateway's email receipt does. */
export function asyncEmailFeedback(receipt: AsyncEmailReceipt): EmailFeedback {
  const reason = clip(receipt.reason);
  const address = receipt.address;
  switch (receipt.status) {
    case 'delivered':
      return { address, status: 'delivered', reason: null };
    case 'bounced':
      return {
        address,
        status: 'bounced',
        reason,
        ...(receipt.permanent
          ? { suppress: { reason: 'hard-bounce', detail: reason ?? 'permanent bounce' } }
          : {}),
      };
    case 'complained':
      return {
        address,
        status: 'complained',
        reason,
        suppress: { reason: 'complaint', detail: reason },
      };
    case 'failed':
      return {
        address,
        status: 'failed',
        reason: reason ?? 'the gateway could not send the mail',
        code: 'NEXUS_ERR_EMAIL_PROVIDER_REFUSED',
      };
  }
}

/**
 * Applies an Async gateway's email receipts for one of the tenant's email channels (its domain),
 * in one transaction. A receipt whose id names no mail of that domain sent through `Async` is
 * ignored; one whose `address` is not a recipient of its mail refuses the whole call (400,
 * `field` + `.<index>.address`) with nothing applied.
 */
export async function applyAsyncEmailReceipts(
  deps: EmailFeedbackDeps,
  tenantId: string,
  domain: string,
  receipts: readonly AsyncEmailReceipt[],
  field: string,
): Promise<{ applied: number; ignored: number }> {
  const { counts, kinds } = await deps.db.transaction(async tx => {
    const counts = { applied: 0, ignored: 0 };
    const kinds: { domain: string; kind: FeedbackKind }[] = [];
    for (const [index, receipt] of receipts.entries()) {
      const mail = await findEmailByProviderId(tx, tenantId, 'Async', receipt.messageId);
      if (!mail || mail.domain.toLowerCase() !== domain.toLowerCase()) {
        deps.log.info(
          { tenantId, channelId: domain, messageId: receipt.messageId },
          'Async email receipt for a mail the channel does not have: ignored',
        );
        counts.ignored += 1;
        continue;
      }
      if (receipt.address !== undefined && recipientOf(mail, receipt.address) === undefined) {
        throw new AppError(
          'NEXUS_ERR_VALIDATION',
          `${field}.${index}.address: is not a recipient of the mail`,
          `${field}.${index}.address`,
        );
      }
      const changed = await applyFeedback(tx, mail, asyncEmailFeedback(receipt), 'async', deps.log);
      kinds.push(...changed.map(kind => ({ domain: mail.domain, kind })));
      counts.applied += 1;
    }
    return { counts, kinds };
  });
  for (const labels of kinds) emailFeedbackTotal.inc(labels);
  return counts;
}
