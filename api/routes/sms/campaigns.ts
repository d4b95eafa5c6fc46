/**
 * SMS campaigns (CX-Contact-like callers): submitting a campaign's records (bulk outbound SMS,
 * each `outbound-sms` work), listing the records with their delivery statuses, and listing the
 * replies that texts to the campaign numbers (`cxcOnly` channels) left; the intake stores those
 * (api/sms/intake.ts).
 */
import { randomUUID } from 'node:crypto';
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import type { ChannelRow } from '../../../db/queries/channels.js';
import {
  insertCampaignRecords,
  listCampaignReplies,
  listCampaignRecords,
  type NewCampaignRecord,
} from '../../../db/queries/sms-campaigns.js';
import { smsSegments } from '../../../domain/sms-segments.js';
import { AppError } from '../../../lib/errors.js';
import { outboundSmsQueue } from '../../../queues/outbound-sms.js';
import { dispatchWork, recordWorkBatch, type EnqueueContext } from '../../../queues/work.js';
import { assertTenant } from '../../auth/principal.js';
import { reply } from '../../error-handler.js';
import { envelopeOf, type Api } from '../../openapi.js';
import { presentSmsDelivery } from '../../presenters.js';
import { chatChannelBySender } from '../../sms/intake.js';
import { phone, smsText } from './fields.js';
import { rowNumber } from '../../validate.js';

export interface CampaignDeps {
  db: DatabasePool;
  enqueue: EnqueueContext;
  /** NEXUS_SMS_MAX_SEGMENTS. */
  maxSegments: number;
}

const campaignParams = z.object({
  ccid: z.string().min(1).max(255),
  campaign: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1-128 letters, digits, "_", ".", ":" or "-"'),
});

const campaignRecords = z
  .object({
    records: z
      .array(
        z
          .object({
            id: z.string().trim().min(1).max(255),
            from: z.string().trim().min(1).max(64),
            to: phone,
            text: smsText,
          })
          .strict(),
      )
      .min(1)
      .max(1_000),
  })
  .strict()
  .openapi('SmsCampaignRecords');

const recordOut = z
  .object({
    id: z.string(),
    to: z.string(),
    from: z.string(),
    status: z.enum(['accepted', 'sent', 'delivered', 'failed']),
    reason: z.string().nullable(),
    code: z
      .string()
      .nullable()
      .describe('A `failed` status\'s code (docs/errors.md, "Failed work")'),
    encoding: z.string(),
    segments: z.number(),
    provider: z.string().nullable(),
    updated: z.string(),
  })
  .openapi('SmsCampaignRecord');

/** The campaign routes: submit records, list records, list replies. */
export function campaignRoutes(api: Api, deps: CampaignDeps): void {
  const { db } = deps;

  api.route({
    method: 'post',
    path: '/nexus/v3/sms/campaigns/:ccid/:campaign/records',
    tag: 'SMS',
    summary: 'Submit SMS records of a campaign',
    description:
      "Up to 1,000 records `{id, from, to, text}`: `from` is a `chat.*` channel's channelId; `id` is the caller's, unique within the campaign (a resubmitted id is ignored). Each is checked against the opt-out ledger and the provider's rate when it is sent; its status changes are `campaign.record.status` webhook events.",
    auth: 'nexus:provisioning:*',
    params: campaignParams,
    body: campaignRecords,
    responses: {
      202: {
        description: 'Accepted',
        schema: envelopeOf(z.object({ accepted: z.number(), duplicates: z.number() })),
      },
    },
    async handle({ params, body, principal, res }) {
      assertTenant(principal, params.ccid);
      const channels = new Map<string, ChannelRow>();
      const rows: NewCampaignRecord[] = [];
      for (const [index, record] of body.records.entries()) {
        const channel =
          channels.get(record.from) ?? (await chatChannelBySender(db, params.ccid, record.from));
        if (!channel) {
          throw new AppError(
            'NEXUS_ERR_SMS_UNKNOWN_CHANNEL',
            `body.records.${index}.from: no chat.* channel has channelId ${record.from}`,
            `body.records.${index}.from`,
          );
        }
        channels.set(record.from, channel);
        const size = smsSegments(record.text);
        if (size.segments > deps.maxSegments) {
          throw new AppError(
            'NEXUS_ERR_SMS_TOO_LONG',
            `body.records.${index}.text: takes ${size.segments} SMS segments (${size.encoding}); at most ${deps.maxSegments} are allowed`,
            `body.records.${index}.text`,
          );
        }
        rows.push({
          id: randomUUID(),
          tenantId: params.ccid,
          campaign: params.campaign,
          recordId: record.id,
          sender: channel.channel_id,
          address: record.to,
          text: record.text,
          encoding: size.encoding,
          segments: size.segments,
        });
      }
      const works = await db.transaction(async tx => {
        const inserted = await insertCampaignRecords(tx, rows);
        return recordWorkBatch(
          tx,
          outboundSmsQueue,
          inserted.map(id => ({ tenantId: params.ccid, messageId: id, campaign: true })),
          deps.enqueue,
        );
      });
      await dispatchWork(deps.enqueue, works);
      reply(res, 202, { accepted: works.length, duplicates: rows.length - works.length });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/sms/campaigns/:ccid/:campaign/records',
    tag: 'SMS',
    summary: "A campaign's records and their statuses",
    description: 'By record id; page with `after` (the last id of the previous page).',
    auth: 'nexus:provisioning:*',
    params: campaignParams,
    query: z
      .object({
        after: z.string().max(255).optional(),
        limit: z.coerce.number().int().min(1).max(1_000).default(100),
      })
      .strict(),
    responses: {
      200: {
        description: 'Records',
        schema: envelopeOf(z.object({ items: z.array(recordOut), next: z.string().nullable() })),
      },
    },
    async handle({ params, query, principal, res }) {
      assertTenant(principal, params.ccid);
      const rows = await listCampaignRecords(db, params.ccid, params.campaign, {
        after: query.after,
        limit: query.limit,
      });
      const last = rows.at(-1);
      reply(res, 200, {
        items: rows.map(row => ({
          id: row.record_id,
          to: row.address,
          from: row.sender,
          ...presentSmsDelivery(row),
        })),
        next: rows.length === query.limit && last ? last.record_id : null,
      });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/sms/campaigns/:ccid/:campaign/replies',
    tag: 'SMS',
    summary: "Texts to the campaign's numbers, replying to it",
    description:
      'Texts to `cxcOnly` channels, each attributed to the campaign that last wrote to that number from that sender; oldest first, page with `after`. Each is also a `campaign.reply` webhook event.',
    auth: 'nexus:provisioning:*',
    params: campaignParams,
    query: z
      .object({
        after: rowNumber(0).optional(),
        limit: z.coerce.number().int().min(1).max(1_000).default(100),
      })
      .strict(),
    responses: {
      200: {
        description: 'Replies',
        schema: envelopeOf(
          z.object({
            items: z.array(
              z.object({
                id: z.number(),
                from: z.string(),
                to: z.string(),
                text: z.string(),
                recordId: z.string().nullable(),
                keyword: z.string().nullable(),
                at: z.string(),
              }),
            ),
            next: z.number().nullable(),
          }),
        ),
      },
    },
    async handle({ params, query, principal, res }) {
      assertTenant(principal, params.ccid);
      const rows = await listCampaignReplies(db, params.ccid, params.campaign, {
        after: query.after,
        limit: query.limit,
      });
      const last = rows.at(-1);
      reply(res, 200, {
        items: rows.map(row => ({
          id: row.id,
          from: row.address,
          to: row.sender,
          text: row.text,
          recordId: row.record_id,
          keyword: row.keyword,
          at: row.created_at,
        })),
        next: rows.length === query.limit && last ? last.id : null,
      });
    },
  });
}
