/**
 * The SMS intake that several SMS routes share (api/routes/sms/): the lookup of a tenant's chat
 * channel by its sender id, storing one inbound SMS with its work (Postgres-first), and recording
 * delivery receipts as `receipts` work. Aggregators and third-party gateways both deliver texts
 * and receipts through here; the request fields they validate are api/routes/sms/fields.ts.
 */
import { randomUUID } from 'node:crypto';
import type { DatabasePool } from 'slonik';
import { findChannelBySender, type ChannelRow } from '../../db/queries/channels.js';
import { acceptInboundSms, recordSmsRejection } from '../../db/queries/sms.js';
import { recordCampaignReply } from '../../db/queries/sms-campaigns.js';
import { AppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { inboundQueue } from '../../queues/inbound.js';
import { receiptsQueue, type ReceiptPayload } from '../../queues/receipts.js';
import {
  dispatchWork,
  recordWork,
  type EnqueueContext,
  type WorkRecord,
} from '../../queues/work.js';
import { matchKeyword, recordHelpReply, recordKeywordConsent } from './keywords.js';

/** What storing inbound SMS and receipts needs. */
export interface IntakeDeps {
  db: DatabasePool;
  enqueue: EnqueueContext;
  log: Logger;
}

/**
 * The tenant's `chat.*` channel a message to `address` belongs to, however the number is written
 * (with or without "+", spaces, "00"): a sender id is one channel's (migration 0017).
 */
export async function chatChannelBySender(
  db: DatabasePool,
  tenant: string,
  address: string,
): Promise<ChannelRow | undefined> {
  const channel = await findChannelBySender(db, tenant, address);
  return channel?.name.startsWith('chat.') ? channel : undefined;
}

/** One mobile-originated text, whichever gateway delivered it. */
export interface InboundText {
  /** The customer's number (already normalised by the `phone` field, api/routes/sms/fields.ts). */
  from: string;
  /** The number it was sent to: a `chat.*` channel's `channelId`. */
  to: string;
  text: string;
  /** The gateway's id of the text, which makes a retry recognisable. */
  messageId?: string | undefined;
}

/** What the intake did with an inbound text. */
export interface InboundResult {
  messageId: string | null;
  interactionId: string | null;
  duplicate: boolean;
}

/**
 * Stores one inbound SMS of `tenant`. The text is matched to its `chat.*` channel by the number
 * it was sent to; a text to an unknown number is recorded as a rejection and refused
 * (`NEXUS_ERR_SMS_UNKNOWN_CHANNEL`, naming `<source>.inbound_address`). Keywords apply first
 * (api/sms/keywords.ts). A text to a `cxcOnly` channel (a campaign number) starts no chat: it is
 * kept as a reply to the campaign that last wrote to that number from that sender (a
 * `campaign.reply` event), an opt-out or opt-in keyword changes consent, HELP gets no answer
 * (there is no conversation), and the result has no message or interaction. Any other text is
 * threaded into the customer's open interaction on the channel and stored with its `inbound` work
 * (and the HELP answer's `outbound-sms` work), dispatched after the commit; the inbound worker
 * starts and routes it like a web chat. A retry (same message id) is answered as a duplicate.
 */
export async function receiveInboundSms(
  deps: IntakeDeps,
  tenant: string,
  message: InboundText,
  source: string,
): Promise<InboundResult> {
  const { db } = deps;
  const from = message.from;
  const externalId = message.messageId ?? randomUUID();
  const channel = await chatChannelBySender(db, tenant, message.to);
  if (!channel) {
    await recordSmsRejection(db, {
      tenantId: tenant,
      reason: 'unknown channel',
      from,
      to: message.to,
      externalId: message.messageId ?? null,
    });
    deps.log.warn(
      { tenant, to: message.to },
      'inbound SMS to a number with no chat channel: refused',
    );
    throw new AppError(
      'NEXUS_ERR_SMS_UNKNOWN_CHANNEL',
      `${source}.inbound_address: no chat.* channel has channelId ${message.to}`,
      `${source}.inbound_address`,
    );
  }
  const keyword = await matchKeyword(db, tenant, message.text);
  const consent = {
    tenantId: tenant,
    sender: channel.channel_id,
    address: from,
    text: message.text,
  };
  const receivedAt = new Date().toISOString();
  if (channel.cxc_only) {
    const stored = await db.transaction(async tx => {
      const created = await recordCampaignReply(tx, {
        tenantId: tenant,
        sender: channel.channel_id,
        address: from,
        externalId,
        text: message.text,
        keyword: keyword.action ?? null,
      });
      if (created) await recordKeywordConsent(tx, keyword, consent);
      return created;
    });
    return { messageId: null, interactionId: null, duplicate: !stored };
  }
  const { accepted, work } = await db.transaction(async tx => {
    const stored = await acceptInboundSms(tx, {
      tenantId: tenant,
      channel,
      from,
      text: message.text,
      externalId,
    });
    if (!stored.stored) return { accepted: stored, work: [] };
    await recordKeywordConsent(tx, keyword, consent);
    const works = [
      await recordWork(
        tx,
        inboundQueue,
        {
          tenantId: tenant,
          channel: 'sms' as const,
          externalId: `${channel.channel_id}/${externalId}`,
          from,
          to: channel.channel_id,
          receivedAt,
          interactionId: stored.interactionId,
          messageId: stored.messageId,
        },
        deps.enqueue,
      ),
    ];
    if (keyword.action === 'help') {
      works.push(
        await recordHelpReply(tx, deps.enqueue, {
          tenantId: tenant,
          interactionId: stored.interactionId,
          externalId,
          text: keyword.helpText,
        }),
      );
    }
    return { accepted: stored, work: works };
  });
  if (work.length > 0) await dispatchWork(deps.enqueue, work);
  return {
    messageId: accepted.messageId,
    interactionId: accepted.interactionId,
    duplicate: !accepted.stored,
  };
}

/**
 * Records delivery receipts as `receipts` work in one transaction and dispatches it after the
 * commit. A receipt recorded before (same tenant, provider, id and status) comes back with
 * `created: false`; the receipts worker merges statuses forward only.
 */
export async function recordReceipts(
  deps: Pick<IntakeDeps, 'db' | 'enqueue'>,
  receipts: readonly ReceiptPayload[],
): Promise<WorkRecord[]> {
  const works = await deps.db.transaction(async tx => {
    const recorded = [];
    for (const receipt of receipts) {
      recorded.push(await recordWork(tx, receiptsQueue, receipt, deps.enqueue));
    }
    return recorded;
  });
  await dispatchWork(deps.enqueue, works);
  return works;
}
