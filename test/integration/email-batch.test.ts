import { randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import { describe, expect, it } from 'vitest';
import { changeEmailConsent } from '../../db/queries/email-consent.js';
import { loadEmailsToSend, recordEmailsSent } from '../../db/queries/email-batch.js';
import { applyEmailStatus, insertEmails, type NewEmail } from '../../db/queries/email.js';
import { insertWork } from '../../db/work.js';
import { useHarness, type Harness } from '../helpers/harness.js';

/**
 * The outbound-email worker's grouped statements (db/queries/email-batch.ts), on PostgreSQL:
 * the load that claims the work rows, and the `sent` record that completes them, forward only.
 */

const TENANT = 'batch-tenant';
const DOMAIN = 'news.example.com';
const QUEUE = 'outbound-email';

describe('outbound email, grouped', () => {
  const h = useHarness();

  async function setup(harness: Harness) {
    await harness.db.query(sql.unsafe`
      INSERT INTO tenants (id, name, type, created_by) VALUES (${TENANT}, 'B', 'x', 'test')`);
    await harness.db.query(sql.unsafe`
      INSERT INTO channels (tenant_id, name, channel_id, channel_type, provider)
      VALUES (${TENANT}, 'cxc.News', ${DOMAIN}, 'email', 'SMTP')`);
  }

  const mail = (recordId: string, to: string, campaign: string | null = 'spring'): NewEmail => ({
    id: randomUUID(),
    tenantId: TENANT,
    campaign,
    recordId: campaign === null ? null : recordId,
    domain: DOMAIN,
    from: { address: `offers@${DOMAIN}`, name: 'Offres' },
    to: [{ address: to }],
    cc: [],
    bcc: [],
    replyTo: null,
    subject: `Offre ${recordId}`,
    text: `Bonjour ${recordId}`,
    html: null,
    messageId: `<${randomUUID()}@${DOMAIN}>`,
    inReplyTo: null,
    references: [],
  });

  async function store(harness: Harness, mails: NewEmail[]) {
    await insertEmails(harness.db, mails);
    for (const m of mails) {
      await insertWork(
        harness.db,
        QUEUE,
        { jobId: `job-${m.id}`, tenantId: TENANT, payload: {} },
        { sweepAfterMs: 60_000 },
      );
    }
    return mails.map(m => ({ jobId: `job-${m.id}`, tenantId: TENANT, id: m.id }));
  }

  const work = (harness: Harness, jobId: string) =>
    harness.db.one(sql.unsafe`
      SELECT state, attempts FROM work WHERE queue = ${QUEUE} AND job_id = ${jobId}`) as Promise<{
      state: string;
      attempts: number;
    }>;

  const events = (harness: Harness) =>
    harness.db.anyFirst(sql.unsafe`
      SELECT payload FROM events WHERE type = 'campaign.record.status' ORDER BY payload->>'recordId'`);

  it('claims and loads a group: channel, suppressed To addresses, stale and missing mails', async () => {
    const harness = h();
    await setup(harness);
    const mails = [
      mail('r1', 'Ann@Customer.Example'),
      mail('r2', 'bob@customer.example'),
      mail('r3', 'José@customer.example'),
      mail('r4', 'ann@customer.example', null),
    ];
    const jobs = await store(harness, mails);
    for (const address of ['ann@customer.example', 'josé@customer.example']) {
      await changeEmailConsent(harness.db, {
        tenantId: TENANT,
        address,
        action: 'suppress',
        reason: 'unsubscribe',
        source: 'api',
        detail: null,
      });
    }
    // A job whose work is done already, and a job whose mail does not exist.
    await harness.db.query(sql.unsafe`
      UPDATE work SET state = 'done' WHERE job_id = ${jobs[1]!.jobId}`);
    const missing = { jobId: 'job-missing', tenantId: TENANT, id: 'not-a-uuid' };
    await insertWork(
      harness.db,
      QUEUE,
      { jobId: missing.jobId, tenantId: TENANT, payload: {} },
      { sweepAfterMs: 60_000 },
    );

    const loaded = await loadEmailsToSend(harness.db, QUEUE, [...jobs, missing]);
    expect(loaded[0]?.mail).toMatchObject({
      id: mails[0]!.id,
      campaign: 'spring',
      record_id: 'r1',
      subject: 'Offre r1',
      to_addresses: [{ address: 'Ann@Customer.Example' }],
      delivery_status: 'queued',
      channel_type: 'email',
      channel_provider: 'SMTP',
      suppressed: ['ann@customer.example'],
    });
    expect(loaded[1]).toBeUndefined();
    expect(loaded[2]?.mail?.suppressed).toEqual(['josé@customer.example']);
    // Not campaign mail: the suppression list does not apply.
    expect(loaded[3]?.mail?.suppressed).toEqual([]);
    expect(loaded[4]).toEqual({ mail: undefined });
    expect(await work(harness, jobs[0]!.jobId)).toEqual({ state: 'pending', attempts: 1 });
    expect(await work(harness, jobs[1]!.jobId)).toEqual({ state: 'done', attempts: 0 });
    expect(await work(harness, missing.jobId)).toEqual({ state: 'pending', attempts: 1 });
  });

  it('records a group sent: events for the changed, stale runs change nothing, feedback first stays', async () => {
    const harness = h();
    await setup(harness);
    const mails = [
      mail('r1', 'ann@customer.example'),
      mail('r2', 'bob@customer.example'),
      mail('r3', 'cy@customer.example'),
      mail('r4', 'dee@customer.example', null),
    ];
    const jobs = await store(harness, mails);
    const loaded = await loadEmailsToSend(harness.db, QUEUE, jobs);
    // r2's work ended elsewhere; r3 was reported delivered before its send was recorded.
    await harness.db.query(sql.unsafe`
      UPDATE work SET state = 'done' WHERE job_id = ${jobs[1]!.jobId}`);
    await harness.db.transaction(tx =>
      applyEmailStatus(
        tx,
        { tenantId: TENANT, id: mails[2]!.id },
        {
          status: 'delivered',
          reason: null,
        },
      ),
    );
    const before = (await events(harness)).length;
    const sent = jobs.map((job, i) => ({
      jobId: job.jobId,
      mail: loaded[i]!.mail!,
      reason: null,
      provider: 'SMTP',
      providerMessageId: `smtp-${i}`,
    }));
    // The first job twice (two runs): it completes once.
    const answers = await harness.db.transaction(tx =>
      recordEmailsSent(tx, QUEUE, [...sent, { ...sent[0]! }]),
    );
    expect(answers).toEqual([true, false, true, true, false]);

    const rows = await harness.db.any(sql.unsafe`
      SELECT record_id, subject, delivery_status, provider, provider_message_id FROM email_messages
      ORDER BY subject`);
    expect(rows).toEqual([
      {
        record_id: 'r1',
        subject: 'Offre r1',
        delivery_status: 'sent',
        provider: 'SMTP',
        provider_message_id: 'smtp-0',
      },
      {
        record_id: 'r2',
        subject: 'Offre r2',
        delivery_status: 'queued',
        provider: null,
        provider_message_id: null,
      },
      {
        record_id: 'r3',
        subject: 'Offre r3',
        delivery_status: 'delivered',
        provider: 'SMTP',
        provider_message_id: 'smtp-2',
      },
      {
        record_id: null,
        subject: 'Offre r4',
        delivery_status: 'sent',
        provider: 'SMTP',
        provider_message_id: 'smtp-3',
      },
    ]);
    // One new event: r1's (r2 stale, r3 unchanged, r4 not campaign mail).
    const after = await events(harness);
    expect(after.length - before).toBe(1);
    expect(after).toContainEqual({
      channel: 'email',
      campaign: 'spring',
      recordId: 'r1',
      to: 'ann@customer.example',
      status: 'sent',
      reason: null,
      code: null,
      messageId: mails[0]!.messageId,
    });
    for (const [i, state] of ['done', 'done', 'done', 'done'].entries()) {
      expect((await work(harness, jobs[i]!.jobId)).state).toBe(state);
    }
  });
});
