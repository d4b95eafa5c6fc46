import { simpleParser, type AddressObject } from 'mailparser';
import { sql } from 'slonik';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EVENT_DATA } from '../../domain/event-catalogue.js';
import { provisionChatTenant } from '../helpers/chat.js';
import { setupTenant } from '../helpers/tenant-services.js';
import { EMAIL_DOMAIN, EMAIL_TENANT, gatewayMail, setupEmailDesk } from '../helpers/email-desk.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';

/**
 * Email in the agent API: a conversation's mails as a thread (addresses, subject, attachments,
 * the answer's delivery status), an attachment's bytes as a download kept to its conversation
 * and tenant, and an email conversation the agent starts: sent through the tenant's SMTP relay
 * as a new thread, the customer's reply threaded into it, suppressed recipients refused with
 * nothing stored, retries answered with the same ids, bad bodies refused with their field.
 */

const TENANT = EMAIL_TENANT;
const DOMAIN = EMAIL_DOMAIN;

type App = Harness['app'] extends () => infer A ? A : never;

/** Rows a start stores, across the tables it writes. */
const counts = (h: Harness) =>
  h.db.one(sql.type(
    z.object({
      interactions: z.number(),
      contacts: z.number(),
      identifiers: z.number(),
      messages: z.number(),
      events: z.number(),
      work: z.number(),
      mails: z.number(),
    }),
  )`
    SELECT (SELECT count(*) FROM interactions)::int AS interactions,
           (SELECT count(*) FROM contacts)::int AS contacts,
           (SELECT count(*) FROM contact_identifiers)::int AS identifiers,
           (SELECT count(*) FROM messages)::int AS messages,
           (SELECT count(*) FROM events)::int AS events,
           (SELECT count(*) FROM work)::int AS work,
           (SELECT count(*) FROM email_messages)::int AS mails`);

const addressesOf = (field: AddressObject | AddressObject[] | undefined) =>
  [field ?? []].flat().flatMap(entry => entry.value.map(value => value.address));

describe('email in the agent API', () => {
  const h = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1' });
  let sink: SmtpSink | undefined;
  afterEach(async () => {
    await sink?.close();
    sink = undefined;
  });

  /** The email desk (test/helpers/email-desk.ts) and this file's calls of the agent API. */
  async function setup(harness: Harness) {
    sink = await startSmtpSink();
    const { app, admin, agent, asAgent } = await setupEmailDesk(harness, sink);
    const start = (body: Record<string, unknown>, auth: Record<string, string> = asAgent) =>
      request(app).post('/nexus/v3/agent/outbound/email').set(auth).send(body);
    const thread = (interactionId: string, auth: Record<string, string> = asAgent) =>
      request(app).get(`/nexus/v3/agent/interactions/${interactionId}/emails`).set(auth);
    const media = (
      interactionId: string,
      mediaId: string,
      auth: Record<string, string> = asAgent,
    ) =>
      request(app)
        .get(`/nexus/v3/agent/interactions/${interactionId}/media/${mediaId}`)
        .set(auth)
        .buffer(true)
        .parse((res, done) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => done(null, Buffer.concat(chunks)));
        });
    const consent = (address: string) =>
      request(app).get('/nexus/v3/agent/consent/email').set(asAgent).query({ address });
    return { app, admin, agent, asAgent, start, thread, media, consent };
  }

  const gateway = gatewayMail;

  /** An agent of another tenant, with a chat conversation of its own. */
  async function otherTenant(harness: Harness, app: App) {
    const chat = await provisionChatTenant(harness, app, 'other-tenant');
    const session = await request(app)
      .post('/nexus/v3/chat/sessions')
      .set('x-api-key', chat.chatKey)
      .send({ data: { nickname: 'Ola', endpoint: 'GlobalChatSwitchboard' } })
      .expect(201);
    return {
      asAgent: { Authorization: `Bearer ${chat.agent.token}` },
      chatInteractionId: session.body.data.interactionId as string,
    };
  }

  it("shows a conversation's mails as a thread and serves its attachments to its tenant only", async () => {
    const s = await setup(h());
    const receipt = Buffer.from('%PDF-1.4 receipt \u0000\u00ff bytes', 'latin1');
    const accepted = await gateway(s.app, {
      messages: [
        {
          from: { address: 'carla@customer.example', name: 'Carla' },
          to: [{ address: `help@${DOMAIN}`, name: 'Help' }],
          cc: ['dan@customer.example'],
          replyTo: 'carla.home@customer.example',
          subject: 'My parcel',
          text: 'Where is my parcel?',
          html: '<p>Where is my <b>parcel</b>?<script>x()</script></p>',
          messageId: '<in-1@customer.example>',
          attachments: [
            {
              filename: 'reçu été.pdf',
              contentType: 'application/pdf',
              content: receipt.toString('base64'),
            },
          ],
        },
      ],
    }).expect(202);
    const interactionId = accepted.body.data.results[0].interactionId as string;
    await eventually(
      async () =>
        (await h().db.oneFirst(sql.unsafe`
          SELECT queue_name FROM interactions WHERE id = ${interactionId}`)) === 'Mail',
      15_000,
      'the conversation queued',
    );

    // The agent answers with a Cc and a Bcc; the answer is sent.
    const answered = await request(s.app)
      .post(`/nexus/v3/agent/interactions/${interactionId}/messages`)
      .set(s.asAgent)
      .send({ text: 'It left today.', cc: ['eve@customer.example'], bcc: ['audit@help.example'] })
      .expect(201);
    const answerId = answered.body.data.id as string;
    await eventually(
      async () =>
        (await h().db.oneFirst(sql.unsafe`
          SELECT delivery_status FROM email_messages WHERE chat_message_id = ${answerId}`)) ===
        'sent',
      15_000,
      'the answer sent',
    );

    const res = await s.thread(interactionId).expect(200);
    const items = res.body.data.items as Record<string, unknown>[];
    expect(items).toHaveLength(2);
    const [inbound, outbound] = items as [Record<string, unknown>, Record<string, unknown>];
    const attachments = inbound.attachments as { mediaId: string }[];
    expect(inbound).toEqual({
      id: expect.any(String),
      messageId: '<in-1@customer.example>',
      direction: 'inbound',
      from: { address: 'carla@customer.example', name: 'Carla' },
      to: [{ address: `help@${DOMAIN}`, name: 'Help' }],
      cc: [{ address: 'dan@customer.example' }],
      replyTo: 'carla.home@customer.example',
      subject: 'My parcel',
      date: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      text: 'Where is my parcel?',
      html: '<p>Where is my <b>parcel</b>?</p>',
      attachments: [
        {
          mediaId: expect.any(String),
          filename: 'reçu été.pdf',
          contentType: 'application/pdf',
          size: receipt.length,
        },
      ],
      deliveryStatus: null,
      chatMessageId: expect.any(String),
    });
    // No Bcc on the customer's mail; the agent's side sees its own.
    expect(inbound).not.toHaveProperty('bcc');
    expect(outbound).toMatchObject({
      direction: 'outbound',
      from: { address: `help@${DOMAIN}`, name: null },
      to: [{ address: 'carla.home@customer.example' }],
      cc: [{ address: 'dan@customer.example' }, { address: 'eve@customer.example' }],
      bcc: [{ address: 'audit@help.example' }],
      replyTo: null,
      subject: 'Re: My parcel',
      html: null,
      attachments: [],
      deliveryStatus: 'sent',
      chatMessageId: answerId,
    });
    expect(outbound.messageId).toMatch(new RegExp(`^<[0-9a-f-]{36}@${DOMAIN}>$`));
    expect(outbound.text).toMatch(
      /^It left today\.\n\nOn .*, Carla wrote:\n> Where is my parcel\?/,
    );

    // The attachment's bytes, as a download that never renders in the desk's origin.
    const [attachment] = attachments;
    const file = await s.media(interactionId, attachment!.mediaId).expect(200);
    expect(Buffer.compare(file.body as Buffer, receipt)).toBe(0);
    expect(file.headers).toMatchObject({
      'content-type': 'application/pdf',
      'content-disposition': `attachment; filename="re_u _t_.pdf"; filename*=UTF-8''re%C3%A7u%20%C3%A9t%C3%A9.pdf`,
      'x-content-type-options': 'nosniff',
      'content-security-policy': 'sandbox',
      'cache-control': 'private, no-store',
    });

    // Another conversation's attachment is not this one's.
    const other = await gateway(s.app, {
      messages: [
        {
          from: 'finn@customer.example',
          to: [`help@${DOMAIN}`],
          subject: 'Invoice',
          text: 'Attached.',
          attachments: [
            {
              filename: 'invoice.txt',
              contentType: 'text/plain',
              content: Buffer.from('invoice').toString('base64'),
            },
          ],
        },
      ],
    }).expect(202);
    const otherId = other.body.data.results[0].interactionId as string;
    expect(otherId).not.toBe(interactionId);
    const otherMedia = (
      (await s.thread(otherId).expect(200)).body.data.items[0].attachments as {
        mediaId: string;
      }[]
    )[0]!.mediaId;
    await s.media(otherId, otherMedia).expect(200);
    const crossed = await s.media(interactionId, otherMedia).expect(404);
    expect(JSON.parse((crossed.body as Buffer).toString()).status.code).toBe('NEXUS_ERR_NOT_FOUND');
    await s.media(interactionId, '00000000-0000-4000-8000-000000000000').expect(404);
    const badId = await s.media(interactionId, 'x').expect(400);
    expect(JSON.parse((badId.body as Buffer).toString()).status.field).toBe('params.mediaId');

    // Another tenant's agent: neither the thread nor the bytes; its chat has no mails.
    const stranger = await otherTenant(h(), s.app);
    const hidden = await s.thread(interactionId, stranger.asAgent).expect(404);
    expect(hidden.body.status.code).toBe('NEXUS_ERR_NOT_FOUND');
    await s.media(interactionId, attachment!.mediaId, stranger.asAgent).expect(404);
    await s.media(stranger.chatInteractionId, attachment!.mediaId, stranger.asAgent).expect(404);
    const chatThread = await s.thread(stranger.chatInteractionId, stranger.asAgent).expect(200);
    expect(chatThread.body.data).toEqual({ items: [] });
    // An unknown interaction reads as the agent API's other routes read it.
    await s.thread('00000000-0000-4000-8000-000000000000').expect(404);
  });

  it('starts an email conversation: sent as a new thread, the reply threads into it, a retry stores nothing', async () => {
    const s = await setup(h());
    const started = await s
      .start({
        to: { address: 'Nora@Customer.example', name: 'Nora Lind' },
        subject: 'Votre commande été',
        text: 'Your order is ready.',
        cc: ['ops@customer.example'],
        clientMessageId: 'e-1',
      })
      .expect(201);
    const { interactionId, messageId } = started.body.data as {
      interactionId: string;
      messageId: string;
    };
    expect(started.body.data.duplicate).toBe(false);

    const sent = (await eventually(
      () => Promise.resolve(sink!.mails.find(mail => mail.to.includes('Nora@customer.example'))),
      15_000,
      'the mail at the sink',
    ))!;
    const parsed = await simpleParser(sent.raw);
    expect(parsed.subject).toBe('Votre commande été');
    expect(parsed.text?.trim()).toBe('Your order is ready.');
    expect(parsed.from?.value).toEqual([{ address: `noreply@${DOMAIN}`, name: '' }]);
    // The domain lowercased on the way (as for answers), the local part as given.
    expect(addressesOf(parsed.to)).toEqual(['Nora@customer.example']);
    expect((parsed.to as AddressObject).value[0]?.name).toBe('Nora Lind');
    expect(addressesOf(parsed.cc)).toEqual(['ops@customer.example']);
    expect([...sent.to].sort()).toEqual(['Nora@customer.example', 'ops@customer.example']);
    expect(parsed.inReplyTo).toBeUndefined();
    expect(parsed.references).toBeUndefined();
    expect(sent.raw.toString('latin1')).not.toMatch(/^List-Unsubscribe/im);
    const mail = (await h().db.one(sql.unsafe`
      SELECT message_id, chat_message_id, interaction_id FROM email_messages`)) as {
      message_id: string;
      chat_message_id: string;
      interaction_id: string;
    };
    expect(mail).toEqual({
      message_id: parsed.messageId,
      chat_message_id: messageId,
      interaction_id: interactionId,
    });
    expect(mail.message_id).toMatch(new RegExp(`^<[0-9a-f-]{36}@${DOMAIN}>$`));

    // An email interaction, started and the agent's, its contact found by the address.
    const row = (await h().db.one(sql.unsafe`
      SELECT media, subtype, endpoint, channel, customer_address, routing_state,
             assigned_agent_id, queue_name, contact_id
      FROM interactions WHERE id = ${interactionId}`)) as Record<string, unknown>;
    expect(row).toMatchObject({
      media: 'email',
      subtype: 'OutboundNew',
      endpoint: 'EmailDesk',
      channel: 'cxc.Support',
      customer_address: 'nora@customer.example',
      routing_state: 'assigned',
      assigned_agent_id: s.agent.id,
      queue_name: 'Mail',
    });
    expect(
      await h().db.any(sql.unsafe`
        SELECT kind, value, contact_id FROM contact_identifiers`),
    ).toEqual([{ kind: 'email', value: 'nora@customer.example', contact_id: row.contact_id }]);
    const events = (await h().db.any(sql.unsafe`
      SELECT type, payload FROM events WHERE interaction_id = ${interactionId} ORDER BY seq`)) as {
      type: keyof typeof EVENT_DATA;
      payload: unknown;
    }[];
    for (const event of events) {
      expect(EVENT_DATA[event.type].safeParse(event.payload).success, event.type).toBe(true);
    }
    expect(events.map(event => event.type)).toEqual([
      'interaction.started',
      'participant.joined',
      'participant.joined',
      'interaction.assigned',
      'message.created',
    ]);
    expect(events[0]?.payload).toEqual({
      interaction: {
        id: interactionId,
        mediaType: 'email',
        interactionSubtype: 'OutboundNew',
        endpoint: 'EmailDesk',
        contactId: row.contact_id,
        returningContact: false,
      },
    });

    // The thread shows the mail, sent, with the agent's side's (empty) Bcc.
    await eventually(
      async () =>
        (await s.thread(interactionId).expect(200)).body.data.items[0]?.deliveryStatus === 'sent',
      15_000,
      'sent',
    );
    expect((await s.thread(interactionId).expect(200)).body.data.items).toEqual([
      expect.objectContaining({
        messageId: mail.message_id,
        direction: 'outbound',
        from: { address: `noreply@${DOMAIN}`, name: null },
        to: [{ address: 'Nora@Customer.example', name: 'Nora Lind' }],
        cc: [{ address: 'ops@customer.example' }],
        bcc: [],
        subject: 'Votre commande été',
        text: 'Your order is ready.',
        chatMessageId: messageId,
      }),
    ]);

    // A retry with the same client message id: the same ids, nothing stored, nothing sent.
    const before = await counts(h());
    const retry = await s
      .start({
        to: 'nora@customer.example',
        subject: 'Votre commande été',
        text: 'Your order is ready.',
        clientMessageId: 'e-1',
      })
      .expect(201);
    expect(retry.body.data).toEqual({ interactionId, messageId, duplicate: true });
    expect(await counts(h())).toEqual(before);

    // The customer answers the mail (to the address it came from): into the same conversation.
    const replied = await gateway(s.app, {
      messages: [
        {
          from: 'nora@customer.example',
          to: [`noreply@${DOMAIN}`],
          subject: 'Re: Votre commande été',
          text: 'Thanks, I will come at 5.',
          messageId: '<nora-1@customer.example>',
          inReplyTo: mail.message_id,
          references: [mail.message_id],
        },
      ],
    }).expect(202);
    expect(replied.body.data.results[0]).toMatchObject({ interactionId, duplicate: false });
    await eventually(
      async () =>
        (await h().db.oneFirst(sql.unsafe`
          SELECT count(*)::int FROM events
          WHERE interaction_id = ${interactionId} AND type = 'message.created'`)) === 2,
      15_000,
      'the reply numbered',
    );
    const routing = await h().db.one(sql.unsafe`
      SELECT routing_state, assigned_agent_id FROM interactions WHERE id = ${interactionId}`);
    expect(routing).toEqual({ routing_state: 'assigned', assigned_agent_id: s.agent.id });
    const items = (await s.thread(interactionId).expect(200)).body.data.items as {
      direction: string;
      subject: string;
    }[];
    expect(items.map(item => [item.direction, item.subject])).toEqual([
      ['outbound', 'Votre commande été'],
      ['inbound', 'Re: Votre commande été'],
    ]);
    // Only the one mail was sent.
    expect(sink!.mails).toHaveLength(1);

    // A new mail to her while the conversation is open: the conversation takes it, a new thread.
    const more = await s
      .start({ to: 'nora@customer.example', subject: 'Another matter', text: 'One more thing.' })
      .expect(201);
    expect(more.body.data).toMatchObject({ interactionId, duplicate: false });
    const second = (await eventually(
      () => Promise.resolve(sink!.mails[1]),
      15_000,
      'the second mail',
    ))!;
    const secondParsed = await simpleParser(second.raw);
    expect(secondParsed.subject).toBe('Another matter');
    expect(secondParsed.inReplyTo).toBeUndefined();
    expect(second.to).toEqual(['nora@customer.example']);
    expect(
      ((await s.thread(interactionId).expect(200)).body.data.items as { subject: string }[]).map(
        item => item.subject,
      ),
    ).toEqual(['Votre commande été', 'Re: Votre commande été', 'Another matter']);
    await new Promise(resolve => setTimeout(resolve, 300));
    expect(sink!.mails).toHaveLength(2);
  });

  it('refuses a suppressed recipient with the reason and stores nothing', async () => {
    const s = await setup(h());
    expect((await s.consent('Ann@Customer.example').expect(200)).body.data).toEqual({
      address: 'ann@customer.example',
      suppressed: false,
      reason: null,
      since: null,
    });
    await request(s.app)
      .put(`/nexus/v3/email/suppressions/${TENANT}/ann@customer.example`)
      .set(s.admin)
      .send({ reason: 'complaint' })
      .expect(200);
    const state = (await s.consent('Ann@Customer.example').expect(200)).body.data as {
      since: string;
    };
    expect(state).toEqual({
      address: 'ann@customer.example',
      suppressed: true,
      reason: 'complaint',
      since: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });

    const before = await counts(h());
    const refused = await s
      .start({ to: 'ANN@customer.example', subject: 'Offer', text: 'A special offer' })
      .expect(409);
    expect(refused.body.status).toEqual({
      code: 'NEXUS_ERR_EMAIL_SUPPRESSED',
      message: `ANN@customer.example is on the tenant's suppression list (complaint since ${state.since})`,
      field: 'body.to',
    });
    // A suppressed Cc or Bcc too, named by its place.
    const cc = await s
      .start({
        to: 'bob@customer.example',
        subject: 'Offer',
        text: 'A special offer',
        cc: ['carl@customer.example', 'ann@customer.example'],
      })
      .expect(409);
    expect(cc.body.status).toMatchObject({
      code: 'NEXUS_ERR_EMAIL_SUPPRESSED',
      field: 'body.cc.1',
    });
    const bcc = await s
      .start({
        to: 'bob@customer.example',
        subject: 'Offer',
        text: 'A special offer',
        bcc: [{ address: 'ann@customer.example', name: 'Ann' }],
      })
      .expect(409);
    expect(bcc.body.status).toMatchObject({ field: 'body.bcc.0' });
    expect(await counts(h())).toEqual(before);
    await new Promise(resolve => setTimeout(resolve, 300));
    expect(sink!.mails).toEqual([]);

    // Lifted: the agent may mail the address again.
    await request(s.app)
      .delete(`/nexus/v3/email/suppressions/${TENANT}/ann@customer.example`)
      .set(s.admin)
      .expect(200);
    expect((await s.consent('ann@customer.example').expect(200)).body.data).toMatchObject({
      suppressed: false,
      reason: null,
      since: null,
    });
    await s.start({ to: 'ann@customer.example', subject: 'Offer', text: 'Hello' }).expect(201);
    await eventually(() => sink!.mails.length === 1, 15_000, 'the mail after the lift');
  });

  it('names the field of a bad body and keeps to the tenant’s own email domains', async () => {
    const s = await setup(h());
    // Another tenant with an email domain of its own, and an SMS number of this tenant.
    await setupTenant(h(), 'other-mail');
    await request(s.app)
      .put('/nexus/v3/provisioning/channels/other-mail/cxc.Mail')
      .set(s.admin)
      .send({ channelId: 'other.example', channelType: 'email' })
      .expect(201);
    await request(s.app)
      .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS`)
      .set(s.admin)
      .send({ channelId: '+18005550100', endpoint: 'EmailDesk', provider: 'Async' })
      .expect(201);
    const before = await counts(h());
    const base = { to: 'ann@customer.example', subject: 'Hello', text: 'Hi' };
    const refusals: [Record<string, unknown>, string, RegExp][] = [
      [{ ...base, subject: 'Hi\r\nBcc: victim@x.example' }, 'body.subject', /line break/],
      [{ ...base, subject: 'Hi\nthere' }, 'body.subject', /line break/],
      [{ ...base, subject: '' }, 'body.subject', /empty/],
      [{ ...base, subject: '   ' }, 'body.subject', /empty/],
      [{ ...base, subject: 'x'.repeat(999) }, 'body.subject', /998/],
      [{ ...base, to: 'nobody' }, 'body.to', /email address/],
      [{ ...base, to: 'ann@customer.example\r\nBcc: x@y.example' }, 'body.to', /./],
      [{ ...base, to: { address: 'ann@customer.example', name: 'A\nB' } }, 'body.to.name', /./],
      [{ subject: 'Hello', text: 'Hi' }, 'body.to', /./],
      [{ ...base, cc: ['ok@customer.example', 'bad'] }, 'body.cc.1', /email address/],
      [{ ...base, text: '' }, 'body.text', /empty/],
      [{ ...base, text: ' \n ' }, 'body.text', /empty/],
      [{ ...base, html: '<p>Hi</p>' }, 'body.html', /./],
      [{ ...base, from: 'elsewhere.example' }, 'body.from', /no email channel .*elsewhere/],
      // Another tenant's domain reads like any unknown one; so does an SMS number, or an address.
      [{ ...base, from: 'other.example' }, 'body.from', /no email channel .*other\.example/],
      [{ ...base, from: '+18005550100' }, 'body.from', /no email channel/],
      [{ ...base, from: `help@${DOMAIN}` }, 'body.from', /no email channel/],
    ];
    for (const [body, field, message] of refusals) {
      const res = await s.start(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.status, JSON.stringify(body)).toMatchObject({
        code: 'NEXUS_ERR_VALIDATION',
        field,
      });
      expect(res.body.status.message).toMatch(message);
      expect(JSON.stringify(res.body)).not.toMatch(/other-mail|cxc\.Mail/);
    }
    const bad = await s.consent('nobody').expect(400);
    expect(bad.body.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field: 'query.address' });
    // Only an agent starts a conversation.
    const operator = await s
      .start(base, { Authorization: `Bearer ${h().config.adminToken}` })
      .expect(403);
    expect(operator.body.status.code).toBe('NEXUS_ERR_AGENT_REQUIRED');
    expect(await counts(h())).toEqual(before);

    // A second email domain: the agent must say which one sends (in any case).
    await request(s.app)
      .put(`/nexus/v3/provisioning/channels/${TENANT}/cxc.Sales`)
      .set(s.admin)
      .send({ channelId: 'sales.example.com', channelType: 'email', endpoint: 'EmailDesk' })
      .expect(201);
    const ambiguous = await s.start(base).expect(400);
    expect(ambiguous.body.status).toMatchObject({
      code: 'NEXUS_ERR_VALIDATION',
      field: 'body.from',
    });
    expect(ambiguous.body.status.message).toBe(
      'body.from: the tenant has 2 email domains (sales.example.com, help.example.com): name the one to send from',
    );
    expect(await counts(h())).toEqual(before);
    const chosen = await s.start({ ...base, from: 'Sales.Example.com' }).expect(201);
    const channel = await h().db.oneFirst(sql.unsafe`
      SELECT channel FROM interactions WHERE id = ${chosen.body.data.interactionId as string}`);
    expect(channel).toBe('cxc.Sales');
    const sent = (await eventually(
      () => Promise.resolve(sink!.mails[0]),
      15_000,
      'the mail from sales',
    ))!;
    expect(sent.raw.toString('latin1')).toMatch(/^From: noreply@sales\.example\.com\r$/m);
  });
});
