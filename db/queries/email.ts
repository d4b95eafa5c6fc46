import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { mergeEmailStatus, type EmailStatus, EMAIL_STATUSES } from '../../domain/email-status.js';
import { GENERIC_FAILURE_CODE, type FailureCode } from '../../lib/errors.js';
import { appendOperationalEvent } from '../webhook-dispatch.js';

/**
 * Outbound email in PostgreSQL (`email_messages`): the mails the hub stored to send (campaign
 * records today), with the Message-ID chosen at intake and their delivery statuses. A status
 * change of a campaign record is announced as a `campaign.record.status` event (webhooks).
 */

const address = z.object({ address: z.string(), name: z.string().optional() });
export type StoredAddress = z.infer<typeof address>;

const attachment = z.object({
  mediaId: z.string(),
  filename: z.string(),
  contentType: z.string(),
  size: z.number(),
});
export type StoredAttachment = z.infer<typeof attachment>;

export const emailRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  direction: z.enum(['outbound', 'inbound']),
  interaction_id: z.string().nullable(),
  chat_message_id: z.string().nullable(),
  campaign: z.string().nullable(),
  record_id: z.string().nullable(),
  domain: z.string(),
  from_address: z.string(),
  from_name: z.string().nullable(),
  to_addresses: z.array(address),
  cc_addresses: z.array(address),
  bcc_addresses: z.array(address),
  reply_to: z.string().nullable(),
  subject: z.string(),
  text_body: z.string(),
  html_body: z.string().nullable(),
  message_id: z.string(),
  in_reply_to: z.string().nullable(),
  reference_ids: z.array(z.string()),
  attachments: z.array(attachment),
  /** Outbound mail only. */
  delivery_status: z.enum(EMAIL_STATUSES).nullable(),
  delivery_reason: z.string().nullable(),
  delivery_code: z.string().nullable(),
  delivery_updated_at: z.string(),
  provider: z.string().nullable(),
  provider_message_id: z.string().nullable(),
  created_at: z.string(),
});
export type EmailRow = z.infer<typeof emailRow>;

/** The columns of {@link emailRow}, for the queries of other email tables' files. */
export const emailColumns = sql.fragment`id, tenant_id, direction, interaction_id, chat_message_id, campaign, record_id, domain, from_address, from_name,
  to_addresses, cc_addresses, bcc_addresses, reply_to, subject, text_body, html_body, message_id,
  in_reply_to, reference_ids, attachments, delivery_status, delivery_reason, delivery_code,
  delivery_updated_at, provider, provider_message_id, created_at`;

export interface NewEmail {
  id: string;
  tenantId: string;
  /** `outbound` (default: queued to send) or `inbound` (a customer's mail, no status). */
  direction?: 'outbound' | 'inbound';
  interactionId?: string | null;
  chatMessageId?: string | null;
  attachments?: readonly StoredAttachment[];
  campaign: string | null;
  recordId: string | null;
  domain: string;
  from: StoredAddress;
  to: readonly StoredAddress[];
  cc: readonly StoredAddress[];
  bcc: readonly StoredAddress[];
  replyTo: string | null;
  subject: string;
  text: string;
  html: string | null;
  messageId: string;
  inReplyTo: string | null;
  references: readonly string[];
}

/**
 * Stores mails; a campaign record already submitted (same campaign and record id) is left alone.
 * Answers the ids of the rows inserted.
 */
export async function insertEmails(
  tx: CommonQueryMethods,
  mails: readonly NewEmail[],
): Promise<string[]> {
  if (mails.length === 0) return [];
  const inserted = await tx.anyFirst(sql.type(z.object({ id: z.string() }))`
    INSERT INTO email_messages (id, tenant_id, direction, interaction_id, chat_message_id,
                                campaign, record_id, domain, from_address, from_name,
                                to_addresses, cc_addresses, bcc_addresses, reply_to, subject,
                                text_body, html_body, message_id, in_reply_to, reference_ids,
                                attachments, delivery_status)
    SELECT u.id, u.tenant_id, u.direction, u.interaction_id, u.chat_message_id, u.campaign,
           u.record_id, u.domain, u.from_address, u.from_name,
           u.to_addresses::jsonb, u.cc_addresses::jsonb, u.bcc_addresses::jsonb, u.reply_to,
           u.subject, u.text_body, u.html_body, u.message_id, u.in_reply_to,
           ARRAY(SELECT jsonb_array_elements_text(u.reference_ids::jsonb)), u.attachments::jsonb,
           CASE WHEN u.direction = 'outbound' THEN 'queued' END
    FROM ${sql.unnest(
      mails.map(m => [
        m.id,
        m.tenantId,
        m.direction ?? 'outbound',
        m.interactionId ?? null,
        m.chatMessageId ?? null,
        m.campaign,
        m.recordId,
        m.domain,
        m.from.address,
        m.from.name ?? null,
        JSON.stringify(m.to),
        JSON.stringify(m.cc),
        JSON.stringify(m.bcc),
        m.replyTo,
        m.subject,
        m.text,
        m.html,
        m.messageId,
        m.inReplyTo,
        JSON.stringify(m.references),
        JSON.stringify(m.attachments ?? []),
      ]),
      [
        'uuid',
        'text',
        'text',
        'uuid',
        'uuid',
        'text',
        'text',
        'text',
        'text',
        'text',
        'text',
        'text',
        'text',
        'text',
        'text',
        'text',
        'text',
        'text',
        'text',
        'text',
        'text',
      ],
    )} AS u(id, tenant_id, direction, interaction_id, chat_message_id, campaign, record_id,
            domain, from_address, from_name, to_addresses, cc_addresses, bcc_addresses, reply_to,
            subject, text_body, html_body, message_id, in_reply_to, reference_ids, attachments)
    ON CONFLICT DO NOTHING
    RETURNING id`);
  return [...inserted];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function findEmail(
  db: CommonQueryMethods,
  tenantId: string,
  id: string,
): Promise<EmailRow | undefined> {
  if (!UUID.test(id)) return undefined;
  const row = await db.maybeOne(sql.type(emailRow)`
    SELECT ${emailColumns} FROM email_messages WHERE tenant_id = ${tenantId} AND id = ${id}`);
  return row ?? undefined;
}

export async function listCampaignEmails(
  db: CommonQueryMethods,
  tenantId: string,
  campaign: string,
  page: { after: string | undefined; limit: number },
): Promise<readonly EmailRow[]> {
  return db.any(sql.type(emailRow)`
    SELECT ${emailColumns} FROM email_messages
    WHERE tenant_id = ${tenantId} AND campaign = ${campaign}
      ${page.after === undefined ? sql.fragment`` : sql.fragment`AND record_id > ${page.after}`}
    ORDER BY record_id LIMIT ${page.limit}`);
}

/** How a report names its mail: the hub's row id, the provider's id, or the Message-ID. */
export type EmailWhere =
  | { tenantId: string; id: string }
  | { tenantId: string; provider: string; providerMessageId: string }
  | { tenantId: string; messageId: string };

export interface EmailReport {
  status: EmailStatus;
  reason: string | null;
  /** Why a `failed` report failed (the generic code when not given). */
  code?: FailureCode | undefined;
  provider?: string | undefined;
  providerMessageId?: string | undefined;
}

/**
 * Applies a status to a mail under its row lock, forward only, and announces a campaign
 * record's change as a `campaign.record.status` event. Answers the row as it now is (undefined
 * when no mail matched) and whether its status changed.
 */
export async function applyEmailStatus(
  tx: CommonQueryMethods,
  where: EmailWhere,
  report: EmailReport,
): Promise<{ row: EmailRow; changed: boolean } | undefined> {
  let condition;
  if ('id' in where) {
    if (!UUID.test(where.id)) return undefined;
    condition = sql.fragment`id = ${where.id}`;
  } else if ('providerMessageId' in where) {
    condition = sql.fragment`provider = ${where.provider} AND provider_message_id = ${where.providerMessageId}`;
  } else {
    condition = sql.fragment`message_id = ${where.messageId}`;
  }
  const mail = await tx.maybeOne(sql.type(emailRow)`
    SELECT ${emailColumns} FROM email_messages
    WHERE tenant_id = ${where.tenantId} AND ${condition} LIMIT 1 FOR NO KEY UPDATE`);
  if (!mail?.delivery_status) return undefined;
  const next = mergeEmailStatus(mail.delivery_status, report.status);
  const changed = next !== mail.delivery_status;
  const code = next === 'failed' ? (report.code ?? GENERIC_FAILURE_CODE) : null;
  const row = await tx.one(sql.type(emailRow)`
    UPDATE email_messages SET
      delivery_status = ${next},
      delivery_reason = ${changed ? report.reason : mail.delivery_reason},
      delivery_code = ${changed ? code : mail.delivery_code},
      delivery_updated_at = now(),
      provider = coalesce(${report.provider ?? null}, provider),
      provider_message_id = coalesce(${report.providerMessageId ?? null}, provider_message_id)
    WHERE id = ${mail.id}
    RETURNING ${emailColumns}`);
  if (changed && mail.campaign !== null && mail.record_id !== null) {
    await appendOperationalEvent(tx, mail.tenant_id, 'campaign.record.status', {
      channel: 'email',
      campaign: mail.campaign,
      recordId: mail.record_id,
      to: mail.to_addresses[0]?.address ?? '',
      status: next,
      reason: changed ? report.reason : mail.delivery_reason,
      code: changed ? code : mail.delivery_code,
      messageId: mail.message_id,
    });
  }
  return { row, changed };
}

/**
 * Records that a piece of provider feedback (a batch, an event, a bounce report) was applied;
 * answers false when it already was, so a provider's retry changes nothing twice.
 */
export async function markFeedbackSeen(
  tx: CommonQueryMethods,
  tenantId: string,
  source: string,
  key: string,
): Promise<boolean> {
  const inserted = await tx.maybeOneFirst(sql.type(z.object({ key: z.string() }))`
    INSERT INTO email_feedback_seen (tenant_id, source, key)
    VALUES (${tenantId}, ${source}, ${key})
    ON CONFLICT DO NOTHING RETURNING key`);
  return inserted !== null;
}

/**
 * The mail a provider's feedback names by the provider's id for it (SparkPost's transmission id,
 * an Async gateway's message id).
 */
export async function findEmailByProviderId(
  db: CommonQueryMethods,
  tenantId: string,
  provider: string,
  providerMessageId: string,
): Promise<EmailRow | undefined> {
  const row = await db.maybeOne(sql.type(emailRow)`
    SELECT ${emailColumns} FROM email_messages
    WHERE tenant_id = ${tenantId} AND provider = ${provider}
      AND provider_message_id = ${providerMessageId}
    LIMIT 1`);
  return row ?? undefined;
}

export const emailRecipientsRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  domain: z.string(),
  message_id: z.string(),
  to_addresses: z.array(address),
  cc_addresses: z.array(address),
  bcc_addresses: z.array(address),
});
export type EmailRecipientsRow = z.infer<typeof emailRecipientsRow>;

/**
 * A mail by its id alone, whatever its tenant, with its recipients: a bounce report names its
 * mail by the VERP return path, which carries no tenant (the tenant is the mail's).
 */
export async function findEmailById(
  db: CommonQueryMethods,
  id: string,
): Promise<EmailRecipientsRow | undefined> {
  if (!UUID.test(id)) return undefined;
  const row = await db.maybeOne(sql.type(emailRecipientsRow)`
    SELECT id, tenant_id, domain, message_id, to_addresses, cc_addresses, bcc_addresses
    FROM email_messages WHERE id = ${id}`);
  return row ?? undefined;
}
