import { randomUUID } from 'node:crypto';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { mergeStatus, type SmsStatus } from '../../domain/sms-status.js';
import { GENERIC_FAILURE_CODE, isFailureCode, type FailureCode } from '../../lib/errors.js';
import { appendEvents, flagUndelivered, type InteractionEvent } from '../conversation.js';
import type { ChannelRow } from './channels.js';
import { openCustomerThread, type ThreadKind } from './customer-threads.js';

/**
 * SMS in PostgreSQL: inbound texts threaded into interactions and messages, refused texts
 * (`sms_rejections`), outbound messages' delivery statuses, the consent (opt-out) ledger
 * (`sms_consent`, `sms_consent_changes`) and uploaded media. Campaign records are
 * `sms-campaigns.ts`'s.
 */

export interface InboundSms {
  tenantId: string;
  channel: ChannelRow;
  /** The customer's number, normalised. */
  from: string;
  text: string;
  /** The aggregator's message id: a retried MO is stored once. */
  externalId: string;
}

export interface AcceptedSms {
  interactionId: string;
  messageId: string;
  /** False when the same MO (external id) was stored before: a retry. */
  stored: boolean;
}

/** An SMS conversation's media and subtype: the channel's, else `chat` and `SMS`. */
export const smsThreadKind = (channel: ChannelRow): ThreadKind => ({
  media: channel.media ?? 'chat',
  subtype: channel.interaction_subtype ?? 'SMS',
});

/**
 * Stores an inbound SMS, Postgres-first, in the caller's transaction: the customer's open
 * interaction on the channel (created when there is none, so texts thread into one
 * conversation) and the message (once per external id). The caller records the `inbound` work
 * in the same transaction; the inbound processor starts, numbers and routes it as web chat.
 */
export async function acceptInboundSms(
  tx: CommonQueryMethods,
  sms: InboundSms,
): Promise<AcceptedSms> {
  const interactionId = await openCustomerThread(tx, {
    tenantId: sms.tenantId,
    channel: sms.channel,
    address: sms.from,
    kind: smsThreadKind(sms.channel),
  });
  const inserted = await tx.maybeOneFirst(sql.type(z.object({ id: z.string() }))`
    INSERT INTO messages (id, tenant_id, interaction_id, direction, sender_type, sender_id, text,
                          client_message_id)
    VALUES (${randomUUID()}, ${sms.tenantId}, ${interactionId}, 'inbound', 'customer', ${sms.from},
            ${sms.text}, ${sms.externalId})
    ON CONFLICT (interaction_id, sender_id, client_message_id) DO NOTHING
    RETURNING id`);
  if (!inserted) {
    const existing = await tx.oneFirst(sql.type(z.object({ id: z.string() }))`
      SELECT id FROM messages
      WHERE interaction_id = ${interactionId} AND sender_id = ${sms.from}
        AND client_message_id = ${sms.externalId}`);
    return { interactionId, messageId: existing, stored: false };
  }
  return { interactionId, messageId: inserted, stored: true };
}

/** Records an inbound message the hub refused (it is not processed). */
export async function recordSmsRejection(
  db: CommonQueryMethods,
  rejection: {
    tenantId: string;
    reason: string;
    from: string | null;
    to: string | null;
    externalId: string | null;
  },
): Promise<void> {
  await db.query(sql.unsafe`
    INSERT INTO sms_rejections (tenant_id, reason, from_address, to_address, external_id)
    VALUES (${rejection.tenantId}, ${rejection.reason}, ${rejection.from}, ${rejection.to},
            ${rejection.externalId})`);
}

/** The customer address of a threaded interaction (SMS), if it has one. */
export async function findCustomerAddress(
  db: CommonQueryMethods,
  interactionId: string,
): Promise<{ channel: string; address: string } | undefined> {
  const row = await db.maybeOne(
    sql.type(
      z.object({ channel: z.string().nullable(), customer_address: z.string().nullable() }),
    )`SELECT channel, customer_address FROM interactions WHERE id = ${interactionId}`,
  );
  if (!row?.channel || !row.customer_address) return undefined;
  return { channel: row.channel, address: row.customer_address };
}

/** An outbound SMS enters the status vocabulary as `accepted`, with its encoding and segments. */
export async function markSmsAccepted(
  tx: CommonQueryMethods,
  messageId: string,
  sms: { encoding: string; segments: number },
): Promise<void> {
  await tx.query(sql.unsafe`
    UPDATE messages SET delivery_status = 'accepted', delivery_updated_at = now(),
                        encoding = ${sms.encoding}, segments = ${sms.segments}
    WHERE id = ${messageId}`);
}

export const outboundSmsRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  interaction_id: z.string(),
  text: z.string().nullable(),
  delivery_status: z.string().nullable(),
  segments: z.number().nullable(),
  provider_message_id: z.string().nullable(),
  sender_type: z.string(),
  customer_address: z.string().nullable(),
  channel_name: z.string().nullable(),
  channel_id: z.string().nullable(),
  provider: z.string().nullable(),
});
export type OutboundSmsRow = z.infer<typeof outboundSmsRow>;

/** An outbound SMS with what sending it needs: the customer's number, the channel, its provider. */
export async function loadOutboundSms(
  db: CommonQueryMethods,
  tenantId: string,
  messageId: string,
): Promise<OutboundSmsRow | undefined> {
  const row = await db.maybeOne(sql.type(outboundSmsRow)`
    SELECT m.id, m.tenant_id, m.interaction_id, m.text, m.delivery_status, m.segments,
           m.provider_message_id, m.sender_type, i.customer_address, c.name AS channel_name, c.channel_id,
           c.provider
    FROM messages m
    JOIN interactions i ON i.id = m.interaction_id
    LEFT JOIN channels c ON c.tenant_id = i.tenant_id AND c.name = i.channel
    WHERE m.id = ${messageId} AND m.tenant_id = ${tenantId}`);
  return row ?? undefined;
}

const statusRow = z.object({
  id: z.string(),
  interaction_id: z.string(),
  delivery_status: z.string(),
  delivery_reason: z.string().nullable(),
  delivery_code: z.string().nullable(),
  segments: z.number().nullable(),
});
export type SmsStatusChange = z.infer<typeof statusRow>;

/**
 * Moves a message's status forward (the caller computed `status` with the forward-only merge
 * from the `current` it read under lock); stores the provider's id when given. Answers the new
 * row, or undefined when the status did not change.
 */
export async function updateSmsStatus(
  tx: CommonQueryMethods,
  change: {
    messageId: string;
    current: string | null;
    status: string;
    reason: string | null;
    /** A `failed` status's catalogue code; when null, it keeps its code (or gets the generic one). */
    code: FailureCode | null;
    provider?: string;
    providerMessageId?: string;
  },
): Promise<SmsStatusChange | undefined> {
  const row = await tx.maybeOne(sql.type(statusRow)`
    UPDATE messages SET
      delivery_status = ${change.status}, delivery_reason = ${change.reason},
      delivery_code = CASE WHEN ${change.status} = 'failed'
                      THEN coalesce(${change.code}, delivery_code, ${GENERIC_FAILURE_CODE}) END,
      delivery_updated_at = now(),
      provider = coalesce(${change.provider ?? null}, provider),
      provider_message_id = coalesce(${change.providerMessageId ?? null}, provider_message_id)
    WHERE id = ${change.messageId}
      AND delivery_status IS NOT DISTINCT FROM ${change.current}
    RETURNING id, interaction_id, delivery_status, delivery_reason, delivery_code, segments`);
  if (!row || change.current === change.status) return undefined;
  return row;
}

/** Locks an outbound message and answers its status (receipts merge under this lock). */
export async function lockSmsStatus(
  tx: CommonQueryMethods,
  where: { messageId: string; tenantId?: string } | { tenantId: string; providerMessageId: string },
): Promise<{ id: string; delivery_status: string | null } | undefined> {
  const condition =
    'messageId' in where
      ? where.tenantId === undefined
        ? sql.fragment`id = ${where.messageId}`
        : sql.fragment`id = ${where.messageId} AND tenant_id = ${where.tenantId}`
      : sql.fragment`tenant_id = ${where.tenantId} AND provider_message_id = ${where.providerMessageId}`;
  const row = await tx.maybeOne(sql.type(
    z.object({ id: z.string(), delivery_status: z.string().nullable() }),
  )`SELECT id, delivery_status FROM messages
     WHERE ${condition} AND direction = 'outbound' AND delivery_status IS NOT NULL
     ORDER BY created_at DESC LIMIT 1 FOR NO KEY UPDATE`);
  return row ?? undefined;
}

/**
 * Applies a status report to an outbound SMS under its row lock, forward only (see
 * domain/sms-status.ts): the message's status, a `message.status` event when it changed, and for a
 * failure the interaction's undelivered flag. Answers the events written (none for a report that
 * changes nothing: late or duplicate), or undefined when there is no such outbound SMS.
 */
export async function applySmsStatus(
  tx: CommonQueryMethods,
  where: Parameters<typeof lockSmsStatus>[1],
  report: {
    status: SmsStatus;
    reason: string | null;
    /** Why a `failed` report failed (the generic code when not given). */
    code?: FailureCode | undefined;
    provider?: string;
    providerMessageId?: string;
  },
): Promise<InteractionEvent[] | undefined> {
  const locked = await lockSmsStatus(tx, where);
  if (!locked) return undefined;
  const current = (locked.delivery_status ?? 'accepted') as SmsStatus;
  const next = mergeStatus(current, report.status);
  const changed = await updateSmsStatus(tx, {
    messageId: locked.id,
    current: locked.delivery_status,
    status: next,
    reason: next === report.status ? report.reason : null,
    code: next === report.status ? (report.code ?? null) : null,
    provider: report.provider,
    providerMessageId: report.providerMessageId,
  });
  if (!changed) return [];
  const events = await appendEvents(tx, changed.interaction_id, [
    {
      type: 'message.status',
      payload: {
        messageId: changed.id,
        status: changed.delivery_status,
        reason: changed.delivery_reason,
        code: changed.delivery_code,
        segments: changed.segments,
      },
    },
  ]);
  if (next === 'failed') {
    events.push(
      ...(await flagUndelivered(tx, {
        messageId: changed.id,
        queue: 'outbound-sms',
        code: isFailureCode(changed.delivery_code) ? changed.delivery_code : GENERIC_FAILURE_CODE,
        reason: report.reason ?? 'the provider reported a failure',
      })),
    );
  }
  return events;
}

/** Records an opt-out or opt-in and its audit row (in the caller's transaction). */
export async function changeConsent(
  tx: CommonQueryMethods,
  change: {
    tenantId: string;
    sender: string;
    address: string;
    action: 'opt-out' | 'opt-in';
    source: string;
    keyword: string | null;
  },
): Promise<void> {
  await tx.query(sql.unsafe`
    INSERT INTO sms_consent (tenant_id, sender, address, opted_out)
    VALUES (${change.tenantId}, ${change.sender}, ${change.address}, ${change.action === 'opt-out'})
    ON CONFLICT (tenant_id, sender, address) DO UPDATE SET
      opted_out = EXCLUDED.opted_out, updated_at = now()`);
  await tx.query(sql.unsafe`
    INSERT INTO sms_consent_changes (tenant_id, sender, address, action, source, keyword)
    VALUES (${change.tenantId}, ${change.sender}, ${change.address}, ${change.action},
            ${change.source}, ${change.keyword})`);
}

/** Whether the customer opted out of texts from this sender. */
export async function isOptedOut(
  db: CommonQueryMethods,
  tenantId: string,
  sender: string,
  address: string,
): Promise<boolean> {
  const row = await db.maybeOneFirst(sql.type(z.object({ opted_out: z.boolean() }))`
    SELECT opted_out FROM sms_consent
    WHERE tenant_id = ${tenantId} AND sender = ${sender} AND address = ${address}`);
  return row ?? false;
}

const consentStateRow = z.object({
  opted_out: z.boolean(),
  updated_at: z.string(),
  action: z.string().nullable(),
  source: z.string().nullable(),
  keyword: z.string().nullable(),
  changed_at: z.string().nullable(),
});
export type SmsConsentState = z.infer<typeof consentStateRow>;

/**
 * A customer number's consent for one sender (the row {@link isOptedOut} reads, the rule the
 * outbound worker applies) with the last change that set it; undefined when the number never
 * opted out or in.
 */
export async function consentFor(
  db: CommonQueryMethods,
  tenantId: string,
  sender: string,
  address: string,
): Promise<SmsConsentState | undefined> {
  const row = await db.maybeOne(sql.type(consentStateRow)`
    SELECT c.opted_out, c.updated_at, ch.action, ch.source, ch.keyword, ch.created_at AS changed_at
    FROM sms_consent c
    LEFT JOIN LATERAL (
      SELECT action, source, keyword, created_at FROM sms_consent_changes x
      WHERE x.tenant_id = c.tenant_id AND x.address = c.address AND x.sender = c.sender
      ORDER BY x.id DESC LIMIT 1) ch ON true
    WHERE c.tenant_id = ${tenantId} AND c.sender = ${sender} AND c.address = ${address}`);
  return row ?? undefined;
}

/**
 * The message an agent sent under `clientMessageId` to `address` on `channel`, in any
 * conversation of the number's contact (open or done): a retried start answers it again.
 */
export async function findAgentSmsByClientId(
  db: CommonQueryMethods,
  find: {
    tenantId: string;
    channel: string;
    address: string;
    agentId: string;
    clientMessageId: string;
  },
): Promise<{ messageId: string; interactionId: string } | undefined> {
  const row = await db.maybeOne(sql.type(
    z.object({ message_id: z.string(), interaction_id: z.string() }),
  )`
    SELECT m.id AS message_id, m.interaction_id
    FROM contact_identifiers ci
    JOIN interactions i ON i.contact_id = ci.contact_id AND i.tenant_id = ci.tenant_id
    JOIN messages m ON m.interaction_id = i.id AND m.sender_id = ${find.agentId}
                   AND m.client_message_id = ${find.clientMessageId}
    WHERE ci.tenant_id = ${find.tenantId} AND ci.kind = 'phone' AND ci.value = ${find.address}
      AND i.channel = ${find.channel} AND m.sender_type = 'agent'
    ORDER BY m.received DESC LIMIT 1`);
  return row ? { messageId: row.message_id, interactionId: row.interaction_id } : undefined;
}

export const consentChangeRow = z.object({
  sender: z.string(),
  address: z.string(),
  action: z.string(),
  source: z.string(),
  keyword: z.string().nullable(),
  created_at: z.string(),
});

/** A customer number's consent per sender, and its changes, newest first. */
export async function consentOf(
  db: CommonQueryMethods,
  tenantId: string,
  address: string,
): Promise<{
  senders: readonly { sender: string; opted_out: boolean; updated_at: string }[];
  changes: readonly z.infer<typeof consentChangeRow>[];
}> {
  const senders = await db.any(sql.type(
    z.object({ sender: z.string(), opted_out: z.boolean(), updated_at: z.string() }),
  )`SELECT sender, opted_out, updated_at FROM sms_consent
    WHERE tenant_id = ${tenantId} AND address = ${address} ORDER BY sender`);
  const changes = await db.any(sql.type(consentChangeRow)`
    SELECT sender, address, action, source, keyword, created_at FROM sms_consent_changes
    WHERE tenant_id = ${tenantId} AND address = ${address} ORDER BY id DESC LIMIT 200`);
  return { senders, changes };
}

export const smsDeliveryRow = z.object({
  id: z.string(),
  delivery_status: z.string(),
  delivery_reason: z.string().nullable(),
  delivery_code: z.string().nullable(),
  encoding: z.string().nullable(),
  segments: z.number().nullable(),
  provider: z.string().nullable(),
  delivery_updated_at: z.string().nullable(),
});

/** The delivery state of an interaction's outbound SMS, oldest first. */
export async function listSmsDeliveries(
  db: CommonQueryMethods,
  interactionId: string,
): Promise<readonly z.infer<typeof smsDeliveryRow>[]> {
  return db.any(sql.type(smsDeliveryRow)`
    SELECT id, delivery_status, delivery_reason, delivery_code, encoding, segments, provider,
           delivery_updated_at
    FROM messages
    WHERE interaction_id = ${interactionId} AND delivery_status IS NOT NULL
    ORDER BY received`);
}

/** Stores an uploaded media file; answers its id. */
export async function insertMedia(
  db: CommonQueryMethods,
  media: {
    id: string;
    tenantId: string;
    channelId: string;
    filename: string;
    mimetype: string;
    content: Buffer;
  },
): Promise<void> {
  await db.query(sql.unsafe`
    INSERT INTO media (id, tenant_id, channel_id, filename, mimetype, length, content)
    VALUES (${media.id}, ${media.tenantId}, ${media.channelId}, ${media.filename},
            ${media.mimetype}, ${media.content.length}, ${sql.binary(media.content)})`);
}
