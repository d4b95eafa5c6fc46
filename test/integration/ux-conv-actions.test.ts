import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { flagUndelivered } from '../../db/conversation.js';
import {
  GUIDE_SANDBOX,
  checkAccessibility,
  consoleErrors,
  framed,
  screenshot,
  useBrowser,
} from '../helpers/browser.js';
import { eventually, useHarness } from '../helpers/harness.js';
import { freePort } from '../helpers/redis-server.js';
import { handsToken, setupDesk } from '../helpers/ux.js';

/**
 * The conversation page's follow-ups, in Chromium: a message that finally failed shows with its
 * reason and is sent again with one click (once; the conversation then leaves the undelivered
 * view), and a transfer picks its queue from the tenant's queues.
 */

const desktopPort = await freePort();

describe('the conversation page: undelivered and transfer', () => {
  const h = useHarness({ NEXUS_UX_ALLOWED_ORIGINS: `http://localhost:${desktopPort}` });
  const b = useBrowser();

  it('sends a failed message again once, and transfers to a queue picked from the list', async () => {
    const { api, t, admin } = await setupDesk(h());
    await request(api.url)
      .put(`/nexus/v3/provisioning/queues/${t.tenant}/Billing`)
      .set(admin)
      .send({ endpoints: [], agents: [] })
      .expect(201);
    const iid = (
      await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname: 'Uma', endpoint: 'GlobalChatSwitchboard' } })
        .expect(201)
    ).body.data.interactionId as string;
    const agentAuth = `Bearer ${t.agent.token}`;

    const desk = b().page;
    const errors = consoleErrors(desk);
    const frame = await framed(
      desk,
      `${api.url}/ux/conv?iid=${iid}&ccid=${t.tenant}`,
      GUIDE_SANDBOX,
      { port: desktopPort, hostScript: handsToken(t.agent.token, api.url) },
    );
    await frame.getByRole('button', { name: 'Accept' }).click();
    await frame.getByText('Assigned to you', { exact: true }).waitFor();
    const box = frame.locator('#reply');
    await box.fill('Your order shipped');
    await box.press('Enter');
    await expect.poll(() => box.inputValue(), { timeout: 10_000 }).toBe('');

    // The provider finally refuses it (as the outbound worker records a final failure).
    const found = await eventually(async () => {
      const res = await request(api.url)
        .get(`/nexus/v3/agent/interactions/${iid}`)
        .set('Authorization', agentAuth)
        .expect(200);
      return (
        res.body.data.events as { type: string; data: { message?: { id: string; text: string } } }[]
      ).find(e => e.type === 'message.created' && e.data.message?.text === 'Your order shipped');
    });
    const sent = found!;
    const events = await h().db.transaction(tx =>
      flagUndelivered(tx, {
        messageId: sent.data.message!.id,
        queue: 'outbound-sms',
        code: 'NEXUS_ERR_WORK_FAILED',
        reason: 'provider refused: 21610 unsubscribed recipient',
      }),
    );
    h().publisher.events(events);
    const alert = frame.getByRole('alert', { name: 'A message was not delivered' });
    await alert.getByText('provider refused: 21610 unsubscribed recipient').waitFor();
    const undeliveredView = async () =>
      (
        await request(api.url)
          .get('/nexus/v3/agent/undelivered')
          .set('Authorization', agentAuth)
          .expect(200)
      ).body.data.items as { id: string }[];
    expect((await undeliveredView()).map(item => item.id)).toEqual([iid]);
    expect(await checkAccessibility(frame)).toEqual([]);
    await screenshot(desk, 'ux-conv-undelivered');

    // Sent again with one click: the same text as a new message, once; the alert goes.
    await alert.getByRole('button', { name: 'Send again' }).click();
    await alert.waitFor({ state: 'detached' });
    const texts = async () =>
      (
        await request(api.url)
          .get(`/nexus/v3/agent/interactions/${iid}`)
          .set('Authorization', agentAuth)
          .expect(200)
      ).body.data.events
        .filter((e: { type: string }) => e.type === 'message.created')
        .map((e: { data: { message: { text: string } } }) => e.data.message.text);
    expect(await texts()).toEqual(['Your order shipped', 'Your order shipped']);
    expect(await undeliveredView()).toEqual([]);
    // A second click could not send it twice: the resend's client id names the failed message.
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${iid}/messages`)
      .set('Authorization', agentAuth)
      .send({ text: 'Your order shipped', clientMessageId: `resend-${sent.data.message!.id}` })
      .expect(201);
    expect(await texts()).toHaveLength(2);

    // Transfer: the queue is picked from the tenant's queues.
    const picker = frame.getByLabel('Queue to transfer to');
    await expect
      .poll(() => picker.locator('option').allInnerTexts())
      .toEqual([
        'Queue to transfer to',
        'Billing (0 waiting, 0 ready)',
        'Sales (0 waiting, 1 ready)',
      ]);
    await picker.selectOption('Billing');
    await frame.getByRole('button', { name: 'Transfer' }).click();
    await frame.getByText('Waiting in queue', { exact: true }).waitFor();
    await frame.getByText('Queued in Billing').waitFor();
    expect(errors).toEqual([]);
  }, 90_000);
});
