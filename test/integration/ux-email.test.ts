import { simpleParser, type AddressObject } from 'mailparser';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { checkAccessibility, consoleErrors, screenshot, useBrowser } from '../helpers/browser.js';
import { EMAIL_DOMAIN, EMAIL_TENANT, gatewayMail, setupEmailDesk } from '../helpers/email-desk.js';
import { eventually, useHarness } from '../helpers/harness.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';

/**
 * Email in the agent pages, in Chromium: from the communication panel a new email to a suppressed
 * address is refused with the reason, one to a customer is sent and opens its conversation; the
 * customer's reply (with an attachment) shows in the thread with its people and subject, the
 * attachment downloads, and the agent's answer with a Cc goes out threaded.
 */

const addressesOf = (field: AddressObject | AddressObject[] | undefined) =>
  [field ?? []].flat().flatMap(entry => entry.value.map(value => value.address));

describe('email in the agent pages', () => {
  const h = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1' });
  const b = useBrowser();
  let sink: SmtpSink | undefined;
  afterEach(async () => {
    await sink?.close();
    sink = undefined;
  });

  it('starts an email (a suppressed address refused), shows the thread with its attachment, answers with a Cc', async () => {
    sink = await startSmtpSink();
    const { app, admin, agent } = await setupEmailDesk(h(), sink);
    const api = await h().serve();
    await request(app)
      .put(`/nexus/v3/email/suppressions/${EMAIL_TENANT}/blocked@customer.example`)
      .set(admin)
      .send({ reason: 'complaint' })
      .expect(200);

    const page = b().page;
    const errors = consoleErrors(page);
    // The agent's session, as the sign-in page leaves it in the tab.
    const session = JSON.stringify({
      token: agent.token,
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    });
    await page.addInitScript(
      `sessionStorage.setItem('nexus.agent-session', ${JSON.stringify(session)})`,
    );
    await page.goto(`${api.url}/ux/comm?ccid=${EMAIL_TENANT}`);
    const form = page.getByRole('region', { name: 'New email' });
    await form.getByLabel('To (email address)').fill('blocked@customer.example');
    await form.getByLabel('Subject').fill('Hello');
    await form.getByLabel('Message').fill('A word');
    await form.getByRole('button', { name: 'Send' }).click();
    await form
      .getByRole('alert')
      .getByText(/blocked@customer\.example/)
      .waitFor();
    expect(await form.getByRole('alert').innerText()).toMatch(/complaint/);

    await form.getByLabel('To (email address)').fill('carla@customer.example');
    await form.getByLabel('Cc (optional, comma-separated)').fill('dan@customer.example');
    await form.getByLabel('Subject').fill('Your parcel');
    await form.getByLabel('Message').fill('It ships today.');
    await form.getByRole('button', { name: 'Send' }).click();
    await page.waitForURL(/\/ux\/conv\?iid=/);
    const iid = new URL(page.url()).searchParams.get('iid')!;
    const first = (await eventually(
      () => Promise.resolve(sink!.mails.find(mail => mail.to.includes('carla@customer.example'))),
      15_000,
      'the first mail at the sink',
    ))!;
    const firstParsed = await simpleParser(first.raw);
    expect(firstParsed.subject).toBe('Your parcel');
    expect(addressesOf(firstParsed.cc)).toEqual(['dan@customer.example']);

    // The thread shows the mail the agent sent.
    const thread = page.getByRole('region', { name: 'Email thread' });
    await thread.getByRole('article', { name: 'Your parcel' }).waitFor();

    // The customer answers with an attachment: it joins the thread, live.
    const receipt = Buffer.from('%PDF-1.4 the receipt', 'latin1');
    await gatewayMail(api.url, {
      messages: [
        {
          from: { address: 'carla@customer.example', name: 'Carla' },
          to: [{ address: `noreply@${EMAIL_DOMAIN}` }],
          cc: ['dan@customer.example'],
          subject: 'Re: Your parcel',
          text: 'Thanks! Here is my receipt.',
          messageId: '<reply-1@customer.example>',
          inReplyTo: firstParsed.messageId,
          attachments: [
            {
              filename: 'receipt.pdf',
              contentType: 'application/pdf',
              content: receipt.toString('base64'),
            },
          ],
        },
      ],
    }).expect(202);
    const reply = thread.getByRole('article', { name: 'Re: Your parcel' });
    await reply.waitFor({ timeout: 15_000 });
    expect(await reply.innerText()).toMatch(/Carla <carla@customer\.example>/);
    expect(await reply.innerText()).toMatch(/dan@customer\.example/);
    const downloading = page.waitForEvent('download');
    await reply.getByRole('button', { name: 'receipt.pdf' }).click();
    const download = await downloading;
    expect(download.suggestedFilename()).toBe('receipt.pdf');
    const path = await download.path();
    const { readFile } = await import('node:fs/promises');
    expect((await readFile(path)).equals(receipt)).toBe(true);
    expect(await checkAccessibility(page)).toEqual([]);
    await screenshot(page, 'ux-conv-email', { fullPage: true });

    // The agent answers with a Cc: threaded on the customer's mail.
    await page.getByLabel('Cc (comma-separated)', { exact: true }).fill('ed@customer.example');
    const box = page.locator('#reply');
    await box.fill('Got it, thank you.');
    await box.press('Enter');
    const answer = (await eventually(
      () => Promise.resolve(sink!.mails.find(mail => mail.to.includes('ed@customer.example'))),
      15_000,
      'the answer at the sink',
    ))!;
    const answerParsed = await simpleParser(answer.raw);
    expect(answerParsed.subject).toBe('Re: Your parcel');
    expect(answerParsed.inReplyTo).toBe('<reply-1@customer.example>');
    expect(addressesOf(answerParsed.cc)).toEqual(['dan@customer.example', 'ed@customer.example']);
    await thread.getByRole('article').nth(2).waitFor();
    expect(iid).toMatch(/^[0-9a-f-]{36}$/);
    // The refused send is the only failed load the page logged.
    expect(errors.filter(error => !/status of 409 /.test(error))).toEqual([]);
  }, 90_000);
});
