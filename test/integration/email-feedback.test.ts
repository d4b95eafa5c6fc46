import { createHmac, randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { applyEmailStatus, insertEmails } from '../../db/queries/email.js';
import { emailFeedbackTotal } from '../../lib/metrics.js';
import { useHarness, type Harness } from '../helpers/harness.js';
import { putService, setupTenant } from '../helpers/tenant-services.js';

/**
 * Provider feedback on sent campaign mail: SparkPost event webhook batches (HTTP Basic
 * credentials from the tenant's SparkPostEmail secret; batches and events de-duplicated) and an
 * Async gateway's signed email receipts. Mails are seeded as the outbound worker leaves them
 * (`sent` with the provider's id); statuses, the suppression list and its audit, the
 * `campaign.record.status` events and metrics are checked, and so are refused callers and
 * malformed bodies, which apply nothing.
 */

const TENANT = 'mail-tenant';
const OTHER_TENANT = 'other-tenant';
const DOMAIN = 'news.example.com';
const HOOK = { username: 'sparkpost-hook', password: 'hook-password-0123' };

type App = Awaited<ReturnType<typeof setupTenant>>['app'];

/** Stores one campaign mail per recipient and marks each `sent` by `provider` with its id. */
async function seedSentMails(
  h: Harness,
  provider: string,
  mails: { record: string; to: string; providerMessageId: string; domain?: string }[],
): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  await h.db.transaction(async tx => {
    await insertEmails(
      tx,
      mails.map(mail => {
        const id = randomUUID();
        ids.set(mail.record, id);
        const domain = mail.domain ?? DOMAIN;
        return {
          id,
          tenantId: TENANT,
          campaign: 'spring',
          recordId: mail.record,
          domain,
          from: { address: `offers@${domain}`, name: 'Offers' },
          to: [{ address: mail.to }],
          cc: [],
          bcc: [],
          replyTo: null,
          subject: `Spring offer ${mail.record}`,
          text: 'Hello',
          html: null,
          messageId: `<${id}@${domain}>`,
          inReplyTo: null,
          references: [],
        };
      }),
    );
    for (const mail of mails) {
      await applyEmailStatus(
        tx,
        { tenantId: TENANT, id: ids.get(mail.record)! },
        { status: 'sent', reason: null, provider, providerMessageId: mail.providerMessageId },
      );
    }
  });
  return ids;
}

const statuses = async (h: Harness) =>
  Object.fromEntries(
    (
      (await h.db.any(sql.unsafe`
        SELECT record_id, delivery_status, delivery_reason, delivery_code FROM email_messages
        WHERE tenant_id = ${TENANT} ORDER BY record_id`)) as readonly {
        record_id: string;
        delivery_status: string;
        delivery_reason: string | null;
        delivery_code: string | null;
      }[]
    ).map(row => [
      row.record_id,
      { status: row.delivery_status, reason: row.delivery_reason, code: row.delivery_code },
    ]),
  );

/** Suppressed addresses with their reasons, and every audit row, as the API shows them. */
async function consent(h: Harness, app: App, admin: Record<string, string>) {
  const list = await request(app).get(`/nexus/v3/email/suppressions/${TENANT}`).set(admin);
  expect(list.status).toBe(200);
  const audit = await h.db.any(sql.unsafe`
    SELECT address, action, reason, source, detail FROM email_consent_changes ORDER BY id`);
  return {
    suppressed: Object.fromEntries(
      (list.body.data.items as { address: string; reason: string }[]).map(item => [
        item.address,
        item.reason,
      ]),
    ),
    audit,
  };
}

/** The `campaign.record.status` events after `sent`: [recordId, status]. */
const feedbackEvents = async (h: Harness) =>
  (
    (await h.db.any(sql.unsafe`
      SELECT payload->>'recordId' AS record, payload->>'status' AS status FROM events
      WHERE type = 'campaign.record.status' AND payload->>'status' <> 'sent'
      ORDER BY payload->>'recordId', occurred_at`)) as readonly { record: string; status: string }[]
  ).map(row => [row.record, row.status]);

const tableCounts = async (h: Harness) => ({
  seen: await h.db.oneFirst(sql.unsafe`SELECT count(*)::int FROM email_feedback_seen`),
  changes: await h.db.oneFirst(sql.unsafe`SELECT count(*)::int FROM email_consent_changes`),
  events: await h.db.oneFirst(
    sql.unsafe`SELECT count(*)::int FROM events WHERE type = 'campaign.record.status'`,
  ),
  statuses: JSON.stringify(await statuses(h)),
});

/** The counter's value for a kind of feedback on DOMAIN. */
const feedbackMetric = async (kind: string) =>
  (await emailFeedbackTotal.get()).values.find(
    value => value.labels.domain === DOMAIN && value.labels.kind === kind,
  )?.value ?? 0;

describe('SparkPost event webhooks', () => {
  const h = useHarness();

  async function setup(harness: Harness) {
    const { app, admin } = await setupTenant(harness, TENANT);
    await setupTenant(harness, OTHER_TENANT);
    await putService(app, admin, TENANT, 'SparkPostEmail', {
      url: 'https://api.sparkpost.com',
      secret: { apikey: 'sp-api-key' },
    }).expect(201);
    await putService(app, admin, TENANT, 'Email', { data: { provider: 'SparkPost' } }).expect(201);
    await request(app)
      .put(`/nexus/v3/provisioning/channels/${TENANT}/cxc.News`)
      .set(admin)
      .send({ channelId: DOMAIN, channelType: 'email' })
      .expect(201);
    return { app, admin };
  }

  /** SparkPost's webhook request: Basic credentials, the batch id header, a JSON array. */
  const post = (
    app: App,
    body: unknown,
    options: { batch?: string; auth?: { username: string; password: string } | null } = {},
  ) => {
    const req = request(app)
      .post(`/nexus/v3/email/sparkpost/${TENANT}/events`)
      .set('Content-Type', 'application/json')
      .set('User-Agent', 'SparkPost');
    if (options.batch) req.set('X-MessageSystems-Batch-ID', options.batch);
    const auth = options.auth === undefined ? HOOK : options.auth;
    if (auth) req.auth(auth.username, auth.password);
    return req.send(JSON.stringify(body));
  };

  // The fields SparkPost's samples carry (developers.sparkpost.com, webhooks event types).
  const messageEvent = (type: string, fields: Record<string, unknown>) => ({
    msys: {
      message_event: {
        type,
        campaign_id: 'spring',
        customer_id: '1',
        delv_method: 'esmtp',
        event_id: randomUUID(),
        friendly_from: `offers@${DOMAIN}`,
        injection_time: '2024-04-18T14:25:07.000Z',
        ip_address: '18.236.253.72',
        ip_pool: 'default',
        message_id: '000443ee14578172be22',
        msg_from: `msprvs1=18290qww0ygol=bounces-1@${DOMAIN}`,
        msg_size: '1337',
        num_retries: '0',
        rcpt_meta: {},
        rcpt_tags: [],
        rcpt_type: 'to',
        routing_domain: 'customer.example',
        sending_ip: '127.0.0.1',
        subaccount_id: '0',
        subject: 'Spring offer',
        template_id: 'smtp_1',
        template_version: '0',
        timestamp: '1713450307',
        ...fields,
      },
    },
  });

  it('applies deliveries, bounces, complaints, unsubscribes and rejections once; ignores the rest', async () => {
    const { app, admin } = await setup(h());
    // A tenant whose SparkPostEmail secret has no webhook credentials refuses every batch.
    const ping = [{ msys: {} }];
    const unconfigured = await post(app, ping).expect(401);
    expect(unconfigured.body.status.code).toBe('NEXUS_ERR_EMAIL_FEEDBACK_UNAUTHORIZED');
    await putService(app, admin, TENANT, 'SparkPostEmail', {
      url: 'https://api.sparkpost.com',
      secret: { apikey: 'sp-api-key', webhook: HOOK },
    }).expect(200);
    // SparkPost's test batch when the webhook is created.
    expect((await post(app, ping).expect(200)).body.data).toEqual({
      applied: 0,
      duplicates: 0,
      ignored: 1,
    });

    // A busy account's batch is larger than the general body limit (1mb).
    const busy = Array.from({ length: 1_500 }, (_, index) =>
      messageEvent('injection', { transmission_id: `T-busy-${index}`, rcpt_to: 'a@b.example' }),
    );
    expect(JSON.stringify(busy).length).toBeGreaterThan(1024 * 1024);
    expect((await post(app, busy, { batch: 'busy' }).expect(200)).body.data).toEqual({
      applied: 0,
      duplicates: 0,
      ignored: 1_500,
    });

    await seedSentMails(h(), 'SparkPost', [
      { record: 'r1', to: 'ann@customer.example', providerMessageId: 'T1' },
      { record: 'r2', to: 'Gone@Customer.example', providerMessageId: 'T2' },
      { record: 'r3', to: 'full@customer.example', providerMessageId: 'T3' },
      { record: 'r4', to: 'angry@customer.example', providerMessageId: 'T4' },
      { record: 'r5', to: 'leaving@customer.example', providerMessageId: 'T5' },
      { record: 'r6', to: 'broken@customer.example', providerMessageId: 'T6' },
    ]);
    const before = {
      delivered: await feedbackMetric('delivered'),
      bounced: await feedbackMetric('bounced'),
      hard: await feedbackMetric('hard_bounce'),
      complained: await feedbackMetric('complained'),
      unsubscribed: await feedbackMetric('unsubscribed'),
    };

    const hardBounce = messageEvent('bounce', {
      transmission_id: 'T2',
      rcpt_to: 'gone@customer.example',
      raw_rcpt_to: 'Gone@Customer.example',
      bounce_class: '10',
      error_code: '550',
      reason: '550 5.1.1 <gone@customer.example>: Recipient address rejected: User unknown',
      raw_reason: '550 5.1.1 <gone@customer.example>: Recipient address rejected: User unknown',
    });
    const batch = [
      messageEvent('delivery', {
        transmission_id: 'T1',
        rcpt_to: 'ann@customer.example',
        queue_time: '12',
      }),
      hardBounce,
      messageEvent('bounce', {
        transmission_id: 'T3',
        rcpt_to: 'full@customer.example',
        bounce_class: '22',
        error_code: '552',
        reason: '552 5.2.2 Mailbox full',
        raw_reason: '552 5.2.2 Mailbox full',
      }),
      messageEvent('spam_complaint', {
        transmission_id: 'T4',
        rcpt_to: 'angry@customer.example',
        fbtype: 'abuse',
        report_by: 'server.customer.example',
        report_to: 'abuse.example.com',
        user_str: 'Mozilla/5.0',
      }),
      {
        msys: {
          unsubscribe_event: {
            type: 'list_unsubscribe',
            campaign_id: 'spring',
            customer_id: '1',
            event_id: randomUUID(),
            friendly_from: `offers@${DOMAIN}`,
            mailfrom: 'recipient@customer.example',
            message_id: '0e0d94b7-9085-4e3c-ab30-e3f2cd9c273e',
            rcpt_to: 'leaving@customer.example',
            raw_rcpt_to: 'leaving@customer.example',
            rcpt_type: 'to',
            subaccount_id: '0',
            template_id: 'smtp_1',
            timestamp: '1713450307',
            transmission_id: 'T5',
          },
        },
      },
      {
        msys: {
          gen_event: {
            type: 'generation_failure',
            campaign_id: 'spring',
            customer_id: '1',
            error_code: '554',
            event_id: randomUUID(),
            raw_reason: '554 5.3.3 [internal] Error while rendering part html',
            reason: '554 5.3.3 [internal] Error while rendering part html',
            rcpt_to: 'broken@customer.example',
            raw_rcpt_to: 'broken@customer.example',
            rcpt_type: 'to',
            subaccount_id: '0',
            template_id: 'smtp_1',
            template_version: '0',
            timestamp: '1713450307',
            transmission_id: 'T6',
          },
        },
      },
      // Ignored: a delay, an open, and a delivery of a transmission the tenant does not have.
      messageEvent('delay', { transmission_id: 'T3', rcpt_to: 'full@customer.example' }),
      {
        msys: {
          track_event: {
            type: 'open',
            event_id: randomUUID(),
            rcpt_to: 'ann@customer.example',
            transmission_id: 'T1',
            user_agent: 'Mozilla/5.0',
          },
        },
      },
      messageEvent('delivery', { transmission_id: 'T404', rcpt_to: 'ann@customer.example' }),
    ];
    const applied = await post(app, batch, { batch: 'batch-1' }).expect(200);
    expect(applied.body.data).toEqual({ applied: 6, duplicates: 0, ignored: 3 });

    expect(await statuses(h())).toEqual({
      r1: { status: 'delivered', reason: null, code: null },
      r2: {
        status: 'bounced',
        reason: '550 5.1.1 <gone@customer.example>: Recipient address rejected: User unknown',
        code: null,
      },
      r3: { status: 'bounced', reason: '552 5.2.2 Mailbox full', code: null },
      r4: { status: 'complained', reason: 'spam complaint (abuse)', code: null },
      r5: { status: 'sent', reason: null, code: null },
      r6: {
        status: 'failed',
        reason: '554 5.3.3 [internal] Error while rendering part html',
        code: 'NEXUS_ERR_EMAIL_PROVIDER_REFUSED',
      },
    });
    const after = await consent(h(), app, admin);
    // A soft bounce (class 22) suppresses nothing.
    expect(after.suppressed).toEqual({
      'gone@customer.example': 'hard-bounce',
      'angry@customer.example': 'complaint',
      'leaving@customer.example': 'unsubscribe',
    });
    expect(after.audit).toEqual([
      {
        address: 'gone@customer.example',
        action: 'suppress',
        reason: 'hard-bounce',
        source: 'sparkpost',
        detail:
          'bounce_class 10: 550 5.1.1 <gone@customer.example>: Recipient address rejected: User unknown',
      },
      {
        address: 'angry@customer.example',
        action: 'suppress',
        reason: 'complaint',
        source: 'sparkpost',
        detail: 'abuse',
      },
      {
        address: 'leaving@customer.example',
        action: 'suppress',
        reason: 'unsubscribe',
        source: 'sparkpost',
        detail: 'list_unsubscribe',
      },
    ]);
    expect(await feedbackEvents(h())).toEqual([
      ['r1', 'delivered'],
      ['r2', 'bounced'],
      ['r3', 'bounced'],
      ['r4', 'complained'],
      ['r6', 'failed'],
    ]);
    expect({
      delivered: (await feedbackMetric('delivered')) - before.delivered,
      bounced: (await feedbackMetric('bounced')) - before.bounced,
      hard: (await feedbackMetric('hard_bounce')) - before.hard,
      complained: (await feedbackMetric('complained')) - before.complained,
      unsubscribed: (await feedbackMetric('unsubscribed')) - before.unsubscribed,
    }).toEqual({ delivered: 1, bounced: 2, hard: 1, complained: 1, unsubscribed: 1 });

    // SparkPost retries the batch (our answer was lost): nothing changes.
    const snapshot = await tableCounts(h());
    const retried = await post(app, batch, { batch: 'batch-1' }).expect(200);
    expect(retried.body.data).toEqual({ applied: 0, duplicates: batch.length, ignored: 0 });
    expect(await tableCounts(h())).toEqual(snapshot);

    // A new batch repeating an event: that event is a duplicate; an out-of-band bounce of the
    // delivered mail (class 30: no recipient) still applies.
    const next = await post(
      app,
      [
        hardBounce,
        messageEvent('out_of_band', {
          transmission_id: 'T1',
          rcpt_to: 'ann@customer.example',
          bounce_class: '30',
          reason: '550 5.1.0 Address rejected after acceptance',
        }),
      ],
      { batch: 'batch-2' },
    ).expect(200);
    expect(next.body.data).toEqual({ applied: 1, duplicates: 1, ignored: 0 });
    expect((await statuses(h())).r1?.status).toBe('bounced');
    const ann = await request(app)
      .get(`/nexus/v3/email/suppressions/${TENANT}/ann@customer.example`)
      .set(admin)
      .expect(200);
    expect(ann.body.data).toMatchObject({
      suppressed: true,
      reason: 'hard-bounce',
      changes: [
        {
          source: 'sparkpost',
          detail: 'bounce_class 30: 550 5.1.0 Address rejected after acceptance',
        },
      ],
    });
    const records = await request(app)
      .get(`/nexus/v3/email/campaigns/${TENANT}/spring/records`)
      .set(admin)
      .expect(200);
    expect(records.body.data.items[5]).toMatchObject({
      id: 'r6',
      status: 'failed',
      code: 'NEXUS_ERR_EMAIL_PROVIDER_REFUSED',
      provider: 'SparkPost',
    });
  });

  it("finds a mail by the hub's id in the event's metadata when its transmission id is not recorded yet", async () => {
    const { app, admin } = await setup(h());
    await putService(app, admin, TENANT, 'SparkPostEmail', {
      url: 'https://api.sparkpost.com',
      secret: { apikey: 'sp-api-key', webhook: HOOK },
    }).expect(200);
    // A mail the worker sent but whose `sent` (with the transmission id) is not committed yet.
    const id = randomUUID();
    await h().db.transaction(tx =>
      insertEmails(tx, [
        {
          id,
          tenantId: TENANT,
          campaign: 'spring',
          recordId: 'early',
          domain: DOMAIN,
          from: { address: `offers@${DOMAIN}` },
          to: [{ address: 'early@customer.example' }],
          cc: [],
          bcc: [],
          replyTo: null,
          subject: 'Spring offer',
          text: 'Hello',
          html: null,
          messageId: `<${id}@${DOMAIN}>`,
          inReplyTo: null,
          references: [],
        },
      ]),
    );
    const bounce = (meta: Record<string, unknown>) =>
      messageEvent('bounce', {
        transmission_id: 'T-not-recorded',
        rcpt_to: 'early@customer.example',
        bounce_class: '10',
        reason: '550 5.1.1 no such user',
        rcpt_meta: meta,
      });
    // Another tenant's metadata names nothing here.
    expect(
      (await post(app, [bounce({ tenant: OTHER_TENANT, mailId: id })]).expect(200)).body.data,
    ).toMatchObject({ applied: 0, ignored: 1 });
    expect(
      (await post(app, [bounce({ tenant: TENANT, mailId: id })]).expect(200)).body.data,
    ).toMatchObject({ applied: 1 });
    expect((await statuses(h())).early).toMatchObject({ status: 'bounced' });
    expect((await consent(h(), app, admin)).suppressed).toEqual({
      'early@customer.example': 'hard-bounce',
    });
  });

  it('refuses wrong or missing credentials (401) and bodies that are not arrays of objects (400), applying nothing', async () => {
    const { app, admin } = await setup(h());
    await putService(app, admin, TENANT, 'SparkPostEmail', {
      url: 'https://api.sparkpost.com',
      secret: { apikey: 'sp-api-key', webhook: HOOK },
    }).expect(200);
    // The other tenant's own credentials do not open this tenant's webhook.
    await putService(app, admin, OTHER_TENANT, 'SparkPostEmail', {
      url: 'https://api.sparkpost.com',
      secret: { apikey: 'other-key', webhook: { username: 'other', password: 'other-pass' } },
    }).expect(201);
    // A Basic user name cannot hold a colon.
    const colon = await putService(app, admin, TENANT, 'SparkPostEmail', {
      url: 'https://api.sparkpost.com',
      secret: { apikey: 'sp-api-key', webhook: { username: 'a:b', password: 'x' } },
    }).expect(400);
    expect(colon.body.status.field).toBe('body.secret.webhook.username');

    await seedSentMails(h(), 'SparkPost', [
      { record: 'r1', to: 'ann@customer.example', providerMessageId: 'T1' },
    ]);
    const delivery = [
      messageEvent('delivery', { transmission_id: 'T1', rcpt_to: 'ann@customer.example' }),
    ];
    const snapshot = await tableCounts(h());
    for (const auth of [
      null,
      { username: HOOK.username, password: 'wrong' },
      { username: 'someone', password: HOOK.password },
      { username: 'other', password: 'other-pass' },
    ]) {
      const refused = await post(app, delivery, { batch: 'b-1', auth }).expect(401);
      expect(refused.body.status.code).toBe('NEXUS_ERR_EMAIL_FEEDBACK_UNAUTHORIZED');
      expect(refused.headers['www-authenticate']).toMatch(/^Basic /);
    }
    // A bearer token is not Basic credentials; an unknown tenant has no credentials at all.
    await request(app)
      .post(`/nexus/v3/email/sparkpost/${TENANT}/events`)
      .set('Authorization', `Bearer ${HOOK.password}`)
      .send(delivery)
      .expect(401);
    await request(app)
      .post('/nexus/v3/email/sparkpost/no-such-tenant/events')
      .auth(HOOK.username, HOOK.password)
      .send(delivery)
      .expect(401);

    for (const [body, field] of [
      [{ msys: { message_event: { type: 'delivery' } } }, 'body'],
      [[1, 'delivery'], 'body.0'],
      [[delivery[0], null], 'body.1'],
    ] as const) {
      const bad = await post(app, body, { batch: 'b-2' }).expect(400);
      expect(bad.body.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field });
    }
    expect(await tableCounts(h())).toEqual(snapshot);

    // The same batch id, now authenticated and well formed, applies: nothing was recorded.
    const ok = await post(app, delivery, { batch: 'b-1' }).expect(200);
    expect(ok.body.data).toEqual({ applied: 1, duplicates: 0, ignored: 0 });
  });
});

describe('Async gateway email receipts', () => {
  const h = useHarness();
  const API_SECRET = 'gateway-api-secret';

  async function setup(harness: Harness) {
    const { app, admin } = await setupTenant(harness, TENANT);
    await putService(app, admin, TENANT, 'Async', {
      url: 'N/A',
      data: { channels: [{ channelId: DOMAIN, webhook: { url: 'https://gateway.example/mail' } }] },
      secret: {
        channels: [
          {
            channelId: DOMAIN,
            webhook: { secret: 'gateway-webhook' },
            api: { secret: API_SECRET },
          },
        ],
      },
    }).expect(201);
    await putService(app, admin, TENANT, 'Email', { data: { provider: 'Async' } }).expect(201);
    await request(app)
      .put(`/nexus/v3/provisioning/channels/${TENANT}/cxc.News`)
      .set(admin)
      .send({ channelId: DOMAIN, channelType: 'email' })
      .expect(201);
    return { app, admin };
  }

  /** The gateway's call: `x-ccid` and `X-Hub-Signature: sha1=<HMAC-SHA1(raw body)>`. */
  const signed = (app: App, body: object, secret = API_SECRET, ccid = TENANT) => {
    const raw = JSON.stringify(body);
    return request(app)
      .post(`/nexus/v3/channels/${DOMAIN}/email-receipts`)
      .set('x-ccid', ccid)
      .set('Content-Type', 'application/json')
      .set('X-Hub-Signature', `sha1=${createHmac('sha1', secret).update(raw).digest('hex')}`)
      .send(raw);
  };

  it('applies signed receipts once, suppressing permanent bounces and complaints', async () => {
    const { app, admin } = await setup(h());
    await seedSentMails(h(), 'Async', [
      { record: 'r1', to: 'ann@customer.example', providerMessageId: 'gw-1' },
      { record: 'r2', to: 'gone@customer.example', providerMessageId: 'gw-2' },
      { record: 'r3', to: 'full@customer.example', providerMessageId: 'gw-3' },
      { record: 'r4', to: 'angry@customer.example', providerMessageId: 'gw-4' },
      { record: 'r5', to: 'broken@customer.example', providerMessageId: 'gw-5' },
      // Another domain's mail: this channel's receipts cannot touch it.
      {
        record: 'r6',
        to: 'ann@customer.example',
        providerMessageId: 'gw-6',
        domain: 'other.example.com',
      },
    ]);
    const body = {
      receipts: [
        { messageId: 'gw-1', status: 'delivered' },
        {
          messageId: 'gw-2',
          status: 'bounced',
          address: 'GONE@customer.example',
          reason: '550 5.1.1 User unknown',
          permanent: true,
        },
        { messageId: 'gw-3', status: 'bounced', reason: '452 4.2.2 Mailbox full' },
        { messageId: 'gw-4', status: 'complained', reason: 'abuse report' },
        { messageId: 'gw-5', status: 'failed', reason: 'template rendering failed' },
        { messageId: 'gw-6', status: 'delivered' },
        { messageId: 'gw-unknown', status: 'delivered' },
      ],
    };
    const applied = await signed(app, body).expect(200);
    expect(applied.body.data).toEqual({ applied: 5, ignored: 2 });
    expect(await statuses(h())).toEqual({
      r1: { status: 'delivered', reason: null, code: null },
      r2: { status: 'bounced', reason: '550 5.1.1 User unknown', code: null },
      r3: { status: 'bounced', reason: '452 4.2.2 Mailbox full', code: null },
      r4: { status: 'complained', reason: 'abuse report', code: null },
      r5: {
        status: 'failed',
        reason: 'template rendering failed',
        code: 'NEXUS_ERR_EMAIL_PROVIDER_REFUSED',
      },
      r6: { status: 'sent', reason: null, code: null },
    });
    const after = await consent(h(), app, admin);
    expect(after.suppressed).toEqual({
      'gone@customer.example': 'hard-bounce',
      'angry@customer.example': 'complaint',
    });
    expect(after.audit).toEqual([
      {
        address: 'gone@customer.example',
        action: 'suppress',
        reason: 'hard-bounce',
        source: 'async',
        detail: '550 5.1.1 User unknown',
      },
      {
        address: 'angry@customer.example',
        action: 'suppress',
        reason: 'complaint',
        source: 'async',
        detail: 'abuse report',
      },
    ]);
    expect(await feedbackEvents(h())).toEqual([
      ['r1', 'delivered'],
      ['r2', 'bounced'],
      ['r3', 'bounced'],
      ['r4', 'complained'],
      ['r5', 'failed'],
    ]);

    // The gateway retries: every status and suppression is already there.
    const snapshot = await tableCounts(h());
    expect((await signed(app, body).expect(200)).body.data).toEqual({ applied: 5, ignored: 2 });
    expect(await tableCounts(h())).toEqual(snapshot);
  });

  it('refuses bad signatures (401) and bad receipts (400), applying nothing', async () => {
    const { app } = await setup(h());
    await seedSentMails(h(), 'Async', [
      { record: 'r1', to: 'ann@customer.example', providerMessageId: 'gw-1' },
    ]);
    const delivered = { receipts: [{ messageId: 'gw-1', status: 'delivered' }] };
    const snapshot = await tableCounts(h());
    for (const res of [
      await signed(app, delivered, 'wrong-secret'),
      await signed(app, delivered, API_SECRET, 'other-tenant'),
      await request(app)
        .post(`/nexus/v3/channels/${DOMAIN}/email-receipts`)
        .set('x-ccid', TENANT)
        .send(delivered),
    ]) {
      expect(res.status).toBe(401);
      expect(res.body.status.code).toBe('NEXUS_ERR_EMAIL_FEEDBACK_UNAUTHORIZED');
    }
    for (const [body, field] of [
      [{ receipts: [{ messageId: 'gw-1', status: 'sent' }] }, 'body.receipts.0.status'],
      [
        { receipts: [{ messageId: 'gw-1', status: 'bounced', address: 'not an address' }] },
        'body.receipts.0.address',
      ],
      [{ receipts: [] }, 'body.receipts'],
      // A receipt naming someone the mail did not go to refuses the whole call.
      [
        {
          receipts: [
            { messageId: 'gw-1', status: 'delivered' },
            {
              messageId: 'gw-1',
              status: 'complained',
              address: 'stranger@customer.example',
            },
          ],
        },
        'body.receipts.1.address',
      ],
    ] as const) {
      const bad = await signed(app, body).expect(400);
      expect(bad.body.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field });
    }
    expect(await tableCounts(h())).toEqual(snapshot);
  });
});
