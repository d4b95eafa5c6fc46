import { createHmac, generateKeyPairSync } from 'node:crypto';
import { authenticate } from 'mailauth';
import { simpleParser } from 'mailparser';
import { sql } from 'slonik';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../api/app.js';
import { createOutboundEmailProcessor } from '../../workers/processors/outbound-email.js';
import {
  startAsyncGateway,
  startGenesysCloud,
  startSparkPost,
  type EmailGateway,
} from '../helpers/email-gateways.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';
import { putService, setupTenant } from '../helpers/tenant-services.js';

/**
 * The HTTP email providers end to end: campaign records go in through the API, the
 * outbound-email worker sends each through SparkPost, a Third-Party Messaging gateway (Async) or
 * Genesys Cloud, each a local server that speaks the provider's protocol and checks its
 * authentication (test/helpers/email-gateways.ts); then the stored status, provider and
 * provider id, and the bad paths: throttling without using an attempt, retries, refusals,
 * rejected recipients, missing services, answers without an id, an expired token.
 */

const TENANT = 'mail-providers';
const DOMAIN = 'news.example.com';
const APIKEY = 'sp-key-0123456789abcdef';
const GATEWAY_SECRET = 'gateway-webhook-secret';

interface MailRow {
  id: string;
  record_id: string;
  message_id: string;
  delivery_status: string;
  delivery_reason: string | null;
  delivery_code: string | null;
  provider: string | null;
  provider_message_id: string | null;
}

const rowsOf = (harness: Harness, campaign: string) =>
  harness.db.any(sql.unsafe`
    SELECT id, record_id, message_id, delivery_status, delivery_reason, delivery_code, provider,
      provider_message_id
    FROM email_messages WHERE campaign = ${campaign} ORDER BY record_id`) as Promise<
    readonly MailRow[]
  >;

/** The campaign's rows once none is `queued` any more. */
const settled = async (harness: Harness, campaign: string, timeoutMs = 15_000) =>
  (await eventually(
    async () => {
      const rows = await rowsOf(harness, campaign);
      return rows.length > 0 && rows.every(row => row.delivery_status !== 'queued')
        ? rows
        : undefined;
    },
    timeoutMs,
    `every record of ${campaign} settled`,
  )) as readonly MailRow[];

const byRecord = (rows: readonly MailRow[], recordId: string) =>
  rows.find(row => row.record_id === recordId) as MailRow;

const record = (id: string, to: string, extra: object = {}) => ({
  id,
  from: { address: `offers@${DOMAIN}`, name: 'Offres Été' },
  to,
  subject: `Votre offre ${id} — été`,
  text: `Bonjour ${id}`,
  html: `<p>Bonjour <b>${id}</b></p>`,
  ...extra,
});

interface Setup {
  /** The `Email` service's provider (none: the channel names it). */
  email?: string;
  /** The email channel's own provider. */
  channelProvider?: string;
  services?: [name: string, body: object][];
}

async function setup(harness: Harness, options: Setup) {
  const { app, admin } = await setupTenant(harness, TENANT);
  if (options.email) {
    await putService(app, admin, TENANT, 'Email', {
      url: 'N/A',
      data: { provider: options.email },
    }).expect(201);
  }
  for (const [name, body] of options.services ?? []) {
    const saved = await putService(app, admin, TENANT, name, body);
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);
  }
  await request(app)
    .put(`/nexus/v3/provisioning/channels/${TENANT}/cxc.News`)
    .set(admin)
    .send({
      channelId: DOMAIN,
      channelType: 'email',
      ...(options.channelProvider ? { provider: options.channelProvider } : {}),
    })
    .expect(201);
  await harness.startWorkers({
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
  return { app, admin };
}

const post = (app: BuiltApp, admin: Record<string, string>, campaign: string, records: object[]) =>
  request(app)
    .post(`/nexus/v3/email/campaigns/${TENANT}/${campaign}/records`)
    .set(admin)
    .send({ records })
    .expect(202);

const undelivered = async (app: BuiltApp, admin: Record<string, string>) =>
  (
    await request(app)
      .get('/nexus/v3/undelivered')
      .query({ queue: 'outbound-email' })
      .set(admin)
      .expect(200)
  ).body.data.items as { code: string; reason: string; attempts: number }[];

/** A DKIM key for the sending domain, kept in the SmtpEmail service (whatever provider sends). */
function dkimKey() {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicKey = pair.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return {
    pem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
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

const JOB_OPTIONS = { attempts: 3, backoff: { type: 'fixed', delay: 100 } };

describe('email through SparkPost', () => {
  const h = useHarness(
    { NEXUS_EGRESS_ALLOW: '127.0.0.1' },
    { jobOptions: { 'outbound-email': JOB_OPTIONS } },
  );
  let sparkpost: EmailGateway | undefined;
  afterEach(async () => {
    await sparkpost?.close();
    sparkpost = undefined;
  });

  const sparkPostService = (url: string, apikey = APIKEY): [string, object] => [
    'SparkPostEmail',
    { url, secret: { apikey } },
  ];

  it('sends the built MIME (our Message-ID, unsubscribe headers, DKIM) as a transmission and stores its id', async () => {
    sparkpost = await startSparkPost(APIKEY);
    const dkim = dkimKey();
    const { app, admin } = await setup(h(), {
      email: 'SparkPost',
      services: [
        // The API base with /api/v1 already on it, as SparkPost's EU docs give it.
        sparkPostService(`${sparkpost.url}/api/v1/`),
        [
          'SmtpEmail',
          {
            url: 'smtp://127.0.0.1:2525',
            data: { dkim: [{ domain: DOMAIN, selector: 's1' }] },
            secret: { dkimKeys: { [DOMAIN]: dkim.pem } },
          },
        ],
      ],
    });
    await post(app, admin, 'spring', [
      record('r1', 'ann@customer.example', {
        to: { address: 'ann@customer.example', name: 'Ann' },
      }),
    ]);
    const [row] = await settled(h(), 'spring');
    expect(row).toMatchObject({
      delivery_status: 'sent',
      provider: 'SparkPost',
      provider_message_id: '7000000000000001',
    });

    expect(sparkpost.sends).toHaveLength(1);
    const { request: sent, body } = sparkpost.sends[0]!;
    expect(sent.path).toBe('/api/v1/transmissions');
    expect(sent.headers.authorization).toBe(APIKEY);
    expect(body).toMatchObject({
      options: { transactional: false, open_tracking: false, click_tracking: false },
      campaign_id: 'spring',
      metadata: { tenant: TENANT, mailId: row!.id },
      recipients: [
        { address: { email: 'ann@customer.example', header_to: 'ann@customer.example' } },
      ],
    });
    const rfc822 = (body.content as { email_rfc822: string }).email_rfc822;
    const parsed = await simpleParser(rfc822);
    expect(parsed.messageId).toBe(row!.message_id);
    expect(parsed.subject).toBe('Votre offre r1 — été');
    expect(parsed.to).toMatchObject({ value: [{ address: 'ann@customer.example', name: 'Ann' }] });
    expect(rfc822).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$/m);
    // The signature the hub made still verifies on the bytes SparkPost received.
    const verified = await authenticate(Buffer.from(rfc822, 'utf8'), {
      resolver: dkim.resolver,
      trustReceived: false,
      disableArc: true,
      disableDmarc: true,
      disableBimi: true,
      sender: `offers@${DOMAIN}`,
      ip: '192.0.2.1',
      helo: 'mail.example.com',
      mta: 'mx.example.org',
    });
    expect(verified.dkim.results[0]?.status.result).toBe('pass');
  });

  it('retries a 5xx, fails a 4xx (REFUSED, undelivered), bounces a mail whose every recipient is rejected', async () => {
    sparkpost = await startSparkPost(APIKEY);
    const { app, admin } = await setup(h(), {
      email: 'SparkPost',
      services: [sparkPostService(sparkpost.url)],
    });
    sparkpost.script(
      'flaky@customer.example',
      { status: 500, body: '{"errors":[{"message":"internal error"}]}' },
      { status: 503, body: '' },
    );
    sparkpost.script('refused@customer.example', {
      status: 400,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        errors: [
          {
            message: 'Invalid domain',
            description: 'Unconfigured or unverified sending domain.',
            code: '7001',
          },
        ],
      }),
    });
    // SparkPost's answers to a transmission it generates nothing for: 200 with every recipient
    // rejected, and (single recipient) 400 with error 1902.
    sparkpost.script('all-rejected@customer.example', {
      status: 200,
      body: JSON.stringify({
        results: { total_rejected_recipients: 1, total_accepted_recipients: 0, id: '42' },
      }),
    });
    sparkpost.script('suppressed@customer.example', {
      status: 400,
      body: JSON.stringify({
        errors: [
          {
            message: 'Message generation rejected',
            description: 'recipient address was suppressed due to customer policy',
            code: '1902',
          },
        ],
      }),
    });
    await post(app, admin, 'mixed', [
      record('a-flaky', 'flaky@customer.example'),
      record('b-refused', 'refused@customer.example'),
      record('c-rejected', 'all-rejected@customer.example'),
      record('d-suppressed', 'suppressed@customer.example'),
    ]);
    const rows = await settled(h(), 'mixed');
    expect(byRecord(rows, 'a-flaky')).toMatchObject({
      delivery_status: 'sent',
      provider: 'SparkPost',
    });
    expect(
      sparkpost.sends.filter(send => JSON.stringify(send.body).includes('flaky@')),
    ).toHaveLength(3);
    expect(byRecord(rows, 'b-refused')).toMatchObject({
      delivery_status: 'failed',
      delivery_code: 'NEXUS_ERR_EMAIL_PROVIDER_REFUSED',
    });
    expect(byRecord(rows, 'b-refused').delivery_reason).toMatch(/SparkPost answered 400.*7001/);
    // A refusal is final at once: one request.
    expect(
      sparkpost.sends.filter(send => JSON.stringify(send.body).includes('refused@')),
    ).toHaveLength(1);
    expect(byRecord(rows, 'c-rejected')).toMatchObject({
      delivery_status: 'bounced',
      provider: 'SparkPost',
    });
    expect(byRecord(rows, 'c-rejected').delivery_reason).toMatch(/rejected every recipient/);
    expect(byRecord(rows, 'd-suppressed')).toMatchObject({ delivery_status: 'bounced' });
    expect(byRecord(rows, 'd-suppressed').delivery_reason).toMatch(/suppressed/);

    const failures = (await eventually(
      async () => {
        const items = await undelivered(app, admin);
        return items.length === 1 ? items : undefined;
      },
      10_000,
      'the undelivered record',
    ))!;
    expect(failures[0]).toMatchObject({ code: 'NEXUS_ERR_EMAIL_PROVIDER_REFUSED', attempts: 1 });
  });

  it('a wrong API key is refused by SparkPost; a missing SparkPostEmail service is NOT_CONFIGURED', async () => {
    sparkpost = await startSparkPost(APIKEY);
    const { app, admin } = await setup(h(), {
      email: 'SparkPost',
      services: [sparkPostService(sparkpost.url, 'not-the-key')],
    });
    await post(app, admin, 'wrong-key', [record('r1', 'ann@customer.example')]);
    const [wrong] = await settled(h(), 'wrong-key');
    expect(wrong).toMatchObject({
      delivery_status: 'failed',
      delivery_code: 'NEXUS_ERR_EMAIL_PROVIDER_REFUSED',
    });
    expect(wrong!.delivery_reason).toMatch(/SparkPost answered 401/);
    expect(sparkpost.requests).toHaveLength(1);
    expect(sparkpost.sends).toHaveLength(0);

    await request(app)
      .delete(`/nexus/v3/provisioning/services/${TENANT}/SparkPostEmail`)
      .set(admin)
      .expect(200);
    await post(app, admin, 'no-service', [record('r1', 'ann@customer.example')]);
    const [missing] = await settled(h(), 'no-service');
    expect(missing).toMatchObject({
      delivery_status: 'failed',
      delivery_code: 'NEXUS_ERR_EMAIL_PROVIDER_NOT_CONFIGURED',
    });
    expect(sparkpost.requests).toHaveLength(1);
  });
});

describe('email through SparkPost, one attempt per mail', () => {
  const h = useHarness(
    { NEXUS_EGRESS_ALLOW: '127.0.0.1' },
    { jobOptions: { 'outbound-email': { attempts: 1 } } },
  );
  let sparkpost: EmailGateway | undefined;
  afterEach(async () => {
    await sparkpost?.close();
    sparkpost = undefined;
  });

  it('waits out a 429 (Retry-After honoured) and a 420 without using its only attempt', async () => {
    sparkpost = await startSparkPost(APIKEY);
    const { app, admin } = await setup(h(), {
      email: 'SparkPost',
      services: [['SparkPostEmail', { url: sparkpost.url, secret: { apikey: APIKEY } }]],
    });
    sparkpost.script(
      'ann@customer.example',
      {
        status: 429,
        headers: { 'Retry-After': '1' },
        body: '{"errors":[{"message":"Too many requests"}]}',
      },
      {
        status: 420,
        body: '{"errors":[{"message":"Exceed Sending Limit (hourly)","code":"2101"}]}',
      },
    );
    await post(app, admin, 'throttled', [record('r1', 'ann@customer.example')]);
    const [row] = await settled(h(), 'throttled');
    expect(row).toMatchObject({ delivery_status: 'sent', provider: 'SparkPost' });
    const times = sparkpost.sends.map(send => send.request.at);
    expect(times).toHaveLength(3);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(900);
    expect(await undelivered(app, admin)).toEqual([]);
  });
});

describe('email through a Third-Party Messaging gateway (Async)', () => {
  const h = useHarness(
    { NEXUS_EGRESS_ALLOW: '127.0.0.1' },
    { jobOptions: { 'outbound-email': JOB_OPTIONS } },
  );
  let gateway: EmailGateway | undefined;
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
  });

  /** The Async service with an entry for the domain (written in another case) and an SMS number. */
  const asyncService = (url: string, channelId = 'News.Example.COM'): [string, object] => [
    'Async',
    {
      url: 'N/A',
      data: {
        channels: [
          { channelId: '+15550100', webhook: { url: `${url}/sms` } },
          { channelId, webhook: { url: `${url}/outbound` } },
        ],
        'header:X-Gateway-Account': 'acme-17',
      },
      secret: {
        channels: [
          { channelId: '+15550100', webhook: { secret: 'sms-secret' }, api: { secret: 'a' } },
          { channelId, webhook: { secret: GATEWAY_SECRET }, api: { secret: 'b' } },
        ],
      },
    },
  ];

  it("posts the mail's fields to the domain's webhook, signed, and stores the gateway's messageId", async () => {
    gateway = await startAsyncGateway(GATEWAY_SECRET);
    // No Email service: the channel names its provider.
    const { app, admin } = await setup(h(), {
      channelProvider: 'Async',
      services: [asyncService(gateway.url)],
    });
    await post(app, admin, 'spring', [
      record('r1', 'ann@customer.example', {
        to: { address: 'ann@customer.example', name: 'Ann' },
        replyTo: `help@${DOMAIN}`,
      }),
    ]);
    const [row] = await settled(h(), 'spring');
    expect(row).toMatchObject({
      delivery_status: 'sent',
      provider: 'Async',
      provider_message_id: 'gw-1',
    });
    expect(gateway.sends).toHaveLength(1);
    const { request: sent, body } = gateway.sends[0]!;
    expect(sent.headers['x-hub-signature']).toBe(
      `sha1=${createHmac('sha1', GATEWAY_SECRET).update(sent.body).digest('hex')}`,
    );
    expect(sent.headers['x-b3-traceid']).toBe(row!.id.replace(/-/g, ''));
    expect(sent.headers['x-gateway-account']).toBe('acme-17');
    expect(body).toEqual({
      messages: [
        {
          id: row!.id,
          channelId: DOMAIN,
          type: 'Email',
          from: { address: `offers@${DOMAIN}`, name: 'Offres Été' },
          to: [{ address: 'ann@customer.example', name: 'Ann' }],
          cc: [],
          bcc: [],
          replyTo: { address: `help@${DOMAIN}` },
          subject: 'Votre offre r1 — été',
          text: 'Bonjour r1',
          html: '<p>Bonjour <b>r1</b></p>',
          messageId: row!.message_id,
          inReplyTo: null,
          references: [],
          unsubscribeUrl: expect.stringMatching(/^http.*unsubscribe/) as unknown,
        },
      ],
    });
  });

  it('an answer without a messageId is BAD_ANSWER; a wrong secret is refused; no entry for the domain is NOT_CONFIGURED', async () => {
    gateway = await startAsyncGateway(GATEWAY_SECRET);
    const { app, admin } = await setup(h(), {
      email: 'Async',
      services: [asyncService(gateway.url)],
    });
    gateway.script('ann@customer.example', { status: 200, body: '{"status":"ok"}' });
    gateway.script('bob@customer.example', { status: 502, body: 'bad gateway' });
    await post(app, admin, 'answers', [
      record('r1', 'ann@customer.example'),
      record('r2', 'bob@customer.example'),
    ]);
    const rows = await settled(h(), 'answers');
    expect(byRecord(rows, 'r1')).toMatchObject({
      delivery_status: 'failed',
      delivery_code: 'NEXUS_ERR_EMAIL_PROVIDER_BAD_ANSWER',
    });
    // A 502, then success on the retry.
    expect(byRecord(rows, 'r2')).toMatchObject({ delivery_status: 'sent', provider: 'Async' });

    // The gateway checks the signature: the hub signing with another secret is refused.
    await putService(app, admin, TENANT, 'Async', {
      url: 'N/A',
      data: { channels: [{ channelId: DOMAIN, webhook: { url: `${gateway.url}/outbound` } }] },
      secret: {
        channels: [{ channelId: DOMAIN, webhook: { secret: 'stale' }, api: { secret: 'b' } }],
      },
    }).expect(200);
    await post(app, admin, 'stale', [record('r1', 'ann@customer.example')]);
    const [stale] = await settled(h(), 'stale');
    expect(stale).toMatchObject({
      delivery_status: 'failed',
      delivery_code: 'NEXUS_ERR_EMAIL_PROVIDER_REFUSED',
    });
    expect(stale!.delivery_reason).toMatch(/Async gateway answered 401/);

    // The service's entries name another domain only.
    const requests = gateway.requests.length;
    await putService(app, admin, TENANT, ...asyncService(gateway.url, 'other.example.com')).expect(
      200,
    );
    await post(app, admin, 'no-entry', [record('r1', 'ann@customer.example')]);
    const [missing] = await settled(h(), 'no-entry');
    expect(missing).toMatchObject({
      delivery_status: 'failed',
      delivery_code: 'NEXUS_ERR_EMAIL_PROVIDER_NOT_CONFIGURED',
    });
    expect(gateway.requests).toHaveLength(requests);
  });
});

describe('email through Genesys Cloud (Portico)', () => {
  const h = useHarness(
    { NEXUS_EGRESS_ALLOW: '127.0.0.1' },
    { jobOptions: { 'outbound-email': JOB_OPTIONS } },
  );
  let genesys: Awaited<ReturnType<typeof startGenesysCloud>> | undefined;
  afterEach(async () => {
    await genesys?.close();
    genesys = undefined;
  });

  const services = (url: string): [string, object][] => [
    ['PorticoEmail', { url: `${url}/` }],
    ['PurecloudIDP', { url, secret: { clientId: 'client-1', clientSecret: 'client-secret' } }],
  ];

  it('sends through the agentless email API with one cached token, fetches a new one on a 401', async () => {
    genesys = await startGenesysCloud('client-1', 'client-secret');
    const { app, admin } = await setup(h(), { email: 'Portico', services: services(genesys.url) });
    await post(app, admin, 'first', [
      record('r1', 'ann@customer.example', {
        to: { address: 'ann@customer.example', name: 'Ann' },
        replyTo: `help@${DOMAIN}`,
      }),
    ]);
    expect((await settled(h(), 'first'))[0]).toMatchObject({
      delivery_status: 'sent',
      provider: 'Portico',
      provider_message_id: 'gc-email-1',
    });
    await post(app, admin, 'second', [record('r1', 'bob@customer.example', { html: undefined })]);
    expect((await settled(h(), 'second'))[0]).toMatchObject({
      delivery_status: 'sent',
      provider_message_id: 'gc-email-2',
    });
    // One token for both sends.
    expect(genesys.tokensIssued()).toBe(1);
    const ann = genesys.sends.find(send => JSON.stringify(send.body).includes('ann@'))!;
    expect(ann.body).toEqual({
      senderType: 'Outbound',
      fromAddress: { email: `offers@${DOMAIN}`, name: 'Offres Été' },
      toAddresses: [{ email: 'ann@customer.example', name: 'Ann' }],
      replyToAddress: { email: `help@${DOMAIN}` },
      subject: 'Votre offre r1 — été',
      textBody: 'Bonjour r1',
      htmlBody: '<p>Bonjour <b>r1</b></p>',
    });
    const bob = genesys.sends.find(send => JSON.stringify(send.body).includes('bob@'))!;
    expect(bob.body).not.toHaveProperty('htmlBody');
    expect(bob.body).not.toHaveProperty('replyToAddress');

    // The token stops working: the 401 fetches a new one and the send goes through at once.
    genesys.revokeTokens();
    await post(app, admin, 'revoked', [record('r1', 'cy@customer.example')]);
    expect((await settled(h(), 'revoked'))[0]).toMatchObject({ delivery_status: 'sent' });
    expect(genesys.tokensIssued()).toBe(2);
    const cy = genesys.requests.filter(
      r => r.path.endsWith('/agentless') && r.body.includes('cy@'),
    );
    expect(cy.map(r => r.headers.authorization)).toEqual(['Bearer token-1', 'Bearer token-2']);
  });

  it('wrong client credentials are refused; no PurecloudIDP service is NOT_CONFIGURED', async () => {
    genesys = await startGenesysCloud('client-1', 'client-secret');
    const { app, admin } = await setup(h(), {
      email: 'Portico',
      services: [
        ['PorticoEmail', { url: genesys.url }],
        ['PurecloudIDP', { url: genesys.url, secret: { clientId: 'client-1', clientSecret: 'x' } }],
      ],
    });
    await post(app, admin, 'bad-client', [record('r1', 'ann@customer.example')]);
    const [refusedRow] = await settled(h(), 'bad-client');
    expect(refusedRow).toMatchObject({
      delivery_status: 'failed',
      delivery_code: 'NEXUS_ERR_EMAIL_PROVIDER_REFUSED',
    });
    expect(refusedRow!.delivery_reason).toMatch(/Genesys Cloud login answered 401/);
    expect(genesys.sends).toHaveLength(0);

    await request(app)
      .delete(`/nexus/v3/provisioning/services/${TENANT}/PurecloudIDP`)
      .set(admin)
      .expect(200);
    await post(app, admin, 'no-idp', [record('r1', 'ann@customer.example')]);
    const [missing] = await settled(h(), 'no-idp');
    expect(missing).toMatchObject({
      delivery_status: 'failed',
      delivery_code: 'NEXUS_ERR_EMAIL_PROVIDER_NOT_CONFIGURED',
    });
  });
});
