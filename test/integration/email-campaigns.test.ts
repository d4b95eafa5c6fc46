import { generateKeyPairSync } from 'node:crypto';
import { simpleParser } from 'mailparser';
import { sql } from 'slonik';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { EgressGuard } from '../../lib/egress.js';
import { registry } from '../../lib/metrics.js';
import { createOutboundEmailProcessor } from '../../workers/processors/outbound-email.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';
import { putService, setupTenant } from '../helpers/tenant-services.js';

/**
 * Email campaigns through the SMTP provider, end to end: the API stores the records with their
 * Message-IDs and queues them, the outbound-email worker builds, DKIM-signs and sends each through
 * a pooled nodemailer transport to a real SMTP server (npm smtp-server) that refuses one
 * recipient; statuses, suppression, the one-click unsubscribe and the intake's 400s.
 */

const TENANT = 'mail-tenant';
const DOMAIN = 'news.example.com';

describe('email campaigns over SMTP', () => {
  const h = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1', NEXUS_EMAIL_MAX_BYTES: '4096' });
  let sink: SmtpSink | undefined;
  afterEach(async () => {
    await sink?.close();
    sink = undefined;
  });

  async function setup(
    harness: Harness,
    options: { dkim?: string; guard?: EgressGuard; maxPerSecond?: number } = {},
  ) {
    sink = await startSmtpSink({ auth: { username: 'relay', password: 'relay-pass' } });
    const { app, admin } = await setupTenant(harness, TENANT);
    await putService(app, admin, TENANT, 'Email', {
      url: 'N/A',
      data: { provider: 'SMTP' },
    }).expect(201);
    await putService(app, admin, TENANT, 'SmtpEmail', {
      url: `smtp://127.0.0.1:${sink.port}`,
      data: {
        maxConnections: 2,
        ...(options.maxPerSecond ? { maxPerSecond: options.maxPerSecond } : {}),
        ...(options.dkim ? { dkim: [{ domain: DOMAIN, selector: 's1' }] } : {}),
      },
      secret: {
        username: 'relay',
        password: 'relay-pass',
        ...(options.dkim ? { dkimKeys: { [DOMAIN]: options.dkim } } : {}),
      },
    }).expect(201);
    await request(app)
      .put(`/nexus/v3/provisioning/channels/${TENANT}/cxc.News`)
      .set(admin)
      .send({ channelId: DOMAIN, channelType: 'email' })
      .expect(201);
    const deps = {
      db: harness.db,
      log: harness.log,
      bus: harness.bus,
      config: harness.config,
      redis: harness.redis,
    };
    await harness.startWorkers({
      processors: {
        'outbound-email': createOutboundEmailProcessor({ ...deps, guard: options.guard }),
      },
      select: ['outbound-email', 'maintenance'],
    });
    return { app, admin };
  }

  const record = (id: string, to: string, extra: object = {}) => ({
    id,
    from: { address: `offers@${DOMAIN}`, name: 'Offres Été' },
    to,
    subject: `Votre offre ${id} — été`,
    text: `Bonjour ${id}`,
    html: `<p>Bonjour <b>${id}</b></p>`,
    ...extra,
  });

  const statuses = (harness: Harness, campaign: string) =>
    harness.db.any(sql.unsafe`
      SELECT record_id, delivery_status, delivery_reason, message_id FROM email_messages
      WHERE campaign = ${campaign} ORDER BY record_id`) as Promise<
      readonly {
        record_id: string;
        delivery_status: string;
        delivery_reason: string | null;
        message_id: string;
      }[]
    >;

  it('sends each record once, signed, with its Message-ID and unsubscribe headers; a refused recipient bounces and is suppressed', async () => {
    const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    }) as string;
    const { app, admin } = await setup(h(), { dkim: key });
    sink!.refuse.add('gone@customer.example');
    const accepted = await request(app)
      .post(`/nexus/v3/email/campaigns/${TENANT}/spring/records`)
      .set(admin)
      .send({
        records: [
          record('r1', 'ann@customer.example'),
          record('r2', 'gone@customer.example'),
          record('r3', 'bob@customer.example', {
            to: { address: 'bob@customer.example', name: 'Bob' },
          }),
        ],
      })
      .expect(202);
    expect(accepted.body.data).toEqual({ accepted: 3, duplicates: 0 });
    // Resubmitting a record id changes nothing.
    const again = await request(app)
      .post(`/nexus/v3/email/campaigns/${TENANT}/spring/records`)
      .set(admin)
      .send({ records: [record('r1', 'ann@customer.example')] })
      .expect(202);
    expect(again.body.data).toEqual({ accepted: 0, duplicates: 1 });

    await eventually(
      async () => {
        const rows = await statuses(h(), 'spring');
        return rows.every(row => row.delivery_status !== 'queued') ? rows : undefined;
      },
      15_000,
      'every record sent',
    );
    const rows = await statuses(h(), 'spring');
    expect(rows.map(row => [row.record_id, row.delivery_status])).toEqual([
      ['r1', 'sent'],
      ['r2', 'bounced'],
      ['r3', 'sent'],
    ]);
    expect(sink!.mails).toHaveLength(2);
    const first = sink!.mails.find(mail => mail.to.includes('ann@customer.example'))!;
    const parsed = await simpleParser(first.raw);
    expect(parsed.messageId).toBe(rows[0]!.message_id);
    expect(parsed.subject).toBe('Votre offre r1 — été');
    expect(parsed.from?.value[0]).toEqual({ address: `offers@${DOMAIN}`, name: 'Offres Été' });
    expect(parsed.text?.trim()).toBe('Bonjour r1');
    expect(parsed.html).toContain('<b>r1</b>');
    expect(first.raw.toString('latin1')).toMatch(
      /^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$/m,
    );
    expect(first.raw.toString('latin1')).toMatch(/^DKIM-Signature: .*d=news\.example\.com/m);

    // The refused address is suppressed; the next campaign skips it.
    const state = await request(app)
      .get(`/nexus/v3/email/suppressions/${TENANT}/gone@customer.example`)
      .set(admin)
      .expect(200);
    expect(state.body.data).toMatchObject({ suppressed: true, reason: 'hard-bounce' });
    await request(app)
      .post(`/nexus/v3/email/campaigns/${TENANT}/summer/records`)
      .set(admin)
      .send({
        records: [record('s1', 'GONE@customer.example'), record('s2', 'ann@customer.example')],
      })
      .expect(202);
    await eventually(
      async () => {
        const next = await statuses(h(), 'summer');
        return next.every(row => row.delivery_status !== 'queued') ? next : undefined;
      },
      15_000,
      'the summer campaign',
    );
    expect((await statuses(h(), 'summer')).map(row => row.delivery_status)).toEqual([
      'opted-out',
      'sent',
    ]);
    expect(sink!.mails).toHaveLength(3);
    const metrics = await registry.metrics();
    expect(metrics).toMatch(
      /nexus_email_sends_total\{provider="SMTP",domain="news\.example\.com",outcome="opted-out"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /nexus_email_feedback_total\{domain="news\.example\.com",kind="hard_bounce"\} [1-9]/,
    );

    // The events webhooks carry.
    const events = await h().db.anyFirst(sql.unsafe`
      SELECT payload->>'status' FROM events WHERE type = 'campaign.record.status'
      AND payload->>'campaign' = 'spring'`);
    expect([...events].sort()).toEqual(['bounced', 'sent', 'sent']);

    // One-click unsubscribe: the link in the mail, POSTed as a mailbox provider does.
    const link = /^List-Unsubscribe:\s*<(http[^>]+)>/m.exec(
      first.raw.toString('latin1').replace(/\r\n[ \t]+/g, ''),
    )![1]!;
    const path = new URL(link).pathname + new URL(link).search;
    await request(app).get(path).expect(200).expect('content-type', /html/);
    await request(app).post(path).type('form').send('List-Unsubscribe=One-Click').expect(200);
    const ann = await request(app)
      .get(`/nexus/v3/email/suppressions/${TENANT}/ann@customer.example`)
      .set(admin)
      .expect(200);
    expect(ann.body.data).toMatchObject({ suppressed: true, reason: 'unsubscribe' });
    await request(app)
      .post(path.replace(/sig=[0-9a-f]{4}/, 'sig=0000'))
      .expect(404);

    // An operator lifts it; the audit keeps both changes.
    await request(app)
      .delete(`/nexus/v3/email/suppressions/${TENANT}/ann@customer.example`)
      .query({ detail: 'asked by phone' })
      .set(admin)
      .expect(200);
    const lifted = await request(app)
      .get(`/nexus/v3/email/suppressions/${TENANT}/ann@customer.example`)
      .set(admin)
      .expect(200);
    expect(lifted.body.data.suppressed).toBe(false);
    expect(lifted.body.data.changes.map((c: { action: string }) => c.action)).toEqual([
      'lift',
      'suppress',
    ]);
    const list = await request(app)
      .get(`/nexus/v3/email/suppressions/${TENANT}`)
      .set(admin)
      .expect(200);
    expect(list.body.data.items.map((i: { address: string }) => i.address)).toEqual([
      'gone@customer.example',
    ]);

    const listed = await request(app)
      .get(`/nexus/v3/email/campaigns/${TENANT}/spring/records`)
      .set(admin)
      .expect(200);
    expect(listed.body.data.items[0]).toMatchObject({
      id: 'r1',
      to: 'ann@customer.example',
      // The click on its unsubscribe link proved it arrived.
      status: 'delivered',
      provider: 'SMTP',
      messageId: rows[0]!.message_id,
    });
  });

  it('refuses header injection, unknown domains and oversize mail with a coded 400, storing nothing', async () => {
    const { app, admin } = await setup(h());
    const post = (records: object[]) =>
      request(app)
        .post(`/nexus/v3/email/campaigns/${TENANT}/bad/records`)
        .set(admin)
        .send({ records });
    const refused = async (records: object[], code: string, field: string) => {
      const res = await post(records);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.status.code).toBe(code);
      expect(res.body.status.field).toBe(field);
    };
    await refused(
      [
        record('ok', 'a@customer.example'),
        record('x', 'b@customer.example', { subject: 'Hi\r\nBcc: all@victim.example' }),
      ],
      'NEXUS_ERR_VALIDATION',
      'body.records.1.subject',
    );
    await refused(
      [record('x', 'b@customer.example', { from: { address: `offers@${DOMAIN}`, name: 'A\nB' } })],
      'NEXUS_ERR_VALIDATION',
      'body.records.0.from.name',
    );
    await refused(
      [record('x', 'b@customer.example\r\nBcc: c@victim.example')],
      'NEXUS_ERR_VALIDATION',
      'body.records.0.to',
    );
    await refused(
      [record('x', 'b@customer.example', { from: 'offers@unknown.example' })],
      'NEXUS_ERR_EMAIL_UNKNOWN_DOMAIN',
      'body.records.0.from',
    );
    await refused(
      [record('x', 'b@customer.example', { text: 'x'.repeat(4096) })],
      'NEXUS_ERR_EMAIL_TOO_LARGE',
      'body.records.0',
    );
    expect(await h().db.oneFirst(sql.unsafe`SELECT count(*)::int FROM email_messages`)).toBe(0);
    expect(await h().db.oneFirst(sql.unsafe`SELECT count(*)::int FROM work`)).toBe(0);
  });

  it('sends nothing to a relay the egress rules refuse: the mail fails NEXUS_ERR_EGRESS_BLOCKED', async () => {
    // Saved while 127.0.0.1 was allowed; the worker's guard allows nothing private.
    const guard = new EgressGuard([]);
    const { app, admin } = await setup(h(), { guard });
    try {
      await request(app)
        .post(`/nexus/v3/email/campaigns/${TENANT}/blocked/records`)
        .set(admin)
        .send({ records: [record('b1', 'ann@customer.example')] })
        .expect(202);
      const row = await eventually(
        async () => {
          const [first] = await statuses(h(), 'blocked');
          return first?.delivery_status === 'failed' ? first : undefined;
        },
        15_000,
        'the mail failed',
      );
      expect(row?.delivery_reason).toMatch(/egress/);
      expect(
        await h().db.oneFirst(
          sql.unsafe`SELECT code FROM undelivered WHERE queue = 'outbound-email'`,
        ),
      ).toBe('NEXUS_ERR_EGRESS_BLOCKED');
      expect(sink!.mails).toHaveLength(0);
    } finally {
      guard.close();
    }
  });

  it("keeps to the relay's send rate across workers, without using attempts", async () => {
    const { app, admin } = await setup(h(), { maxPerSecond: 2 });
    // A second worker shares the rate (it is counted in Redis).
    const deps = { db: h().db, log: h().log, bus: h().bus, config: h().config, redis: h().redis };
    await h().startWorkers({
      processors: { 'outbound-email': createOutboundEmailProcessor(deps) },
      select: ['outbound-email'],
    });
    const started = Date.now();
    await request(app)
      .post(`/nexus/v3/email/campaigns/${TENANT}/paced/records`)
      .set(admin)
      .send({ records: [1, 2, 3, 4, 5, 6].map(n => record(`p${n}`, `p${n}@customer.example`)) })
      .expect(202);
    await eventually(
      () => Promise.resolve(sink!.mails.length === 6 ? true : undefined),
      20_000,
      'six mails',
    );
    // Two per second: six take at least two whole windows after the first.
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    // The status is recorded just after the relay's answer.
    await eventually(
      async () =>
        (await statuses(h(), 'paced')).every(row => row.delivery_status === 'sent') || undefined,
      10_000,
      'six records sent',
    );
    // Waiting for the rate is not a failed attempt: every job succeeded at its first.
    const jobs = (await eventually(
      async () => {
        const done = await h().queues.get('outbound-email').getJobs(['completed']);
        return done.length === 6 ? done : undefined;
      },
      10_000,
      'six jobs completed',
    ))!;
    expect(jobs.map(job => job.attemptsMade)).toEqual(Array(6).fill(1));
  });

  it("takes a campaign's records in a body larger than the API's general limit", async () => {
    const { app, admin } = await setup(h());
    const records = Array.from({ length: 400 }, (_, n) =>
      record(`big${n}`, `big${n}@customer.example`, { text: 'x'.repeat(3_900), html: undefined }),
    );
    const body = JSON.stringify({ records });
    expect(body.length).toBeGreaterThan(1024 * 1024);
    const res = await request(app)
      .post(`/nexus/v3/email/campaigns/${TENANT}/big/records`)
      .set(admin)
      .set('Content-Type', 'application/json')
      .send(body);
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(202);
    expect(res.body.data).toEqual({ accepted: 400, duplicates: 0 });
  });

  it('fails a mail whose sender the relay refuses, suppressing nobody', async () => {
    const { app, admin } = await setup(h());
    sink!.refuseSenders.add(`offers@${DOMAIN}`);
    await request(app)
      .post(`/nexus/v3/email/campaigns/${TENANT}/refused/records`)
      .set(admin)
      .send({ records: [record('f1', 'ann@customer.example')] })
      .expect(202);
    const row = await eventually(
      async () => {
        const [first] = await statuses(h(), 'refused');
        return first?.delivery_status === 'failed' ? first : undefined;
      },
      15_000,
      'the mail failed',
    );
    expect(row?.delivery_reason).toMatch(/MAIL FROM/);
    expect(
      await h().db.oneFirst(
        sql.unsafe`SELECT code FROM undelivered WHERE queue = 'outbound-email'`,
      ),
    ).toBe('NEXUS_ERR_EMAIL_PROVIDER_REFUSED');
    expect(await h().db.oneFirst(sql.unsafe`SELECT count(*)::int FROM email_consent`)).toBe(0);
  });
});
