import type { Frame, Page } from 'playwright-core';
import request from 'supertest';
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
import { PASSWORD, handsToken, setupDesk } from '../helpers/ux.js';

/**
 * The agent's conversation page (/ux/conv) and the customer's widget, in Chromium: the agent's
 * page inside the guide's sandboxed iframe on the desktop's origin (NEXUS_UX_ALLOWED_ORIGINS), the
 * customer on the widget's demo page. The hub, its routing worker and the browser are real.
 */

const desktopPort = await freePort();
const DESKTOP_ORIGIN = `http://localhost:${desktopPort}`;

/** The widget's messages as the customer sees them: `<who>|<text>`, in page order. */
const widgetMessages = (page: Page) =>
  page.locator('li.message').evaluateAll(items =>
    items.map(item => {
      const who = item.querySelector('.who')?.textContent ?? '';
      return `${who}|${(item.textContent ?? '').slice(who.length)}`;
    }),
  );

/** The conversation page's messages: `<who>|<text>`, in page order. */
const agentMessages = (frame: Frame) =>
  frame
    .locator('li.message')
    .evaluateAll(items =>
      items.map(
        item =>
          `${item.querySelector('.who')?.textContent ?? ''}|${item.querySelector('.text')?.textContent ?? ''}`,
      ),
    );

async function customerSends(page: Page, text: string) {
  const box = page.locator('textarea');
  await box.fill(text);
  await box.press('Enter');
  await expect.poll(() => box.inputValue(), { timeout: 10_000 }).toBe('');
}

async function agentSends(frame: Frame, text: string) {
  const box = frame.locator('#reply');
  await box.fill(text);
  await box.press('Enter');
  await expect.poll(() => box.inputValue(), { timeout: 10_000 }).toBe('');
}

describe('the agent conversation page and the customer widget', () => {
  const h = useHarness({ NEXUS_UX_ALLOWED_ORIGINS: DESKTOP_ORIGIN });
  const b = useBrowser();

  it('exchange 20 messages in order, once each, across a reload of the agent page, with typing and a suggestion inserted', async () => {
    const { api, t } = await setupDesk(h());

    // The customer opens the widget and starts a chat.
    const customer = await b().newPage();
    const customerErrors = consoleErrors(customer);
    await customer.goto(
      `${api.url}/ux/widget-demo?apikey=${encodeURIComponent(t.chatKey)}&endpoint=GlobalChatSwitchboard`,
    );
    await customer.getByRole('button', { name: 'Chat with us' }).click();
    await customer.getByLabel('Your name').fill('Gus');
    await screenshot(customer, 'widget-start');
    await customer.getByRole('button', { name: 'Start the chat' }).click();
    await customer.locator('textarea').waitFor();
    expect(await checkAccessibility(customer)).toEqual([]);
    const expected: string[] = [];
    await customerSends(customer, 'message 1 from the customer');
    expected.push('Gus|message 1 from the customer');
    // The session the widget keeps in the site's localStorage (a string: the tests have no DOM types).
    const iid = await customer.evaluate<string | undefined>(`(() => {
      const key = Object.keys(localStorage).find(k => k.startsWith('nexus.chat.') && !k.endsWith('.open'));
      return JSON.parse(localStorage.getItem(key) ?? '{}').interactionId;
    })()`);
    expect(iid).toMatch(/^[0-9a-f-]{36}$/);

    // The agent's desktop (another site) embeds /ux/conv and hands it the agent's token.
    const desk = b().page;
    const deskErrors = consoleErrors(desk);
    const conv = `${api.url}/ux/conv?iid=${iid}&customername=${t.tenant}&ccid=${t.tenant}`;
    const frame = await framed(desk, conv, GUIDE_SANDBOX, {
      port: desktopPort,
      hostScript: handsToken(t.agent.token, api.url),
    });
    // Routed to Alice: she accepts the offer.
    await frame.getByRole('button', { name: 'Accept' }).click();
    await frame.getByText('Assigned to you', { exact: true }).waitFor();
    expect(frame.url()).not.toMatch(/token/);

    for (let n = 2; n <= 20; n++) {
      if (n === 11) {
        // The agent's page reloads while the customer writes: nothing is lost.
        const reloaded = frame.evaluate('location.reload()');
        await customerSends(customer, `message ${n} from the customer`);
        expected.push(`Gus|message ${n} from the customer`);
        await reloaded.catch(() => undefined);
        await frame.waitForLoadState('load');
        // The reloaded page asks the desktop for the token again (this browser denies a page
        // framed by another site its storage).
        await frame.getByText('Assigned to you', { exact: true }).waitFor();
        continue;
      }
      if (n % 2 === 0) {
        await agentSends(frame, `message ${n} from the agent`);
        expected.push(`Alice|message ${n} from the agent`);
      } else {
        await customerSends(customer, `message ${n} from the customer`);
        expected.push(`Gus|message ${n} from the customer`);
      }
    }
    const asAgentSees = expected.map(line => line.replace(/^Alice\|/, 'You|'));
    const asCustomerSees = expected.map(line => line.replace(/^Gus\|/, 'You|'));
    await expect.poll(() => agentMessages(frame), { timeout: 15_000 }).toEqual(asAgentSees);
    await expect.poll(() => widgetMessages(customer), { timeout: 15_000 }).toEqual(asCustomerSees);

    // Typing shows on the other side, both ways.
    await customer.locator('textarea').fill('still typ');
    await frame.getByText('Gus is typing…').waitFor();
    await frame.locator('#reply').fill('one moment');
    await customer.getByText('Alice is typing…').waitFor();
    await frame.locator('#reply').fill('');

    // The AI connector's suggestion, inserted with one click.
    const lastCustomerMessage = await eventually(async () => {
      const res = await request(api.url)
        .get(`/nexus/v3/agent/interactions/${iid}`)
        .set('Authorization', `Bearer ${t.agent.token}`);
      const messages = (
        res.body.data.events as {
          type: string;
          data: { message: { id: string }; from: { type: string } };
        }[]
      ).filter(e => e.type === 'message.created' && e.data.from.type === 'customer');
      return messages.at(-1)?.data.message.id;
    });
    await request(api.url)
      .post(`/nexus/v3/ai/${t.tenant}/interactions/${iid}/suggestions`)
      .set('Authorization', `Bearer ${h().config.adminToken}`)
      .send({
        messageId: lastCustomerMessage,
        connector: 'ai-connector',
        provider: 'builtin',
        intent: { name: 'order.status', confidence: 0.87 },
        entities: [],
        sentiment: { score: -0.2, label: 'negative' },
        suggestions: [{ type: 'reply', text: 'Let me look up your order.', confidence: 0.87 }],
      })
      .expect(201);
    await frame.getByText('Let me look up your order.').waitFor();
    await frame.getByRole('button', { name: 'Insert' }).click();
    expect(await frame.locator('#reply').inputValue()).toBe('Let me look up your order.');

    expect(await checkAccessibility(frame)).toEqual([]);
    // The inserted text painted before the picture is taken.
    await frame.evaluate('new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))');
    await screenshot(desk, 'ux-conv');
    await screenshot(customer, 'widget');
    await screenshot(customer, 'widget-phone', { phone: true });
    expect(customerErrors).toEqual([]);
    expect(deskErrors).toEqual([]);
  }, 120_000);

  it('signs in in place when framed without a token, on /auth/ on its own, and is refused framing elsewhere', async () => {
    const { api, t } = await setupDesk(h());
    const chat = await request(api.url)
      .post('/nexus/v3/chat/sessions')
      .set('x-api-key', t.chatKey)
      .send({ data: { nickname: 'Ivy', endpoint: 'GlobalChatSwitchboard' } })
      .expect(201);
    const iid = chat.body.data.interactionId as string;
    const conv = `${api.url}/ux/conv?iid=${iid}&ccid=${t.tenant}`;

    // Framed by the desktop, which hands no token: the sign-in form, in the frame.
    const desk = b().page;
    const deskErrors = consoleErrors(desk);
    const frame = await framed(desk, conv, GUIDE_SANDBOX, { port: desktopPort });
    await frame.getByRole('heading', { name: 'Agent sign-in' }).waitFor({ timeout: 15_000 });
    expect(await frame.getByLabel('Contact center (tenant) id').inputValue()).toBe(t.tenant);
    expect(await checkAccessibility(frame)).toEqual([]);
    await frame.getByLabel('Username').fill('alice');
    await frame.getByLabel('Password').fill('not the password');
    await frame.getByRole('button', { name: 'Sign in' }).click();
    await frame.getByText('The tenant, username or password is not right.').waitFor();
    expect(await frame.getByLabel('Password').inputValue()).toBe('');
    await frame.getByLabel('Password').fill(PASSWORD);
    await frame.getByRole('button', { name: 'Sign in' }).click();
    await frame.getByRole('heading', { name: 'Ivy' }).waitFor();
    await frame.getByRole('button', { name: 'Accept' }).waitFor();
    expect(frame.url()).toBe(conv);

    // /auth/ on its own: signs in and goes back to the page that sent the agent there.
    const page = await b().newPage();
    const pageErrors = consoleErrors(page);
    await page.goto(
      `${api.url}/auth/?ccid=${t.tenant}&return=${encodeURIComponent(`/ux/conv?iid=${iid}`)}`,
    );
    expect(await checkAccessibility(page)).toEqual([]);
    await screenshot(page, 'auth-sign-in');
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${api.url}/ux/conv?iid=${iid}`);
    await page.getByRole('heading', { name: 'Ivy' }).waitFor();
    expect(pageErrors).toEqual([]);
    // A return to another site is not followed (the default page comes instead).
    await page.goto(
      `${api.url}/auth/?ccid=${t.tenant}&return=${encodeURIComponent('//evil.example/')}`,
    );
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(url => url.pathname === '/ux/comm' || url.host !== new URL(api.url).host);
    expect(new URL(page.url()).host).toBe(new URL(api.url).host);

    // Another origin may not frame the page at all (frame-ancestors).
    const other = await b().newPage();
    const errors = consoleErrors(other);
    await framed(other, conv, GUIDE_SANDBOX, {
      hostScript: handsToken(t.agent.token, api.url),
    }).catch(() => undefined);
    await expect
      .poll(() => errors.some(e => /frame-ancestors/.test(e)), { timeout: 10_000 })
      .toBe(true);
    // The one error: the browser's note of the wrong password's 401.
    expect(deskErrors).toEqual([expect.stringMatching(/status of 401 .*\/auth\/v3\/agent\/token/)]);
  }, 90_000);
});
