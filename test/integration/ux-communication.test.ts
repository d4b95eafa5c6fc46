import { sql } from 'slonik';
import request from 'supertest';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
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
 * The agent's communication panel (/ux/comm) in Chromium, framed by the desktop with the guide's
 * sandbox: presence, an offer (waiting before the panel loads, and one arriving live), accepted,
 * opening its conversation.
 */

const desktopPort = await freePort();

describe('the communication panel', () => {
  const h = useHarness({ NEXUS_UX_ALLOWED_ORIGINS: `http://localhost:${desktopPort}` });
  const b = useBrowser();

  it('shows presence and the offers, waiting and live; an accepted offer opens its conversation', async () => {
    const { api, t } = await setupDesk(h());
    const startChat = async (nickname: string) =>
      (
        await request(api.url)
          .post('/nexus/v3/chat/sessions')
          .set('x-api-key', t.chatKey)
          .send({ data: { nickname, endpoint: 'GlobalChatSwitchboard' } })
          .expect(201)
      ).body.data.interactionId as string;
    const offered = (iid: string) =>
      eventually(
        async () =>
          (
            await request(api.url)
              .get('/nexus/v3/agent/offers')
              .set('Authorization', `Bearer ${t.agent.token}`)
              .expect(200)
          ).body.data.items.some((e: { interactionId: string }) => e.interactionId === iid),
        15_000,
        'the offer',
      );
    // Offered before the panel opens: the panel reads it (GET /nexus/v3/agent/offers).
    const first = await startChat('Ivy');
    await offered(first);

    const desk = b().page;
    const errors = consoleErrors(desk);
    const frame = await framed(desk, `${api.url}/ux/comm?ccid=${t.tenant}`, GUIDE_SANDBOX, {
      port: desktopPort,
      hostScript: handsToken(t.agent.token, api.url),
    });
    await frame.getByText('Signed in as Alice').waitFor();
    await frame.getByText('Ready', { exact: true }).first().waitFor();
    await frame.getByText('A conversation from queue Sales').waitFor();
    expect(await frame.locator('li.offer').count()).toBe(1);
    expect(await frame.locator('li.offer').innerText()).toMatch(/\d+ s left/);

    // One more, arriving while the panel is open (the socket's `offer`).
    const second = await startChat('Max');
    await offered(second);
    await expect.poll(() => frame.locator('li.offer').count(), { timeout: 10_000 }).toBe(2);
    expect(await checkAccessibility(frame)).toEqual([]);
    await screenshot(desk, 'ux-comm');

    // Not ready, then ready again, with a capacity.
    await frame.getByRole('button', { name: 'Not ready' }).click();
    await frame.locator('.badge[data-state="not-ready"]').waitFor();
    await frame.getByLabel('Capacity').fill('4');
    await frame.getByRole('button', { name: 'Ready', exact: true }).click();
    await frame.locator('.badge[data-state="ready"]').waitFor();
    const presence = await request(api.url)
      .get('/nexus/v3/agent/presence')
      .set('Authorization', `Bearer ${t.agent.token}`)
      .expect(200);
    expect(presence.body.data).toMatchObject({ ready: true, capacity: 4 });

    // Accepting the first offer opens its conversation, assigned to Alice.
    await frame.locator('li.offer').first().getByRole('button', { name: 'Accept' }).click();
    await frame.waitForURL(`${api.url}/ux/conv?iid=${first}&ccid=${t.tenant}`);
    await frame.getByRole('heading', { name: 'Ivy' }).waitFor();
    await frame.getByText('Assigned to you', { exact: true }).waitFor();
    // Back on the panel: the conversation is among Alice's, one offer is left.
    await frame.getByRole('link', { name: 'Communication panel' }).click();
    await frame.getByText('Signed in as Alice').waitFor();
    await expect.poll(() => frame.locator('li.offer').count(), { timeout: 10_000 }).toBe(1);
    await expect
      .poll(() => frame.locator(`a[href*="${first}"]`).count(), { timeout: 10_000 })
      .toBeGreaterThan(0);
    expect(errors).toEqual([]);
  }, 90_000);

  it('refuses a new SMS to a number that opted out, showing why, and stores nothing', async () => {
    const { api, t, admin } = await setupDesk(h());
    const NUMBER = '+18005550100';
    const CUSTOMER = '+15551234567';
    // The aggregator is never called: nothing is sent.
    await request(api.url)
      .put(`/nexus/v3/provisioning/services/${t.tenant}/Async`)
      .set(admin)
      .send({
        url: 'N/A',
        data: {
          channels: [{ channelId: NUMBER, webhook: { url: 'https://sms.example.com/outbound' } }],
        },
        secret: {
          channels: [
            { channelId: NUMBER, webhook: { secret: 'webhook-secret' }, api: { secret: 'api' } },
          ],
        },
      })
      .expect(201);
    await request(api.url)
      .put(`/nexus/v3/provisioning/channels/${t.tenant}/chat.SMS_Main`)
      .set(admin)
      .send({ channelId: NUMBER, endpoint: 'GlobalChatSwitchboard', provider: 'Async' })
      .expect(201);
    const key = (
      await request(api.url)
        .post('/nexus/v3/apikeys')
        .set(admin)
        .send({ tenant: t.tenant, name: 'aggregator', permissions: ['nexus:sms:webhook'] })
        .expect(201)
    ).body.key as string;
    // The customer texts STOP.
    await request(api.url)
      .post('/nexus/v3/sms/message')
      .auth(t.tenant, key)
      .type('form')
      .send({
        device_address: CUSTOMER,
        inbound_address: NUMBER,
        message: 'Stop',
        message_id: 'mo-1',
      })
      .expect(202);
    await eventually(
      async () =>
        (
          await request(api.url)
            .get('/nexus/v3/agent/consent/sms')
            .set('Authorization', `Bearer ${t.agent.token}`)
            .query({ address: CUSTOMER })
            .expect(200)
        ).body.data.optedOut === true,
      15_000,
      'the opt-out recorded',
    );
    const interactions = () =>
      h().db.oneFirst(
        sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM interactions`,
      );
    const before = await interactions();

    const desk = b().page;
    const frame = await framed(desk, `${api.url}/ux/comm?ccid=${t.tenant}`, GUIDE_SANDBOX, {
      port: desktopPort,
      hostScript: handsToken(t.agent.token, api.url),
    });
    await frame.getByText('Signed in as Alice').waitFor();
    const sms = frame.getByRole('region', { name: 'New SMS' });
    await sms.getByLabel('To (phone number)').fill('+1 555 123 4567');
    await sms.getByLabel('Message').fill('Your order is ready.');
    await sms.getByRole('button', { name: 'Send', exact: true }).click();
    const refusal = sms.getByRole('alert');
    await refusal.waitFor();
    expect(await refusal.innerText()).toMatch(
      /^Not sent: .*opted out of texts from \+18005550100: replied Stop/,
    );
    expect(frame.url()).toContain('/ux/comm');
    await screenshot(desk, 'ux-comm-sms-refused');
    expect(await interactions()).toBe(before);
  }, 90_000);
});
