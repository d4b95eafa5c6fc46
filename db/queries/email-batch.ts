import { randomUUID } from 'node:crypto';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { OPERATIONAL_EVENT_DATA } from '../../domain/event-catalogue.js';
import { EMAIL_STATUSES } from '../../domain/email-status.js';
import { claimPendingWorks, completePendingWorks } from '../work.js';
import { suppressedAmong } from './email-consent.js';
import { applyEmailStatus } from './email.js';

/**
 * The outbound-email worker's hot path in PostgreSQL, for concurrent jobs at once (group
 * commit): one statement counts the attempts on their work rows and loads their mails with what
 * the send needs; one transaction records the `sent` ones, their `campaign.record.status` events
 * and their work rows' completion. The rare outcomes (opted-out, bounced, failed) go through
 * `applyEmailStatus` one mail at a time.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Printable ASCII: addresses whose suppression key PostgreSQL computes exactly as JavaScript. */
const PLAIN_ASCII = /^[\x21-\x7e]*$/;

const address = z.object({ address: z.string(), name: z.string().optional() });

const sendableRow = z.object({
  job_id: z.string(),
  id: z.string().nullable(),
  tenant_id: z.string().nullable(),
  campaign: z.string().nullable(),
  record_id: z.string().nullable(),
  domain: z.string().nullable(),
  from_address: z.string().nullable(),
  from_name: z.string().nullable(),
  to_addresses: z.array(address).nullable(),
  cc_addresses: z.array(address).nullable(),
  bcc_addresses: z.array(address).nullable(),
  reply_to: z.string().nullable(),
  subject: z.string().nullable(),
  text_body: z.string().nullable(),
  html_body: z.string().nullable(),
  message_id: z.string().nullable(),
  in_reply_to: z.string().nullable(),
  reference_ids: z.array(z.string()).nullable(),
  delivery_status: z.enum(EMAIL_STATUSES).nullable(),
  channel_type: z.string().nullable(),
  channel_provider: z.string().nullable(),
  suppressed: z.array(z.string()).nullable(),
});

/** A mail as the send needs it: the build's columns, its channel, its suppressed recipients. */
export interface SendableEmail {
  id: string;
  tenant_id: string;
  campaign: string | null;
  record_id: string | null;
  domain: string;
  from_address: string;
  from_name: string | null;
  to_addresses: z.infer<typeof address>[];
  cc_addresses: z.infer<typeof address>[];
  bcc_addresses: z.infer<typeof address>[];
  reply_to: string | null;
  subject: string;
  text_body: string;
  html_body: string | null;
  message_id: string;
  in_reply_to: string | null;
  reference_ids: string[];
  delivery_status: (typeof EMAIL_STATUSES)[number] | null;
  /** The tenant's channel of the mail's domain (null: none any more). */
  channel_type: string | null;
  channel_provider: string | null;
  /** Campaign mail: its To addresses on the suppression list (suppression keys). */
  suppressed: string[];
}

export interface EmailToLoad {
  jobId: string;
  tenantId: string;
  /** The mail's id (the job's `recordId`). */
  id: string;
}

/**
 * A job's load: undefined when its work row was not pending (nothing claimed: a stale or foreign
 * job); `mail` undefined when the claim counted but no such mail exists.
 */
export type LoadedEmail = { mail: SendableEmail | undefined } | undefined;

/**
 * Counts an attempt on the pending work rows of `jobs` (queue `queue`) and loads their mails, in
 * one statement: the columns the build needs (not the status history), the channel of the mail's
 * domain, and for campaign mail the To addresses that are suppressed. Answers one entry per job,
 * in order.
 */
export async function loadEmailsToSend(
  db: CommonQueryMethods,
  queue: string,
  jobs: readonly EmailToLoad[],
): Promise<LoadedEmail[]> {
  if (jobs.length === 0) return [];
  const rows = await db.any(sql.type(sendableRow)`
    WITH claimed AS (${claimPendingWorks(
      queue,
      jobs.map(job => job.jobId),
    )}), wanted AS (
      SELECT DISTINCT ON (v.job_id) v.job_id, v.tenant_id, v.id
      FROM ${sql.unnest(
        jobs.map(job => [job.jobId, job.tenantId, UUID.test(job.id) ? job.id : null]),
        ['text', 'text', 'uuid'],
      )} AS v(job_id, tenant_id, id)
    )
    SELECT c.job_id, m.id, m.tenant_id, m.campaign, m.record_id, m.domain, m.from_address,
           m.from_name, m.to_addresses, m.cc_addresses, m.bcc_addresses, m.reply_to, m.subject,
           m.text_body, m.html_body, m.message_id, m.in_reply_to, m.reference_ids,
           m.delivery_status, ch.channel_type, ch.provider AS channel_provider,
           CASE WHEN m.campaign IS NOT NULL THEN ARRAY(
             SELECT s.address FROM email_consent s
             WHERE s.tenant_id = m.tenant_id AND s.suppressed
               AND s.address = ANY(ARRAY(
                 SELECT lower((t->>'address') COLLATE "C")
                 FROM jsonb_array_elements(m.to_addresses) t))
           ) END AS suppressed
    FROM claimed c
    JOIN wanted w ON w.job_id = c.job_id
    LEFT JOIN email_messages m ON m.tenant_id = w.tenant_id AND m.id = w.id
    LEFT JOIN channels ch ON ch.tenant_id = m.tenant_id
      AND channels_sender_key(ch.channel_id) = channels_sender_key(m.domain)`);
  const byJob = new Map<string, { mail: SendableEmail | undefined }>();
  for (const row of rows) {
    if (row.id === null) {
      byJob.set(row.job_id, { mail: undefined });
      continue;
    }
    const mail = { ...row, suppressed: row.suppressed ?? [] } as SendableEmail;
    // The SQL lowercases ASCII only (collation "C"); other addresses are checked as the
    // suppression list keys them.
    if (mail.campaign !== null && mail.to_addresses.some(to => !PLAIN_ASCII.test(to.address))) {
      const tos = mail.to_addresses.map(to => to.address);
      mail.suppressed = [...(await suppressedAmong(db, mail.tenant_id, tos))];
    }
    byJob.set(row.job_id, { mail });
  }
  return jobs.map(job => byJob.get(job.jobId));
}

/** A mail the provider took, to record as `sent`. */
export interface SentEmail {
  jobId: string;
  mail: Pick<
    SendableEmail,
    'id' | 'tenant_id' | 'campaign' | 'record_id' | 'to_addresses' | 'message_id'
  >;
  reason: string | null;
  provider: string;
  providerMessageId: string | undefined;
}

/**
 * Records mails the provider took, in the caller's transaction, in one statement: each job's work
 * row is completed if it is still pending; the mails of the completed jobs that are still
 * `queued` become `sent` (with the provider and its id) and a campaign record's change is
 * announced as a `campaign.record.status` event, as {@link applyEmailStatus} does. A mail past
 * `queued` already (feedback got there first) goes through `applyEmailStatus` (forward only, its
 * provider id kept). Answers, per entry in order, whether its job's work was pending (false: a
 * stale run, whose mail this changed nothing of). A job id twice completes once: the first entry
 * gets the answer, the others false.
 */
export async function recordEmailsSent(
  tx: CommonQueryMethods,
  queue: string,
  sent: readonly SentEmail[],
): Promise<boolean[]> {
  if (sent.length === 0) return [];
  const first = new Map<string, SentEmail>();
  for (const entry of sent) if (!first.has(entry.jobId)) first.set(entry.jobId, entry);
  const unique = [...first.values()];
  const rows = unique.map(entry => {
    const { mail } = entry;
    let event: string | null = null;
    if (mail.campaign !== null && mail.record_id !== null) {
      const data = {
        channel: 'email' as const,
        campaign: mail.campaign,
        recordId: mail.record_id,
        to: mail.to_addresses[0]?.address ?? '',
        status: 'sent' as const,
        reason: entry.reason,
        code: null,
        messageId: mail.message_id,
      };
      OPERATIONAL_EVENT_DATA['campaign.record.status'].parse(data);
      event = JSON.stringify(data);
    }
    return [
      entry.jobId,
      mail.tenant_id,
      mail.id,
      entry.reason,
      entry.provider,
      entry.providerMessageId ?? null,
      event === null ? null : randomUUID(),
      event,
    ];
  });
  const answered = await tx.any(sql.type(z.object({ job_id: z.string(), sent: z.boolean() }))`
    WITH done AS (${completePendingWorks(
      queue,
      unique.map(entry => entry.jobId),
    )}), v AS (
      SELECT * FROM ${sql.unnest(rows, ['text', 'text', 'uuid', 'text', 'text', 'text', 'uuid', 'jsonb'])}
        AS v(job_id, tenant_id, id, reason, provider, provider_message_id, event_id, event)
    ), sent AS (
      UPDATE email_messages m SET
        delivery_status = 'sent', delivery_reason = v.reason, delivery_code = NULL,
        delivery_updated_at = now(), provider = v.provider,
        provider_message_id = coalesce(v.provider_message_id, m.provider_message_id)
      FROM v JOIN done ON done.job_id = v.job_id
      WHERE m.tenant_id = v.tenant_id AND m.id = v.id AND m.delivery_status = 'queued'
      RETURNING m.id
    ), announced AS (
      INSERT INTO events (id, tenant_id, interaction_id, seq, type, payload)
      SELECT v.event_id, v.tenant_id, NULL, NULL, 'campaign.record.status', v.event
      FROM v JOIN sent ON sent.id = v.id
      WHERE v.event IS NOT NULL
    )
    SELECT done.job_id, EXISTS (SELECT 1 FROM sent WHERE sent.id = v.id) AS sent
    FROM done JOIN v ON v.job_id = done.job_id`);
  const done = new Map(answered.map(row => [row.job_id, row.sent]));
  for (const entry of unique) {
    if (done.get(entry.jobId) !== false) continue;
    // Completed, but the mail was no longer queued: merge the report as any other.
    await applyEmailStatus(
      tx,
      { tenantId: entry.mail.tenant_id, id: entry.mail.id },
      {
        status: 'sent',
        reason: entry.reason,
        provider: entry.provider,
        providerMessageId: entry.providerMessageId,
      },
    );
  }
  return sent.map(entry => first.get(entry.jobId) === entry && done.has(entry.jobId));
}
