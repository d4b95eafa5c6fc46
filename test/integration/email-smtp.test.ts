import { generateKeyPairSync } from 'node:crypto';
import { authenticate } from 'mailauth';
import nodemailer from 'nodemailer';
import { sql } from 'slonik';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { startSmtpListener, type SmtpListener } from '../../api/email/smtp-listener.js';
import { createDbPool } from '../../db/pool.js';
import { createOutboundEmailProcessor } from '../../workers/processors/outbound-email.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';
import { startOpenSmtpd, type OpenSmtpd } from '../helpers/opensmtpd.js';
import { startHubProcess, type HubProcess } from '../helpers/processes.js';
import { freePort } from '../helpers/redis-server.js';
import { startSmtpSink, type SmtpSink, type SunkMail } from '../helpers/smtp-sink.js';
import { putService, setupTenant } from '../helpers/tenant-services.js';

/**
 * Outbound email through a real MTA: the hub sends campaign records over SMTP to OpenSMTPD
 * (test/helpers/opensmtpd.ts), which relays them to an smtp-server sink that refuses one
 * recipient; OpenSMTPD's bounce report comes back to the hub's SMTP listener at the mail's VERP
 * return path, bounces the record and suppresses the address. Also: a worker process killed
 * mid-campaign, and the listener's answers (relaying, duplicates, unknown mail, size, 451).
 *
 * OpenSMTPD has one queue directory per machine: every test that runs it is in this file, and
 * the file's tests run one after another.
 */

const TENANT = 'smtp-tenant';
const DOMAIN = 'news.example.com';
const BOUNCE_DOMAIN = 'bounces.hub.test';
const REFUSED = 'gone@customer.example';
const TOTAL = 1_000;

const ENV = {
  NEXUS_EGRESS_ALLOW: '127.0.0.1',
  NEXUS_EMAIL_BOUNCE_DOMAIN: BOUNCE_DOMAIN,
  NEXUS_EMAIL_RATE_PER_SECOND: '5000',
  NEXUS_WORKER_CONCURRENCY: '40',
};

/** The DKIM key of the sending domain, and the DNS answer mailauth's verifier gets for it. */
function dkimDomain() {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicKey = pair.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return {
    privateKey: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    resolver: async (name: string, rr: string) => {
      if (rr === 'TXT' && name === `s1._domainkey.${DOMAIN}`) {
        return [[`v=DKIM1; k=rsa; p=${publicKey}`]];
      }
      const error = new Error(`no ${rr} for ${name}`) as Error & { code: string };
      error.code = 'ENOTFOUND';
      throw error;
    },
  };
}

const messageIdOf = (mail: SunkMail) =>
  /^Message-ID:\s*(<[^>\r\n]+>)/im.exec(mail.raw.toString('latin1').split('\r\n\r\n', 1)[0]!)?.[1];

/** How many copies of each Message-ID the sink took. */
function copiesByMessageId(mails: readonly SunkMail[]): Map<string, number> {
  const copies = new Map<string, number>();
  for (const mail of mails) {
    const id = messageIdOf(mail) ?? '(none)';
    copies.set(id, (copies.get(id) ?? 0) + 1);
  }
  return copies;
}

/** Waits until `count` has not changed for `quietMs` (mail still on its way has arrived). */
async function settled(count: () => number, quietMs = 1_000) {
  let seen = count();
  let since = Date.now();
  await eventually(
    () => {
      if (count() !== seen) {
        seen = count();
        since = Date.now();
      }
      return Date.now() - since >= quietMs;
    },
    30_000,
    'the sink to settle',
  );
}

const record = (n: number, to: string) => ({
  id: `r${String(n).padStart(4, '0')}`,
  from: { address: `offers@${DOMAIN}`, name: 'Offres' },
  to,
  subject: `Votre offre ${n}`,
  text: `Bonjour ${n}`,
  html: `<p>Bonjour <b>${n}</b></p>`,
});

/** 1,000 records to distinct addresses, one of them to the address the sink refuses. */
const campaignRecords = () =>
  Array.from({ length: TOTAL }, (_, n) =>
    record(n, n === 500 ? REFUSED : `customer${n}@customer.example`),
  );

interface MailState {
  record_id: string;
  to: string;
  delivery_status: string;
  delivery_reason: string | null;
  message_id: string;
}

const statuses = (h: Harness, campaign: string) =>
  h.db.any(sql.unsafe`
    SELECT record_id, to_addresses->0->>'address' AS to, delivery_status, delivery_reason,
           message_id
    FROM email_messages WHERE campaign = ${campaign} ORDER BY record_id`) as Promise<
    readonly MailState[]
  >;

describe('email over SMTP through OpenSMTPD', () => {
  const h = useHarness(ENV);
  let sink: SmtpSink | undefined;
  let listener: SmtpListener | undefined;
  let mta: OpenSmtpd | undefined;
  const processes: HubProcess[] = [];
  afterEach(async () => {
    for (const p of processes.splice(0)) {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
      await p.exited;
    }
    await mta?.close();
    await listener?.close();
    await sink?.close();
    mta = listener = sink = undefined;
  });

  /** Sink, listener, OpenSMTPD between them, and a tenant whose SMTP relay is OpenSMTPD. */
  async function setup(harness: Harness, options: { dkimKey?: string } = {}) {
    sink = await startSmtpSink();
    sink.refuse.add(REFUSED);
    listener = await startSmtpListener({
      port: 0,
      host: '127.0.0.1',
      db: harness.db,
      log: harness.log,
      bounceDomain: BOUNCE_DOMAIN,
    });
    mta = await startOpenSmtpd({
      bounceDomain: BOUNCE_DOMAIN,
      hubPort: listener.port,
      sinkPort: sink.port,
    });
    const { app, admin } = await setupTenant(harness, TENANT);
    await putService(app, admin, TENANT, 'Email', {
      url: 'N/A',
      data: { provider: 'SMTP' },
    }).expect(201);
    await putService(app, admin, TENANT, 'SmtpEmail', {
      url: `smtp://127.0.0.1:${mta.port}`,
      data: {
        maxConnections: 20,
        ...(options.dkimKey ? { dkim: [{ domain: DOMAIN, selector: 's1' }] } : {}),
      },
      ...(options.dkimKey ? { secret: { dkimKeys: { [DOMAIN]: options.dkimKey } } } : {}),
    }).expect(201);
    await request(app)
      .put(`/nexus/v3/provisioning/channels/${TENANT}/cxc.News`)
      .set(admin)
      .send({ channelId: DOMAIN, channelType: 'email' })
      .expect(201);
    return { app, admin };
  }

  const startInTestWorker = (harness: Harness) =>
    harness.startWorkers({
      processors: {
        'outbound-email': createOutboundEmailProcessor({
          db: harness.db,
          log: harness.log,
          bus: harness.bus,
          config: harness.config,
          redis: harness.redis,
        }),
      },
      select: ['outbound-email', 'maintenance'],
    });

  it('a 1,000-record campaign: each accepted mail arrives once and DKIM-verifies; the refused recipient bounces from the MTA report, is suppressed, and the next campaign skips it', async () => {
    const dkim = dkimDomain();
    const { app, admin } = await setup(h(), { dkimKey: dkim.privateKey });
    // One OpenSMTPD per machine: a second is refused, and the first runs on.
    await expect(
      startOpenSmtpd({ bounceDomain: BOUNCE_DOMAIN, hubPort: 1, sinkPort: 1 }),
    ).rejects.toThrow(/one OpenSMTPD at a time/);
    await startInTestWorker(h());
    const started = Date.now();
    await request(app)
      .post(`/nexus/v3/email/campaigns/${TENANT}/spring/records`)
      .set(admin)
      .send({ records: campaignRecords() })
      .expect(202);

    const rows = await eventually(
      async () => {
        const current = await statuses(h(), 'spring');
        return current.every(row => row.delivery_status !== 'queued') ? current : undefined;
      },
      90_000,
      'every record handed to OpenSMTPD',
    );
    const sentMs = Date.now() - started;
    await eventually(() => sink!.mails.length >= TOTAL - 1, 30_000, 'every accepted mail relayed');
    const relayedMs = Date.now() - started;
    // OpenSMTPD took every mail (250); the refusal comes back later as its bounce report.
    const refused = await eventually(
      async () =>
        (await statuses(h(), 'spring')).find(
          row => row.to === REFUSED && row.delivery_status === 'bounced',
        ),
      30_000,
      "the refused recipient's record bounced by OpenSMTPD's report",
    );
    const bouncedMs = Date.now() - started;
    expect(refused!.delivery_reason).toMatch(/^gone@customer\.example: 5\.1\.1 \(550 5\.1\.1 /);
    expect(
      rows!.filter(row => row.to !== REFUSED && row.delivery_status !== 'sent').map(row => row.to),
    ).toEqual([]);

    // Every accepted mail arrived exactly once, with the Message-ID chosen at intake.
    await settled(() => sink!.mails.length);
    const copies = copiesByMessageId(sink!.mails);
    const accepted = rows!.filter(row => row.to !== REFUSED);
    expect(copies.size).toBe(TOTAL - 1);
    expect([...copies.values()].every(count => count === 1)).toBe(true);
    expect(accepted.every(row => copies.get(row.message_id) === 1)).toBe(true);
    expect(sink!.mails.some(mail => mail.to.includes(REFUSED))).toBe(false);
    // The envelope sender is the mail's VERP return path.
    const first = sink!.mails.find(mail => mail.to[0] === accepted[0]!.to)!;
    expect(first.from).toMatch(new RegExp(`^bounces\\+[0-9a-f-]{36}@${BOUNCE_DOMAIN}$`));

    // DKIM: the signature survives the relay (OpenSMTPD only prepends its Received header).
    const verifyStarted = Date.now();
    const results = await Promise.all(
      sink!.mails.map(async mail => {
        const result = await authenticate(mail.raw, {
          resolver: dkim.resolver,
          trustReceived: false,
          disableArc: true,
          disableDmarc: true,
          disableBimi: true,
          sender: mail.from,
          ip: '127.0.0.1',
          helo: mta!.hostname,
          mta: 'sink.test',
        });
        return result.dkim.results[0]?.status.result;
      }),
    );
    const verifyMs = Date.now() - verifyStarted;
    expect(results.filter(result => result !== 'pass')).toEqual([]);

    // The hard bounce suppressed the address, from the SMTP bounce.
    const state = await request(app)
      .get(`/nexus/v3/email/suppressions/${TENANT}/${REFUSED}`)
      .set(admin)
      .expect(200);
    expect(state.body.data).toMatchObject({ suppressed: true, reason: 'hard-bounce' });
    expect(state.body.data.changes[0]).toMatchObject({ source: 'smtp-bounce', action: 'suppress' });
    const events = await h().db.anyFirst(sql.unsafe`
      SELECT payload->>'status' FROM events WHERE type = 'campaign.record.status'
      AND payload->>'to' = ${REFUSED}`);
    expect([...events].sort()).toEqual(['bounced', 'sent']);

    // The next campaign to it: opted-out, nothing sent; the others go out.
    await request(app)
      .post(`/nexus/v3/email/campaigns/${TENANT}/summer/records`)
      .set(admin)
      .send({
        records: [record(1, REFUSED.toUpperCase()), record(2, 'customer2@customer.example')],
      })
      .expect(202);
    const summer = await eventually(
      async () => {
        const current = await statuses(h(), 'summer');
        return current.every(row => row.delivery_status !== 'queued') ? current : undefined;
      },
      15_000,
      'the summer campaign',
    );
    expect(summer!.map(row => row.delivery_status)).toEqual(['opted-out', 'sent']);
    await eventually(() => sink!.mails.length === TOTAL, 15_000, 'the summer mail relayed');
    expect(sink!.mails.filter(mail => mail.to.includes(REFUSED))).toEqual([]);
    console.info(
      `email-smtp: ${TOTAL} records handed to OpenSMTPD in ${sentMs} ms, relayed to the sink by ${relayedMs} ms, bounce applied by ${bouncedMs} ms; ${results.length} DKIM verifications in ${verifyMs} ms`,
    );
  }, 180_000);

  it('killing the worker process mid-campaign: every mail arrives at least once, every copy carries its first Message-ID, every record ends sent (the refused one bounced)', async () => {
    const { app, admin } = await setup(h());
    // The records wait in the queue until a worker runs.
    await request(app)
      .post(`/nexus/v3/email/campaigns/${TENANT}/crash/records`)
      .set(admin)
      .send({ records: campaignRecords() })
      .expect(202);
    const env = {
      ...ENV,
      NEXUS_WORKER_QUEUES: 'outbound-email,maintenance',
      NEXUS_WORKER_LOCK_MS: '2000',
    };
    const first = await startHubProcess(h(), 'worker', env);
    processes.push(first);
    await eventually(() => sink!.mails.length >= 300, 60_000, '300 mails relayed');
    first.child.kill('SIGKILL');
    await first.exited;
    const beforeRestart = sink!.mails.length;

    const second = await startHubProcess(h(), 'worker', env);
    processes.push(second);
    await eventually(
      async () => {
        const current = await statuses(h(), 'crash');
        return current.every(row => row.delivery_status !== 'queued') ? current : undefined;
      },
      90_000,
      'every record sent after the restart',
    );
    await eventually(
      async () =>
        (await statuses(h(), 'crash')).find(
          row => row.to === REFUSED && row.delivery_status === 'bounced',
        ),
      30_000,
      "the refused recipient's bounce report",
    );
    // Read again once the bounce is in: the refused record moved on from `sent` meanwhile.
    const rows = await statuses(h(), 'crash');
    expect(
      rows.filter(row => row.delivery_status !== (row.to === REFUSED ? 'bounced' : 'sent')),
    ).toEqual([]);
    // Every accepted mail arrived (OpenSMTPD relays what it took even while the hub is down).
    const byRecipient = new Map<string, Set<string>>();
    await eventually(
      () => new Set(sink!.mails.map(mail => mail.to[0])).size >= TOTAL - 1,
      30_000,
      'every accepted mail relayed',
    );
    await settled(() => sink!.mails.length);
    for (const mail of sink!.mails) {
      const to = mail.to[0]!;
      byRecipient.set(to, (byRecipient.get(to) ?? new Set()).add(messageIdOf(mail) ?? '(none)'));
    }
    expect(byRecipient.size).toBe(TOTAL - 1);
    // A duplicate is the same mail: the Message-ID chosen at intake, whichever worker sent it.
    for (const row of rows.filter(r => r.to !== REFUSED)) {
      expect([...(byRecipient.get(row.to) ?? [])]).toEqual([row.message_id]);
    }
    const duplicates = sink!.mails.length - (TOTAL - 1);
    // Only the mails in flight at the kill (at most the worker's concurrency) go out twice.
    expect(duplicates).toBeLessThanOrEqual(Number(ENV.NEXUS_WORKER_CONCURRENCY));
    console.info(
      `email-smtp crash test: ${beforeRestart} mails relayed before the kill, ${duplicates} duplicates after the restart`,
    );
    await second.stop();
  }, 180_000);
});

describe("the hub's SMTP listener", () => {
  const h = useHarness(ENV);
  let listener: SmtpListener | undefined;
  afterEach(async () => {
    await listener?.close();
    listener = undefined;
  });

  /** Sends raw mail to the listener as an MTA does (null sender), answering the SMTP error. */
  async function deliver(port: number, to: string, raw: string) {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port,
      secure: false,
      ignoreTLS: true,
      connectionTimeout: 5_000,
    });
    try {
      await transport.sendMail({ envelope: { from: '', to: [to] }, raw });
      return { code: 250, response: 'ok' };
    } catch (error) {
      const failed = error as { responseCode?: number; response?: string; message: string };
      return { code: failed.responseCode, response: failed.response ?? failed.message };
    } finally {
      transport.close();
    }
  }

  /** An RFC 3464 report about `to` for the mail `mailId`. */
  const report = (mailId: string, messageId: string, to: string, status = '5.1.1') =>
    [
      'From: MAILER-DAEMON@mx.customer.example',
      `To: bounces+${mailId}@${BOUNCE_DOMAIN}`,
      'Subject: Undelivered Mail Returned to Sender',
      `Message-ID: ${messageId}`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain',
      '',
      'Your mail could not be delivered.',
      '--b',
      'Content-Type: message/delivery-status',
      '',
      'Reporting-MTA: dns; mx.customer.example',
      '',
      `Final-Recipient: rfc822; ${to}`,
      'Action: failed',
      `Status: ${status}`,
      `Diagnostic-Code: smtp; 550 ${status} no such user`,
      '',
      '--b--',
      '',
    ].join('\r\n');

  /** One campaign mail, stored as sent (no worker runs: the test plays the relay). */
  async function sentMail(harness: Harness, to: string) {
    const { app, admin } = await setupTenant(harness, TENANT);
    await request(app)
      .put(`/nexus/v3/provisioning/channels/${TENANT}/cxc.News`)
      .set(admin)
      .send({ channelId: DOMAIN, channelType: 'email' })
      .expect(201);
    await request(app)
      .post(`/nexus/v3/email/campaigns/${TENANT}/solo/records`)
      .set(admin)
      .send({ records: [record(1, to)] })
      .expect(202);
    const id = (await harness.db.oneFirst(
      sql.unsafe`SELECT id FROM email_messages WHERE campaign = 'solo'`,
    )) as string;
    await harness.db.query(
      sql.unsafe`UPDATE email_messages SET delivery_status = 'sent' WHERE id = ${id}`,
    );
    return { id, app, admin };
  }

  const stateOf = async (harness: Harness, id: string) =>
    (await harness.db.one(
      sql.unsafe`SELECT delivery_status, delivery_reason FROM email_messages WHERE id = ${id}`,
    )) as { delivery_status: string; delivery_reason: string | null };

  it('refuses relaying; applies a report once however often it is sent; answers 250 for an unknown mail; refuses oversize mail with 552', async () => {
    listener = await startSmtpListener({
      port: 0,
      host: '127.0.0.1',
      db: h().db,
      log: h().log,
      bounceDomain: BOUNCE_DOMAIN,
      maxBytes: 64 * 1024,
    });
    const { id, app, admin } = await sentMail(h(), 'ann@customer.example');

    for (const to of [
      'someone@customer.example',
      `bounces+${id}@other.example`,
      `bounces@${BOUNCE_DOMAIN}`,
    ]) {
      const refused = await deliver(
        listener.port,
        to,
        report(id, '<r0@mx>', 'ann@customer.example'),
      );
      expect(refused.code, to).toBe(550);
      expect(refused.response).toMatch(/5\.7\.1 relaying denied/);
    }
    expect((await stateOf(h(), id)).delivery_status).toBe('sent');

    // A soft failure (5.2.2) bounces the mail without suppressing the address.
    const soft = await deliver(
      listener.port,
      `bounces+${id}@${BOUNCE_DOMAIN}`,
      report(id, '<r1@mx>', 'ann@customer.example', '5.2.2'),
    );
    expect(soft.code).toBe(250);
    expect(await stateOf(h(), id)).toEqual({
      delivery_status: 'bounced',
      delivery_reason: 'ann@customer.example: 5.2.2 (550 5.2.2 no such user)',
    });
    const notSuppressed = await request(app)
      .get(`/nexus/v3/email/suppressions/${TENANT}/ann@customer.example`)
      .set(admin)
      .expect(200);
    expect(notSuppressed.body.data.suppressed).toBe(false);

    // A hard one suppresses it; sent again (an MTA's retry), nothing changes twice.
    for (let n = 0; n < 2; n++) {
      const hard = await deliver(
        listener.port,
        `BOUNCES+${id.toUpperCase()}@${BOUNCE_DOMAIN.toUpperCase()}`,
        report(id, '<r2@mx>', 'ANN@customer.example'),
      );
      expect(hard.code).toBe(250);
    }
    const suppressed = await request(app)
      .get(`/nexus/v3/email/suppressions/${TENANT}/ann@customer.example`)
      .set(admin)
      .expect(200);
    expect(suppressed.body.data).toMatchObject({ suppressed: true, reason: 'hard-bounce' });
    expect(suppressed.body.data.changes).toHaveLength(1);
    expect(
      await h().db.oneFirst(
        sql.unsafe`SELECT count(*)::int FROM email_feedback_seen WHERE source = 'smtp-bounce'`,
      ),
    ).toBe(2);

    // A report for a mail the hub does not know, and a mail that is no report, are taken (no
    // retries) and dropped.
    const unknown = await deliver(
      listener.port,
      `bounces+00000000-0000-4000-8000-000000000000@${BOUNCE_DOMAIN}`,
      report('00000000-0000-4000-8000-000000000000', '<r3@mx>', 'ann@customer.example'),
    );
    expect(unknown.code).toBe(250);
    const noReport = await deliver(
      listener.port,
      `bounces+${id}@${BOUNCE_DOMAIN}`,
      'From: ann@customer.example\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nBack on 5.1.26.\r\n',
    );
    expect(noReport.code).toBe(250);

    const oversize = await deliver(
      listener.port,
      `bounces+${id}@${BOUNCE_DOMAIN}`,
      `${report(id, '<r4@mx>', 'ann@customer.example')}${'x'.repeat(70 * 1024)}\r\n`,
    );
    expect(oversize.code).toBe(552);
    expect(
      await h().db.oneFirst(
        sql.unsafe`SELECT count(*)::int FROM email_feedback_seen WHERE source = 'smtp-bounce'`,
      ),
    ).toBe(2);
  });

  it('the API process opens the listener when NEXUS_EMAIL_SMTP_PORT is set, and closes it on shutdown', async () => {
    const { id } = await sentMail(h(), 'cy@customer.example');
    const port = await freePort();
    const api = await startHubProcess(h(), 'api', {
      NEXUS_EMAIL_SMTP_PORT: String(port),
      NEXUS_EMAIL_BOUNCE_DOMAIN: BOUNCE_DOMAIN,
    });
    try {
      const answer = await deliver(
        port,
        `bounces+${id}@${BOUNCE_DOMAIN}`,
        report(id, '<r6@mx>', 'cy@customer.example'),
      );
      expect(answer.code).toBe(250);
      expect((await stateOf(h(), id)).delivery_status).toBe('bounced');
    } finally {
      expect(await api.stop()).toBe(0);
    }
    const refused = await deliver(
      port,
      `bounces+${id}@${BOUNCE_DOMAIN}`,
      'Subject: x\r\n\r\nx\r\n',
    );
    expect(refused.code).toBeUndefined();
    expect(refused.response).toMatch(/ECONNREFUSED/);
  });

  it('answers 451 when the report cannot be stored, so that the MTA retries it', async () => {
    const { id } = await sentMail(h(), 'bob@customer.example');
    const closed = await createDbPool(h().config.db, h().log);
    await closed.end();
    listener = await startSmtpListener({
      port: 0,
      host: '127.0.0.1',
      db: closed,
      log: h().log,
      bounceDomain: BOUNCE_DOMAIN,
    });
    const answer = await deliver(
      listener.port,
      `bounces+${id}@${BOUNCE_DOMAIN}`,
      report(id, '<r5@mx>', 'bob@customer.example'),
    );
    expect(answer.code).toBe(451);
    expect((await stateOf(h(), id)).delivery_status).toBe('sent');
  });
});
