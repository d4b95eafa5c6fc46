import { createHmac } from 'node:crypto';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import { sql } from 'slonik';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { inboundMailHook } from '../../api/email/inbound-mime.js';
import { startSmtpListener } from '../../api/email/smtp-listener.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { createOutboundEmailProcessor } from '../../workers/processors/outbound-email.js';
import { createAgent, provisionChatTenant, startCustomerChat } from '../helpers/chat.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';
import { putService, setupTenant } from '../helpers/tenant-services.js';

/**
 * Email conversations: a customer's reply to a campaign mail, posted by the Async gateway's
 * inbound API, joins that record's conversation and is routed to an agent like a chat; the
 * agent's answer goes out through SMTP threaded on it (In-Reply-To, References, Re:, reply-all
 * Cc, Bcc in the envelope only, the customer's mail quoted). HTML is sanitised, attachments kept
 * within the allow-list, duplicates recognised, and header injection refused with nothing stored.
 */

const TENANT = 'conv-tenant';
const DOMAIN = 'help.example.com';
const API_SECRET = 'gateway-api-secret';

describe('email conversations', () => {
  const h = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1' });
  let sink: SmtpSink | undefined;
  afterEach(async () => {
    await sink?.close();
    sink = undefined;
  });

  async function setup(harness: Harness) {
    sink = await startSmtpSink();
    const { app, admin } = await setupTenant(harness, TENANT);
    await putService(app, admin, TENANT, 'Email', {
      url: 'N/A',
      data: { provider: 'SMTP' },
    }).expect(201);
    await putService(app, admin, TENANT, 'SmtpEmail', {
      url: `smtp://127.0.0.1:${sink.port}`,
    }).expect(201);
    await putService(app, admin, TENANT, 'Async', {
      data: { channels: [{ channelId: DOMAIN, webhook: { url: 'https://gateway.example/hook' } }] },
      secret: {
        channels: [
          { channelId: DOMAIN, webhook: { secret: 'hook-secret' }, api: { secret: API_SECRET } },
        ],
      },
    }).expect(201);
    await request(app)
      .put(`/nexus/v3/provisioning/endpoints/${TENANT}/EmailDesk`)
      .set(admin)
      .send({})
      .expect(201);
    const agent = await createAgent(harness, app, TENANT, 'erin', 'Erin');
    await request(app)
      .put(`/nexus/v3/provisioning/queues/${TENANT}/Mail`)
      .set(admin)
      .send({ endpoints: ['EmailDesk'], agents: [agent.id] })
      .expect(201);
    await request(app)
      .put(`/nexus/v3/provisioning/channels/${TENANT}/cxc.Support`)
      .set(admin)
      .send({ channelId: DOMAIN, channelType: 'email', endpoint: 'EmailDesk' })
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
        inbound: createInboundProcessor({
          db: harness.db,
          publisher: harness.publisher,
          queues: harness.queues,
          log: harness.log,
        }),
        'outbound-email': createOutboundEmailProcessor(deps),
      },
      select: ['inbound', 'outbound-email', 'maintenance'],
    });
    return { app, admin, agent };
  }

  /** Posts mails as the gateway does: signed with the channel's api secret. */
  const gateway = (app: Harness['app'] extends () => infer A ? A : never, body: object) => {
    const raw = JSON.stringify(body);
    return request(app)
      .post(`/nexus/v3/channels/${DOMAIN}/emails`)
      .set('x-ccid', TENANT)
      .set('Content-Type', 'application/json')
      .set('X-Hub-Signature', `sha1=${createHmac('sha1', API_SECRET).update(raw).digest('hex')}`)
      .send(raw);
  };

  it("threads a reply to a campaign mail into the record's conversation and sends the agent's threaded answer", async () => {
    const { app, admin, agent } = await setup(h());
    await request(app)
      .post(`/nexus/v3/email/campaigns/${TENANT}/autumn/records`)
      .set(admin)
      .send({
        records: [
          {
            id: 'c1',
            from: { address: `offers@${DOMAIN}`, name: 'Help Desk' },
            to: 'carla@customer.example',
            subject: 'Your autumn offer',
            text: 'Twenty percent off.',
          },
        ],
      })
      .expect(202);
    const campaignMail = (await eventually(
      () =>
        h().db.maybeOne(sql.unsafe`
          SELECT id, message_id FROM email_messages
          WHERE campaign = 'autumn' AND delivery_status = 'sent'`),
      15_000,
      'the campaign mail sent',
    )) as { id: string; message_id: string };

    const reply = {
      from: { address: 'Carla@Customer.example', name: 'Carla' },
      to: [{ address: `offers@${DOMAIN}` }],
      cc: ['dan@customer.example'],
      subject: 'Re: Your autumn offer',
      text: 'Does it apply to shoes?',
      html: '<p onclick="x()">Does it apply to <b>shoes</b>?</p><script>alert(1)</script>',
      messageId: '<reply-1@customer.example>',
      inReplyTo: campaignMail.message_id,
      references: [campaignMail.message_id],
      attachments: [
        {
          filename: 'shoe.png',
          contentType: 'image/png',
          content: Buffer.from('png').toString('base64'),
        },
        {
          filename: 'run.exe',
          contentType: 'application/x-msdownload',
          content: Buffer.from('MZ').toString('base64'),
        },
      ],
    };
    const accepted = await gateway(app, { messages: [reply] }).expect(202);
    const [result] = accepted.body.data.results as { interactionId: string; duplicate: boolean }[];
    expect(result!.duplicate).toBe(false);
    // A retry of the same mail stores nothing more.
    const again = await gateway(app, { messages: [reply] }).expect(202);
    expect(again.body.data.results[0]).toMatchObject({
      duplicate: true,
      interactionId: result!.interactionId,
    });

    const stored = (await h().db.one(sql.unsafe`
      SELECT interaction_id, html_body, attachments FROM email_messages
      WHERE message_id = '<reply-1@customer.example>'`)) as {
      interaction_id: string;
      html_body: string;
      attachments: { filename: string }[];
    };
    expect(stored.interaction_id).toBe(result!.interactionId);
    expect(stored.html_body).toBe('<p>Does it apply to <b>shoes</b>?</p>');
    expect(stored.attachments.map(entry => entry.filename)).toEqual(['shoe.png']);
    // The campaign record joined the conversation its answer started.
    expect(
      await h().db.oneFirst(
        sql.unsafe`SELECT interaction_id FROM email_messages WHERE id = ${campaignMail.id}`,
      ),
    ).toBe(result!.interactionId);
    const transcript = await h().db.oneFirst(sql.unsafe`
      SELECT text FROM messages WHERE interaction_id = ${result!.interactionId}`);
    expect(transcript).toContain('Does it apply to shoes?');
    expect(transcript).toContain(
      'run.exe: not kept (application/x-msdownload is not an allowed type)',
    );

    // Routed like a chat: started, queued to the queue of the channel's endpoint.
    await eventually(
      async () => {
        const row = (await h().db.one(sql.unsafe`
        SELECT queue_name, routing_state FROM interactions WHERE id = ${result!.interactionId}`)) as {
          queue_name: string | null;
        };
        return row.queue_name === 'Mail' ? row : undefined;
      },
      15_000,
      'the conversation queued',
    );
    const contact = await h().db.oneFirst(sql.unsafe`
      SELECT value FROM contact_identifiers WHERE kind = 'email'`);
    expect(contact).toBe('carla@customer.example');

    // The agent answers (joining it), with a Bcc.
    const agentAuth = { Authorization: `Bearer ${agent.token}` };
    await request(app)
      .post(`/nexus/v3/agent/interactions/${result!.interactionId}/messages`)
      .set(agentAuth)
      .send({ text: 'Yes, shoes too.', bcc: ['audit@help.example.com', 'boss@elsewhere.example'] })
      .expect(201);
    const answer = (await eventually(
      () =>
        Promise.resolve(
          sink!.mails.find(mail => /^In-Reply-To:/im.test(mail.raw.toString('latin1'))),
        ),
      15_000,
      "the agent's answer at the sink",
    ))!;
    const parsed = await simpleParser(answer.raw);
    expect(parsed.inReplyTo).toBe('<reply-1@customer.example>');
    expect([parsed.references].flat()).toEqual([
      campaignMail.message_id,
      '<reply-1@customer.example>',
    ]);
    expect(parsed.subject).toBe('Re: Your autumn offer');
    expect(parsed.from?.value[0]?.address).toBe(`offers@${DOMAIN}`);
    expect(
      parsed.to && !Array.isArray(parsed.to) ? parsed.to.value.map(v => v.address) : [],
    ).toEqual(['Carla@customer.example']);
    expect(
      parsed.cc && !Array.isArray(parsed.cc) ? parsed.cc.value.map(v => v.address) : [],
    ).toEqual(['dan@customer.example']);
    expect(answer.raw.toString('latin1')).not.toMatch(/^Bcc:/im);
    expect([...answer.to].sort()).toEqual(
      [
        'Carla@customer.example',
        'dan@customer.example',
        'audit@help.example.com',
        'boss@elsewhere.example',
      ].sort(),
    );
    expect(parsed.text).toContain('Yes, shoes too.');
    expect(parsed.text).toContain('Carla wrote:\n> Does it apply to shoes?');
    // Not campaign mail: no unsubscribe header.
    expect(answer.raw.toString('latin1')).not.toMatch(/^List-Unsubscribe/im);
  });

  it('refuses bad inbound mail with a coded 400 and stores nothing', async () => {
    const { app } = await setup(h());
    const base = {
      from: 'x@customer.example',
      to: [`help@${DOMAIN}`],
      subject: 'Hello',
      text: 'Hi',
    };
    const refused = async (mail: object, code: string, field: string) => {
      const res = await gateway(app, { messages: [base, mail] });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.status.code).toBe(code);
      expect(res.body.status.field).toBe(field);
    };
    await refused(
      { ...base, subject: 'Hi\r\nBcc: victim@x.example' },
      'NEXUS_ERR_VALIDATION',
      'body.messages.1.subject',
    );
    await refused(
      { ...base, from: { address: 'x@customer.example', name: 'X\nY' } },
      'NEXUS_ERR_VALIDATION',
      'body.messages.1.from.name',
    );
    await refused(
      { ...base, inReplyTo: '<a@b>\r\nX: y' },
      'NEXUS_ERR_VALIDATION',
      'body.messages.1.inReplyTo',
    );
    await refused(
      { ...base, to: ['help@elsewhere.example'] },
      'NEXUS_ERR_EMAIL_UNKNOWN_DOMAIN',
      'body.messages.1.to',
    );
    await refused({ ...base, text: undefined }, 'NEXUS_ERR_VALIDATION', 'body.messages.1.text');
    // A bad signature: refused, nothing stored.
    await request(app)
      .post(`/nexus/v3/channels/${DOMAIN}/emails`)
      .set('x-ccid', TENANT)
      .set('X-Hub-Signature', 'sha1=00')
      .send({ messages: [base] })
      .expect(401);
    expect(await h().db.oneFirst(sql.unsafe`SELECT count(*)::int FROM email_messages`)).toBe(0);
    expect(await h().db.oneFirst(sql.unsafe`SELECT count(*)::int FROM messages`)).toBe(0);
    expect(await h().db.oneFirst(sql.unsafe`SELECT count(*)::int FROM work`)).toBe(0);
  });

  it('refuses Cc and Bcc in a conversation that is not email, storing nothing', async () => {
    const api = await h().serve();
    const chat = await provisionChatTenant(h(), api.app, 'chat-only');
    const session = await startCustomerChat(api.url, chat.chatKey, 'Ada');
    const res = await request(api.url)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/messages`)
      .set('Authorization', `Bearer ${chat.agent.token}`)
      .send({ text: 'Hello', cc: ['x@customer.example'] });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field: 'body.cc' });
    expect(
      await h().db.oneFirst(
        sql.unsafe`SELECT count(*)::int FROM messages WHERE sender_type = 'agent'`,
      ),
    ).toBe(0);
  });

  it("takes customers' mail through the hub's SMTP listener, and refuses other domains at RCPT", async () => {
    const { app, agent } = await setup(h());
    const listener = await startSmtpListener({
      port: 0,
      host: '127.0.0.1',
      db: h().db,
      log: h().log,
      bounceDomain: undefined,
      inbound: inboundMailHook({
        db: h().db,
        enqueue: h().enqueue,
        log: h().log,
        attachmentMaxBytes: h().config.email.attachmentMaxBytes,
      }),
    });
    const mta = nodemailer.createTransport({
      host: '127.0.0.1',
      port: listener.port,
      secure: false,
      ignoreTLS: true,
    });
    try {
      // A name whose encoded word hides a line break: folded into a space, not a header.
      const raw = [
        'From: =?UTF-8?Q?Eve=0D=0ABcc=3A_x=40victim.example?= <eve@customer.example>',
        `To: help@${DOMAIN}`,
        'Subject: =?UTF-8?Q?Commande_=C3=A9gar=C3=A9e?=',
        'Message-ID: <smtp-1@customer.example>',
        'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="b1"',
        '',
        '--b1',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'Where is my parcel?',
        '--b1',
        'Content-Type: application/pdf; name="receipt.pdf"',
        'Content-Disposition: attachment; filename="receipt.pdf"',
        'Content-Transfer-Encoding: base64',
        '',
        Buffer.from('%PDF-1.4 receipt').toString('base64'),
        '--b1--',
        '',
      ].join('\r\n');
      await mta.sendMail({
        envelope: { from: 'eve@customer.example', to: [`help@${DOMAIN}`] },
        raw,
      });
      await expect(
        mta.sendMail({
          envelope: { from: 'eve@customer.example', to: ['someone@elsewhere.example'] },
          raw,
        }),
      ).rejects.toMatchObject({ responseCode: 550 });

      const mail = (await h().db.one(sql.unsafe`
        SELECT interaction_id, from_name, subject, attachments FROM email_messages
        WHERE message_id = '<smtp-1@customer.example>'`)) as {
        interaction_id: string;
        from_name: string;
        subject: string;
        attachments: { filename: string; contentType: string }[];
      };
      expect(mail.from_name).toBe('Eve Bcc: x@victim.example');
      expect(mail.subject).toBe('Commande égarée');
      expect(mail.attachments).toMatchObject([
        { filename: 'receipt.pdf', contentType: 'application/pdf' },
      ]);
      await eventually(
        async () => {
          const queue = await h().db.oneFirst(
            sql.unsafe`SELECT queue_name FROM interactions WHERE id = ${mail.interaction_id}`,
          );
          return queue === 'Mail' ? queue : undefined;
        },
        15_000,
        'the conversation queued',
      );

      // A stranger naming Eve's mail does not join her conversation.
      const stranger = [
        'From: mallory@elsewhere.example',
        `To: help@${DOMAIN}`,
        'Subject: Re: Commande',
        'In-Reply-To: <smtp-1@customer.example>',
        '',
        'Send her parcel to me.',
        '',
      ].join('\r\n');
      await mta.sendMail({
        envelope: { from: 'mallory@elsewhere.example', to: [`help@${DOMAIN}`] },
        raw: stranger,
      });
      // Sent twice (an MTA's retry): without a Message-ID it is still stored once.
      await mta.sendMail({
        envelope: { from: 'mallory@elsewhere.example', to: [`help@${DOMAIN}`] },
        raw: stranger,
      });
      const strangers = (await h().db.any(sql.unsafe`
        SELECT interaction_id, message_id FROM email_messages
        WHERE from_address = 'mallory@elsewhere.example'`)) as readonly {
        interaction_id: string;
        message_id: string;
      }[];
      expect(strangers).toHaveLength(1);
      expect(strangers[0]!.interaction_id).not.toBe(mail.interaction_id);
      expect(strangers[0]!.message_id).toMatch(/^<[0-9a-f]{40}@nexus\.invalid>$/);
      // No sender address: refused for good.
      await expect(
        mta.sendMail({
          envelope: { from: 'x@elsewhere.example', to: [`help@${DOMAIN}`] },
          raw: `To: help@${DOMAIN}\r\nSubject: x\r\n\r\nbody\r\n`,
        }),
      ).rejects.toMatchObject({ responseCode: 550 });

      // The agent's answer goes out with the folded name, never as a header.
      await request(app)
        .post(`/nexus/v3/agent/interactions/${mail.interaction_id}/messages`)
        .set('Authorization', `Bearer ${agent.token}`)
        .send({ text: 'It left today.' })
        .expect(201);
      const answer = (await eventually(
        () => Promise.resolve(sink!.mails.find(sent => sent.to.includes('eve@customer.example'))),
        15_000,
        'the answer',
      ))!;
      const text = answer.raw.toString('latin1');
      expect(text).toMatch(/^In-Reply-To: <smtp-1@customer\.example>\r$/m);
      expect(text).not.toMatch(/^Bcc:/im);
      expect(answer.to).toEqual(['eve@customer.example']);
    } finally {
      mta.close();
      await listener.close();
    }
  });
});
