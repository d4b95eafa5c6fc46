import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { mergeStatus, type SmsStatus } from '../../domain/sms-status.js';
import { GENERIC_FAILURE_CODE, type FailureCode } from '../../lib/errors.js';
import { appendOperationalEvent } from '../webhook-dispatch.js';

/**
 * SMS campaigns in PostgreSQL: the records a campaign submitted (`sms_campaign_records`) with
 * their delivery statuses, and the replies texts to campaign numbers left
 * (`sms_campaign_replies`); status changes and replies are announced as events for webhooks.
 */

export const campaignRecordRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  campaign: z.string(),
  record_id: z.string(),
  sender: z.string(),
  address: z.string(),
  text: z.string(),
  delivery_status: z.enum(['accepted', 'sent', 'delivered', 'failed']),
  delivery_reason: z.string().nullable(),
  delivery_code: z.string().nullable(),
  delivery_updated_at: z.string(),
  encoding: z.string(),
  segments: z.number(),
  provider: z.string().nullable(),
  provider_message_id: z.string().nullable(),
  created_at: z.string(),
});
export type CampaignRecordRow = z.infer<typeof campaignRecordRow>;

const columns = sql.fragment`id, tenant_id, campaign, record_id, sender, address, text,
  delivery_status, delivery_reason, delivery_code, delivery_updated_at, encoding, segments, provider,
  provider_message_id, created_at`;

export interface NewCampaignRecord {
  id: string;
  tenantId: string;
  campaign: string;
  recordId: string;
  sender: string;
  address: string;
  text: string;
  encoding: string;
  segments: number;
}

/** Stores records; those already submitted (same campaign and record id) are left alone. */
export async function insertCampaignRecords(
  tx: CommonQueryMethods,
  records: readonly NewCampaignRecord[],
): Promise<string[]> {
  if (records.length === 0) return [];
  const inserted = await tx.anyFirst(sql.type(z.object({ id: z.string() }))`
    INSERT INTO sms_campaign_records (id, tenant_id, campaign, record_id, sender, address, text,
                                      encoding, segments)
    SELECT * FROM ${sql.unnest(
      records.map(r => [
        r.id,
        r.tenantId,
        r.campaign,
        r.recordId,
        r.sender,
        r.address,
        r.text,
        r.encoding,
        r.segments,
      ]),
      ['uuid', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'int4'],
    )}
    ON CONFLICT (tenant_id, campaign, record_id) DO NOTHING
    RETURNING id`);
  return [...inserted];
}

export async function findCampaignRecord(
  db: CommonQueryMethods,
  tenantId: string,
  id: string,
): Promise<CampaignRecordRow | undefined> {
  const row = await db.maybeOne(sql.type(campaignRecordRow)`
    SELECT ${columns} FROM sms_campaign_records WHERE tenant_id = ${tenantId} AND id = ${id}`);
  return row ?? undefined;
}

export async function listCampaignRecords(
  db: CommonQueryMethods,
  tenantId: string,
  campaign: string,
  page: { after: string | undefined; limit: number },
): Promise<readonly CampaignRecordRow[]> {
  return db.any(sql.type(campaignRecordRow)`
    SELECT ${columns} FROM sms_campaign_records
    WHERE tenant_id = ${tenantId} AND campaign = ${campaign}
      ${page.after === undefined ? sql.fragment`` : sql.fragment`AND record_id > ${page.after}`}
    ORDER BY record_id LIMIT ${page.limit}`);
}

/**
 * Applies a status to a campaign record under its row lock, forward only, and announces a change
 * as a `campaign.record.status` event (webhooks). Answers whether a record was found.
 */
export async function applyCampaignStatus(
  tx: CommonQueryMethods,
  where: { tenantId: string; id: string } | { tenantId: string; providerMessageId: string },
  report: {
    status: SmsStatus;
    reason: string | null;
    /** Why a `failed` report failed (the generic code when not given). */
    code?: FailureCode | undefined;
    provider?: string;
    providerMessageId?: string;
  },
): Promise<boolean> {
  const condition =
    'id' in where
      ? sql.fragment`id = ${/^[0-9a-f-]{36}$/i.test(where.id) ? where.id : '00000000-0000-0000-0000-000000000000'}`
      : sql.fragment`provider_message_id = ${where.providerMessageId}`;
  const record = await tx.maybeOne(sql.type(campaignRecordRow)`
    SELECT ${columns} FROM sms_campaign_records
    WHERE tenant_id = ${where.tenantId} AND ${condition} LIMIT 1 FOR NO KEY UPDATE`);
  if (!record) return false;
  const next = mergeStatus(record.delivery_status, report.status);
  const changed = next !== record.delivery_status;
  const code = next === 'failed' ? (report.code ?? GENERIC_FAILURE_CODE) : null;
  await tx.query(sql.unsafe`
    UPDATE sms_campaign_records SET
      delivery_status = ${next},
      delivery_reason = ${changed ? report.reason : record.delivery_reason},
      delivery_code = ${changed ? code : record.delivery_code},
      delivery_updated_at = now(),
      provider = coalesce(${report.provider ?? null}, provider),
      provider_message_id = coalesce(${report.providerMessageId ?? null}, provider_message_id)
    WHERE id = ${record.id}`);
  if (changed) {
    await appendOperationalEvent(tx, record.tenant_id, 'campaign.record.status', {
      campaign: record.campaign,
      recordId: record.record_id,
      to: record.address,
      status: next,
      reason: report.reason,
      code,
      segments: record.segments,
    });
  }
  return true;
}

/**
 * Keeps a text to a campaign number as a reply to the campaign that last wrote to that number
 * from that sender (none when no campaign did), and announces it (`campaign.reply`). Answers
 * false for a retry (same external id).
 */
export async function recordCampaignReply(
  tx: CommonQueryMethods,
  reply: {
    tenantId: string;
    sender: string;
    address: string;
    externalId: string;
    text: string;
    keyword: 'opt-out' | 'opt-in' | 'help' | null;
  },
): Promise<boolean> {
  const last = await tx.maybeOne(sql.type(
    z.object({ campaign: z.string(), record_id: z.string() }),
  )`
    SELECT campaign, record_id FROM sms_campaign_records
    WHERE tenant_id = ${reply.tenantId} AND sender = ${reply.sender} AND address = ${reply.address}
    ORDER BY created_at DESC LIMIT 1`);
  const inserted = await tx.maybeOneFirst(sql.type(z.object({ id: z.number() }))`
    INSERT INTO sms_campaign_replies (tenant_id, sender, address, external_id, text, campaign,
                                      record_id, keyword)
    VALUES (${reply.tenantId}, ${reply.sender}, ${reply.address}, ${reply.externalId},
            ${reply.text}, ${last?.campaign ?? null}, ${last?.record_id ?? null}, ${reply.keyword})
    ON CONFLICT (tenant_id, sender, external_id) DO NOTHING
    RETURNING id`);
  if (inserted === null) return false;
  await appendOperationalEvent(tx, reply.tenantId, 'campaign.reply', {
    campaign: last?.campaign ?? null,
    recordId: last?.record_id ?? null,
    from: reply.address,
    to: reply.sender,
    text: reply.text,
    keyword: reply.keyword,
  });
  return true;
}

export const campaignReplyRow = z.object({
  id: z.number(),
  sender: z.string(),
  address: z.string(),
  text: z.string(),
  record_id: z.string().nullable(),
  keyword: z.string().nullable(),
  created_at: z.string(),
});

export async function listCampaignReplies(
  db: CommonQueryMethods,
  tenantId: string,
  campaign: string,
  page: { after: number | undefined; limit: number },
): Promise<readonly z.infer<typeof campaignReplyRow>[]> {
  return db.any(sql.type(campaignReplyRow)`
    SELECT id, sender, address, text, record_id, keyword, created_at FROM sms_campaign_replies
    WHERE tenant_id = ${tenantId} AND campaign = ${campaign}
      ${page.after === undefined ? sql.fragment`` : sql.fragment`AND id > ${page.after}`}
    ORDER BY id LIMIT ${page.limit}`);
}
