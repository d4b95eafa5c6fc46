import type { Page } from 'playwright-core';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { checkAccessibility, consoleErrors, screenshot, useBrowser } from '../helpers/browser.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { startIdentityProvider, type IdentityProvider } from '../helpers/identity-provider.js';

/**
 * The operator console's per-tenant sections in Chromium, for a tenant provisioned through the
 * API: channels (create, edit, delete; a bad body refused with the hub's code), chat endpoints
 * and routing queues with their live statistics, agents (a password to sign in with, a new one,
 * disabled), SMS consent and email suppressions; and operator JWTs: a tenant admin's sees its own
 * tenant only, an agent's does not get in.
 */

const TENANT = 'console-t';
const OTHER = 'console-u';
const CAMPAIGN_SENDER = '12345';
const CUSTOMER = '+15551234567';

/** The browser logs a refused call as a failed load; the tests provoke some, and only those. */
const unprovoked = (errors: string[]) =>
  errors.filter(error => !/Failed to load resource: .*status of (400|401|403) /.test(error));

describe('the operator console’s sections', () => {
  let idp: IdentityProvider;
  let harness: Harness | undefined;
  const h = () => {
    if (!harness) throw new Error('harness used outside a test');
    return harness;
  };
  const b = useBrowser();

  beforeAll(async () => {
    idp = await startIdentityProvider();
  });
  afterAll(() => idp.close());
  beforeEach(async () => {
    harness = await createHarness({
      NEXUS_JWT_ISSUER: idp.issuer,
      NEXUS_JWT_JWKS_URL: idp.jwksUrl,
    });
  });
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  const admin = () => ({ Authorization: `Bearer ${h().config.adminToken}` });

  /** A tenant through the API: its chat key. */
  async function provisionTenant(url: string, id = TENANT): Promise<string> {
    const created = await request(url)
      .post('/nexus/v3/provisioning/tenants')
      .set(admin())
      .send({ id, name: `Tenant ${id}` })
      .expect(201);
    return created.body.data.xapikey as string;
  }

  /** Opens the console at a section and signs in with `token`. */
  async function signIn(page: Page, url: string, token: string, section: string): Promise<void> {
    await page.goto(`${url}/admin/#${section}`);
    await page.getByLabel('Admin token or operator JWT').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('navigation', { name: 'Sections' }).waitFor();
  }

  /** The form under the heading `name`. */
  const form = (page: Page, name: string) =>
    page.locator('form', { has: page.getByRole('heading', { name, exact: true }) });

  it('creates, edits and deletes a channel; a bad body is refused and nothing is stored', async () => {
    const api = await h().serve();
    await provisionTenant(api.url);
    const page = b().page;
    const errors = consoleErrors(page);
    page.on('dialog', dialog => void dialog.accept());
    const channel = (name: string) =>
      request(api.url).get(`/nexus/v3/provisioning/channels/${TENANT}/${name}`).set(admin());

    await signIn(page, api.url, h().config.adminToken, 'channels');
    await page.getByRole('heading', { name: 'Channels', level: 2 }).waitFor();
    await page.getByText('Nothing here yet.').waitFor();
    const name = page.getByLabel('Name', { exact: true });
    const body = page.getByLabel('Channel (JSON)');

    // A new SMS channel, from the guide's body.
    await name.fill('chat.SMS_Main');
    await body.fill(
      JSON.stringify({ channelId: '+18005550100', endpoint: 'SmsDesk', provider: 'mGage' }),
    );
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').getByText('chat.SMS_Main saved.').waitFor();
    const row = page.getByRole('row', { name: /chat\.SMS_Main/ });
    await row.getByRole('cell', { name: 'mGage', exact: true }).waitFor();
    expect((await channel('chat.SMS_Main').expect(200)).body.data).toMatchObject({
      channelId: '+18005550100',
      channelType: 'sms',
      endpoint: 'SmsDesk',
      provider: 'mGage',
    });
    expect(await checkAccessibility(page)).toEqual([]);

    // Edit fills the form with the stored channel; saving replaces it.
    await name.fill('');
    await body.fill('');
    await page.getByRole('button', { name: 'Edit chat.SMS_Main' }).click();
    expect(await name.inputValue()).toBe('chat.SMS_Main');
    const stored = JSON.parse(await body.inputValue()) as Record<string, unknown>;
    expect(stored).toEqual({
      channelId: '+18005550100',
      channelType: 'sms',
      endpoint: 'SmsDesk',
      provider: 'mGage',
      interactionSubtype: 'SMS',
      interactionType: 'Inbound',
      media: 'chat',
      cxcOnly: false,
    });
    await body.fill(JSON.stringify({ ...stored, endpoint: 'SmsSales' }, null, 2));
    await page.getByRole('button', { name: 'Save' }).click();
    await row.getByRole('cell', { name: 'SmsSales', exact: true }).waitFor();
    expect((await channel('chat.SMS_Main').expect(200)).body.data.endpoint).toBe('SmsSales');

    // A body with a field the hub does not know: its code, and nothing stored.
    await name.fill('chat.SMS_Bad');
    await body.fill(JSON.stringify({ channelId: '+18005550199', endpoint: 'x', colour: 'red' }));
    await page.getByRole('button', { name: 'Save' }).click();
    await page
      .getByRole('alert')
      .getByText(/^NEXUS_ERR_VALIDATION: /)
      .waitFor();
    // Not JSON at all: refused before anything is sent.
    await body.fill('{ "channelId": ');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('alert').getByText('Channel (JSON): not valid JSON.').waitFor();
    await channel('chat.SMS_Bad').expect(404);
    expect(await page.getByRole('row', { name: /chat\.SMS_Bad/ }).count()).toBe(0);

    // Delete, confirmed.
    await page.getByRole('button', { name: 'Delete chat.SMS_Main' }).click();
    await page.getByRole('status').getByText('chat.SMS_Main deleted.').waitFor();
    await page.getByText('Nothing here yet.').waitFor();
    await channel('chat.SMS_Main').expect(404);

    // The refused body is the one failed load.
    expect(unprovoked(errors)).toEqual([]);
    expect(errors).toHaveLength(1);
  }, 90_000);

  it('creates an endpoint and a queue whose statistics follow a waiting chat, and deletes the endpoint', async () => {
    await h().startWorkers({
      processors: {
        inbound: createInboundProcessor({
          db: h().db,
          publisher: h().publisher,
          queues: h().queues,
          log: h().log,
        }),
      },
      select: ['inbound', 'maintenance'],
    });
    const api = await h().serve();
    const chatKey = await provisionTenant(api.url);
    const page = b().page;
    const errors = consoleErrors(page);
    page.on('dialog', dialog => void dialog.accept());

    await signIn(page, api.url, h().config.adminToken, 'routing');
    await page.getByRole('heading', { name: 'Endpoints and queues', level: 2 }).waitFor();

    const endpointForm = form(page, 'New or replaced endpoint');
    await endpointForm.getByLabel('Name', { exact: true }).fill('Web');
    await endpointForm.getByLabel('Description').fill('Website chat');
    await endpointForm.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').getByText('Web saved.').waitFor();
    await page.getByRole('cell', { name: 'Website chat', exact: true }).waitFor();

    const queueForm = form(page, 'New or replaced queue');
    await queueForm.getByLabel('Name', { exact: true }).fill('Support');
    await queueForm
      .getByLabel('Queue (JSON)')
      .fill(JSON.stringify({ endpoints: ['Web'], agents: [] }));
    await queueForm.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').getByText('Support saved.').waitFor();
    const stats = page.getByRole('row', { name: /^Support / });
    // Name, Waiting, Oldest wait, Agents ready, Assigned, Offered, ...
    const waiting = stats.getByRole('cell').nth(1);
    expect(await waiting.innerText()).toBe('0');
    const queue = await request(api.url)
      .get(`/nexus/v3/provisioning/queues/${TENANT}/Support`)
      .set(admin())
      .expect(200);
    expect(queue.body.data.endpoints).toEqual(['Web']);

    // A customer's chat to the endpoint waits in the queue (no agent serves it).
    await request(api.url)
      .post('/nexus/v3/chat/sessions')
      .set('x-api-key', chatKey)
      .type('form')
      .send({ 'data[nickname]': 'Pat', 'data[endpoint]': 'Web' })
      .expect(201);
    await expect
      .poll(
        async () => {
          await page.getByRole('button', { name: 'Refresh' }).click();
          return waiting.innerText();
        },
        { timeout: 15_000 },
      )
      .toBe('1');
    expect(await checkAccessibility(page)).toEqual([]);
    await screenshot(page, 'admin-queues');

    await page.getByRole('button', { name: 'Delete Web' }).click();
    await page.getByRole('status').getByText('Web deleted.').waitFor();
    await expect
      .poll(() => page.getByRole('cell', { name: 'Website chat', exact: true }).count())
      .toBe(0);
    const endpoints = await request(api.url)
      .get(`/nexus/v3/provisioning/endpoints/${TENANT}`)
      .set(admin())
      .expect(200);
    expect(endpoints.body.data.items).toEqual([]);

    expect(errors).toEqual([]);
  }, 90_000);

  it('creates an agent who signs in, sets a new password and disables the agent', async () => {
    const api = await h().serve();
    await provisionTenant(api.url);
    const page = b().page;
    const errors = consoleErrors(page);
    const signInAgent = (password: string) =>
      request(api.url)
        .post('/auth/v3/agent/token')
        .send({ ccid: TENANT, username: 'bob', password });
    const first = 'first password 1';
    const second = 'second password 2';

    await signIn(page, api.url, h().config.adminToken, 'agents');
    await page.getByRole('heading', { name: 'Agents', level: 2 }).waitFor();
    const create = form(page, 'New agent');

    // A password the hub refuses (too short): its code, and no agent.
    await create.getByLabel('Username').fill('bob');
    await create.getByLabel('Name', { exact: true }).fill('Bob Stone');
    await create.getByLabel('Password').fill('short');
    await create.getByRole('button', { name: 'Create' }).click();
    await page
      .getByRole('alert')
      .getByText(/^NEXUS_ERR_VALIDATION: /)
      .waitFor();
    const listed = await request(api.url)
      .get('/nexus/v3/agents')
      .set({ ...admin(), 'x-ccid': TENANT })
      .expect(200);
    expect(listed.body.data.items).toEqual([]);

    await create.getByLabel('Password').fill(first);
    await create.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('status').getByText('bob saved.').waitFor();
    const row = page.getByRole('row', { name: /Bob Stone/ });
    await row.getByRole('cell', { name: 'yes', exact: true }).waitFor();
    expect(await create.getByLabel('Password').inputValue()).toBe('');
    expect((await signInAgent(first).expect(200)).body.data.agent).toMatchObject({
      username: 'bob',
      name: 'Bob Stone',
      tenant: TENANT,
    });

    // A new password: the old one no longer signs in, the new one does.
    await page.getByRole('button', { name: 'Set password: bob' }).click();
    const passwordForm = form(page, 'New password for bob');
    await passwordForm.getByLabel('Password').fill(second);
    expect(await checkAccessibility(page)).toEqual([]);
    await passwordForm.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').getByText('Password of bob set.').waitFor();
    expect(await passwordForm.count()).toBe(0);
    await signInAgent(first).expect(401);
    const token = (await signInAgent(second).expect(200)).body.data.token as string;
    const me = () =>
      request(api.url).get('/nexus/v3/agent/me').set('Authorization', `Bearer ${token}`);
    await me().expect(200);
    expect(await checkAccessibility(page)).toEqual([]);
    await screenshot(page, 'admin-agents');

    // Disabled: its token is refused.
    await page.getByRole('button', { name: 'Disable bob' }).click();
    await row.getByRole('cell', { name: 'no', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Enable bob' }).waitFor();
    await me().expect(401);
    await signInAgent(second).expect(401);

    // At phone width the section fits the screen's width (the tables scroll on their own), and
    // the first screen shows the section, not only the navigation.
    const phone = await b().newPage({ phone: true });
    const phoneErrors = consoleErrors(phone);
    await signIn(phone, api.url, h().config.adminToken, 'agents');
    await phone.getByRole('row', { name: /Bob Stone/ }).waitFor();
    const pageWidth = await phone.evaluate<number>('document.documentElement.scrollWidth');
    expect(pageWidth).toBeLessThanOrEqual(375);
    const box = await phone.getByRole('row', { name: /Bob Stone/ }).boundingBox();
    expect((box?.y ?? Infinity) + (box?.height ?? 0)).toBeLessThanOrEqual(740);
    expect(await checkAccessibility(phone)).toEqual([]);
    await screenshot(phone, 'admin-phone', { phone: true });

    expect(unprovoked(errors)).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(phoneErrors).toEqual([]);
  }, 90_000);

  it('shows a number’s opt-out and its history, and suppresses and lifts an email address', async () => {
    const api = await h().serve();
    await provisionTenant(api.url);
    // The customer texts STOP to the tenant's campaign number.
    const aggregator = (
      await request(api.url)
        .post('/nexus/v3/apikeys')
        .set(admin())
        .send({ tenant: TENANT, name: 'aggregator', permissions: ['nexus:sms:webhook'] })
        .expect(201)
    ).body.key as string;
    await request(api.url)
      .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Campaigns`)
      .set(admin())
      .send({ channelId: CAMPAIGN_SENDER, endpoint: 'SmsDesk', provider: 'mGage', cxcOnly: true })
      .expect(201);
    await request(api.url)
      .post('/nexus/v3/sms/message')
      .auth(TENANT, aggregator)
      .type('form')
      .send({
        device_address: CUSTOMER,
        inbound_address: CAMPAIGN_SENDER,
        message: 'STOP',
        message_id: 'mo-1',
      })
      .expect(202);
    const page = b().page;
    const errors = consoleErrors(page);

    await signIn(page, api.url, h().config.adminToken, 'consent');
    await page.getByRole('heading', { name: 'Consent', level: 2 }).waitFor();
    const number = page.getByLabel('Customer number (E.164)');
    await number.fill(CUSTOMER);
    await page.getByRole('button', { name: 'Look up' }).click();
    const sender = page.getByRole('table', { name: `SMS consent: ${CUSTOMER}` });
    await sender.getByRole('row', { name: new RegExp(`^${CAMPAIGN_SENDER} yes `) }).waitFor();
    const history = page.getByRole('table', { name: 'History' });
    await history.getByRole('cell', { name: 'opt-out (STOP)', exact: true }).waitFor();
    await history.getByRole('cell', { name: 'keyword', exact: true }).waitFor();
    expect(await checkAccessibility(page)).toEqual([]);

    // A number the hub never saw has never opted out.
    await number.fill('+15559990000');
    await page.getByRole('button', { name: 'Look up' }).click();
    await page.getByText('No consent record: the number has never opted out.').waitFor();
    expect(await sender.count()).toBe(0);
    expect(await history.count()).toBe(0);

    // An email address suppressed by hand, then lifted.
    const suppression = () =>
      request(api.url)
        .get(`/nexus/v3/email/suppressions/${TENANT}/pat@example.com`)
        .set(admin())
        .expect(200);
    const address = page.getByLabel('Address', { exact: true });
    await address.fill('not an address');
    await page.getByRole('button', { name: 'Suppress' }).click();
    await page
      .getByRole('alert')
      .getByText(/^NEXUS_ERR_VALIDATION: /)
      .waitFor();
    await address.fill('pat@example.com');
    await page.getByRole('button', { name: 'Suppress' }).click();
    await page.getByRole('status').getByText('pat@example.com suppressed.').waitFor();
    const suppressed = page.getByRole('table', { name: 'Email suppressions' });
    await suppressed.getByRole('row', { name: /^pat@example\.com manual / }).waitFor();
    expect((await suppression()).body.data).toMatchObject({ suppressed: true, reason: 'manual' });
    const all = await request(api.url)
      .get(`/nexus/v3/email/suppressions/${TENANT}`)
      .set(admin())
      .expect(200);
    expect(all.body.data.items).toHaveLength(1);
    expect(await checkAccessibility(page)).toEqual([]);

    await page.getByRole('button', { name: 'Lift pat@example.com' }).click();
    await page
      .getByRole('status')
      .getByText('pat@example.com may receive campaign mail again.')
      .waitFor();
    await expect.poll(() => suppressed.count()).toBe(0);
    expect((await suppression()).body.data.suppressed).toBe(false);

    expect(unprovoked(errors)).toEqual([]);
    expect(errors).toHaveLength(1);
  }, 90_000);

  it('lets a tenant admin’s JWT in to its own tenant only, and keeps an agent’s JWT out', async () => {
    const api = await h().serve();
    await provisionTenant(api.url, TENANT);
    await provisionTenant(api.url, OTHER);
    await request(api.url)
      .post('/nexus/v3/agents')
      .set({ ...admin(), 'x-ccid': TENANT })
      .send({ username: 'alice', name: 'Alice' })
      .expect(201);
    const page = b().page;
    const errors = consoleErrors(page);

    const tenantAdmin = await idp.sign({ sub: 't-admin', ccid: TENANT, role: 'admin' });
    await signIn(page, api.url, tenantAdmin, 'agents');
    const tenants = page.getByLabel('Tenant', { exact: true });
    await expect.poll(() => tenants.inputValue()).toBe(TENANT);
    expect(await tenants.locator('option').allInnerTexts()).toEqual([
      `${TENANT} (Tenant ${TENANT})`,
    ]);
    // Its tenant's sections work with it.
    await page.getByRole('row', { name: /Alice/ }).waitFor();
    expect(await checkAccessibility(page)).toEqual([]);

    await page.getByRole('button', { name: 'Sign out' }).click();
    const agent = await idp.sign({ sub: 'alice', ccid: TENANT, role: 'agent' });
    await page.getByLabel('Admin token or operator JWT').fill(agent);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page
      .getByRole('alert')
      .getByText(/not an operator’s/)
      .waitFor();
    expect(await page.getByRole('navigation').count()).toBe(0);

    expect(unprovoked(errors)).toEqual([]);
    expect(errors).toHaveLength(1);
  }, 90_000);
});
