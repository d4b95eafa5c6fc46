/**
 * Email campaigns (CX-Contact-like callers): submitting a campaign's records (bulk outbound mail,
 * each one `outbound-email` work) and listing the records with their statuses. Each record is
 * checked in full before anything is stored: its sender domain must be one of the tenant's email
 * channels, no header value may hold a line break, and its size is capped; one bad record refuses
 * the request with the record's field named and nothing stored.
 */
import { randomUUID } from 'node:crypto';
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { findEmailChannel, type ChannelRow } from '../../../db/queries/channels.js';
import { insertEmails, listCampaignEmails, type NewEmail } from '../../../db/queries/email.js';
import { domainOf } from '../../../domain/email-address.js';
import { EMAIL_STATUSES } from '../../../domain/email-status.js';
import { AppError } from '../../../lib/errors.js';
import { outboundEmailQueue } from '../../../queues/outbound-email.js';
import { dispatchWork, recordWorkBatch, type EnqueueContext } from '../../../queues/work.js';
import { assertTenant } from '../../auth/principal.js';
import { reply } from '../../error-handler.js';
import { envelopeOf, type Api } from '../../openapi.js';
import { emailAddress, headerText, namedAddress } from '../../email/fields.js';

/** Where campaigns post their records (the app parses their larger bodies there). */
export const EMAIL_CAMPAIGNS_PATH = '/nexus/v3/email/campaigns';

export interface EmailCampaignDeps {
  db: DatabasePool;
  enqueue: EnqueueContext;
  /** NEXUS_EMAIL_MAX_BYTES. */
  maxBytes: number;
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
            from: namedAddress,
            to: namedAddress,
            replyTo: emailAddress.optional(),
            subject: headerText(998).pipe(z.string().min(1)),
            text: z.string().min(1),
            html: z.string().min(1).optional(),
          })
          .strict(),
      )
      .min(1)
      .max(1_000),
  })
  .strict()
  .openapi('EmailCampaignRecords');

const recordOut = z
  .object({
    id: z.string(),
    to: z.string(),
    from: z.string(),
    status: z.enum(EMAIL_STATUSES),
    reason: z.string().nullable(),
    code: z
      .string()
      .nullable()
      .describe('A `failed` status\'s code (docs/errors.md, "Failed work")'),
    messageId: z.string().describe('The `Message-ID` the mail carries'),
    provider: z.string().nullable(),
    updated: z.string(),
  })
  .openapi('EmailCampaignRecord');

/** The campaign routes: submit records, list records. */
export function emailCampaignRoutes(api: Api, deps: EmailCampaignDeps): void {
  const { db } = deps;

  api.route({
    method: 'post',
    path: '/nexus/v3/email/campaigns/:ccid/:campaign/records',
    tag: 'Email',
    summary: 'Submit email records of a campaign',
    description:
      "Up to 1,000 records `{id, from, to, replyTo?, subject, text, html?}`: `from` (an address or `{address, name}`) must be at a domain of one of the tenant's email channels (`channelType: email`); `id` is the caller's, unique within the campaign (a resubmitted id is ignored). Each mail gets its `Message-ID` now, carries one-click unsubscribe headers, is checked against the suppression list when it is sent, and its status changes are `campaign.record.status` webhook events.",
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
      const channels = new Map<string, ChannelRow | undefined>();
      const rows: NewEmail[] = [];
      for (const [index, record] of body.records.entries()) {
        const field = `body.records.${index}`;
        const domain = domainOf(record.from.address);
        if (!channels.has(domain)) {
          channels.set(domain, await findEmailChannel(db, params.ccid, domain));
        }
        const channel = channels.get(domain);
        if (!channel) {
          throw new AppError(
            'NEXUS_ERR_EMAIL_UNKNOWN_DOMAIN',
            `${field}.from: no email channel of the tenant has the domain ${domain}`,
            `${field}.from`,
          );
        }
        const size =
          Buffer.byteLength(record.subject) +
          Buffer.byteLength(record.text) +
          Buffer.byteLength(record.html ?? '');
        if (size > deps.maxBytes) {
          throw new AppError(
            'NEXUS_ERR_EMAIL_TOO_LARGE',
            `${field}: the subject and bodies take ${size} bytes; at most ${deps.maxBytes} are allowed`,
            field,
          );
        }
        const id = randomUUID();
        rows.push({
          id,
          tenantId: params.ccid,
          campaign: params.campaign,
          recordId: record.id,
          domain: channel.channel_id,
          from: record.from,
          to: [record.to],
          cc: [],
          bcc: [],
          replyTo: record.replyTo ?? null,
          subject: record.subject,
          text: record.text,
          html: record.html ?? null,
          messageId: `<${id}@${channel.channel_id.toLowerCase()}>`,
          inReplyTo: null,
          references: [],
        });
      }
      const works = await db.transaction(async tx => {
        const inserted = await insertEmails(tx, rows);
        return recordWorkBatch(
          tx,
          outboundEmailQueue,
          inserted.map(id => ({ tenantId: params.ccid, recordId: id })),
          deps.enqueue,
        );
      });
      await dispatchWork(deps.enqueue, works);
      reply(res, 202, { accepted: works.length, duplicates: rows.length - works.length });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/email/campaigns/:ccid/:campaign/records',
    tag: 'Email',
    summary: "A campaign's email records and their statuses",
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
      const rows = await listCampaignEmails(db, params.ccid, params.campaign, {
        after: query.after,
        limit: query.limit,
      });
      const last = rows.at(-1);
      reply(res, 200, {
        items: rows.map(row => ({
          id: row.record_id ?? '',
          to: row.to_addresses[0]?.address ?? '',
          from: row.from_address,
          status: row.delivery_status,
          reason: row.delivery_reason,
          code: row.delivery_code,
          messageId: row.message_id,
          provider: row.provider,
          updated: row.delivery_updated_at,
        })),
        next: rows.length === query.limit && last?.record_id ? last.record_id : null,
      });
    },
  });
}
