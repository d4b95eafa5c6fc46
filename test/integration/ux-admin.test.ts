import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { createWebhookProcessor } from '../../workers/processors/webhooks.js';
import { checkAccessibility, consoleErrors, screenshot, useBrowser } from '../helpers/browser.js';
import { writeReadEvents } from '../helpers/events.js';
import { eventually, useHarness } from '../helpers/harness.js';
import { provisionChatTenant } from '../helpers/chat.js';
import { startReceiver } from '../helpers/receiver.js';

/**
 * The operator console (/admin/) in Chromium: an agent's token does not get in; the admin token
 * does, and the operator creates a tenant and an API key (each shown once, and working), a
 * webhook target (its secret write-only), finds a refused delivery in the log and replays its
 * undelivered record, which then arrives.
 */

describe('the operator console', () => {
  const h = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1' });
  const b = useBrowser();

  it('keeps agents out; an operator creates a tenant, a key, a webhook target and replays an undelivered record', async () => {
    const api = await h().serve();
    await h().startWorkers({
      processors: {
        inbound: createInboundProcessor({
          db: h().db,
          publisher: h().publisher,
          queues: h().queues,
          log: h().log,
        }),
        webhooks: createWebhookProcessor({
          db: h().db,
          queues: h().queues,
          log: h().log,
          bus: h().bus,
          config: h().config,
        }),
      },
      select: ['inbound', 'webhooks', 'maintenance'],
    });
    const desk = await provisionChatTenant(h(), api.app, 'desk');
    // The subscriber refuses the first delivery (a 400 is final): an undelivered record.
    const receiver = await startReceiver(() => ({ status: 400, body: 'not yet' }));
    try {
      const page = b().page;
      const errors = consoleErrors(page);
      await page.goto(`${api.url}/admin/`);
      const token = page.getByLabel('Admin token or operator JWT');

      // An agent's token, and a tenant's chat key, do not open the console.
      await token.fill(desk.agent.token);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page
        .getByRole('alert')
        .getByText(/not an operator’s/)
        .waitFor();
      await token.fill(desk.chatKey);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page
        .getByRole('alert')
        .getByText(/does not accept this token/)
        .waitFor();
      expect(await page.getByRole('navigation').count()).toBe(0);
      expect(await checkAccessibility(page)).toEqual([]);
      await screenshot(page, 'admin-sign-in');

      await token.fill(h().config.adminToken);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('navigation', { name: 'Sections' }).waitFor();

      // A tenant: its chat key is shown once, and works.
      await page.getByLabel('Id (ccid)').fill('acme');
      await page.getByLabel('Name', { exact: true }).fill('Acme Corp');
      await page.getByRole('button', { name: 'Create' }).click();
      const shown = page.getByTestId('shown-once');
      const xapikey = (await shown.innerText()).trim();
      expect(xapikey).toMatch(/^[0-9a-f-]{36}$/);
      await request(api.url)
        .get('/nexus/v3/apikeys/current')
        .set('x-api-key', xapikey)
        .expect(200)
        .expect(res => expect(res.body.tenant).toBe('acme'));
      await page.getByRole('cell', { name: 'Acme Corp', exact: true }).waitFor();
      expect(await checkAccessibility(page)).toEqual([]);
      await screenshot(page, 'admin-tenants');
      await page.getByRole('button', { name: 'I have copied it' }).click();
      expect(await shown.count()).toBe(0);
      await expect.poll(() => page.getByLabel('Tenant', { exact: true }).inputValue()).toBe('acme');

      // An API key with one permission: shown once, works for that permission only.
      await page.getByRole('link', { name: 'API keys' }).click();
      await page.getByLabel('Name', { exact: true }).fill('crm provisioning');
      await page.getByLabel('nexus:provisioning:*').check();
      await page.getByRole('button', { name: 'Create' }).click();
      const key = (await page.getByTestId('shown-once').innerText()).trim();
      await request(api.url)
        .get('/nexus/v3/provisioning/services/acme')
        .set('x-api-key', key)
        .expect(200);
      await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', key)
        .send({ data: { nickname: 'x' } })
        .expect(403);
      await page.getByRole('cell', { name: 'crm provisioning', exact: true }).waitFor();
      await page.getByRole('button', { name: 'I have copied it' }).click();
      // Listed from now on without the key itself.
      await page.reload();
      await page.getByRole('cell', { name: 'crm provisioning', exact: true }).waitFor();
      expect(await page.content()).not.toContain(key);
      expect(await checkAccessibility(page)).toEqual([]);

      // A webhook target.
      await page.getByRole('link', { name: 'Webhooks' }).click();
      await page.getByLabel('Target name (after WebhookTransportTarget-)').fill('crm');
      await page.getByLabel('URL').fill(`${receiver.url}/hook`);
      await page.getByLabel('Signing secret').fill('whsec-admin-console-test');
      await page.getByRole('button', { name: 'Create' }).click();
      await page.getByRole('status').getByText('WebhookTransportTarget-crm saved.').waitFor();
      await page
        .getByRole('cell', { name: 'WebhookTransportTarget-crm', exact: true })
        .first()
        .waitFor();

      // Its secret is write-only: the services list says it is set, never what it is.
      await page.getByRole('link', { name: 'Services' }).click();
      const serviceRow = page.getByRole('row', { name: /WebhookTransportTarget-crm/ });
      await serviceRow.waitFor();
      expect(await page.content()).not.toContain('whsec-admin-console-test');
      // Editing its data leaves the secret as it was (PATCH without a secret).
      await page.getByRole('button', { name: 'Edit WebhookTransportTarget-crm' }).click();
      await page.getByLabel('Data (JSON)').fill('{"events": ["read"]}');
      await page.getByRole('button', { name: 'Save' }).click();
      await page.getByRole('status').getByText('WebhookTransportTarget-crm saved.').waitFor();
      const stored = await request(api.url)
        .get('/nexus/v3/provisioning/services/acme/WebhookTransportTarget-crm')
        .set('Authorization', `Bearer ${h().config.adminToken}`)
        .expect(200);
      expect(stored.body.data.secret).toBeTruthy();
      expect(stored.body.data.data).toEqual({ events: ['read'] });

      // An event of the tenant: the receiver refuses it; the log shows the failure.
      await writeReadEvents(h().db, 'acme', 1);
      await eventually(() => receiver.requests.length === 1, 20_000, 'the first attempt');
      await page.getByRole('link', { name: 'Webhooks' }).click();
      await expect
        .poll(
          async () => {
            await page.getByRole('button', { name: 'Refresh' }).click();
            return page.getByRole('cell', { name: 'failed', exact: true }).count();
          },
          { timeout: 15_000 },
        )
        .toBe(1);
      await page.getByRole('button', { name: /^Attempts: / }).click();
      await page
        .getByRole('region', { name: /Attempts of delivery/ })
        .getByText('400')
        .waitFor();
      expect(await checkAccessibility(page)).toEqual([]);
      await screenshot(page, 'admin-webhooks', { fullPage: true });

      // The undelivered record, replayed once the subscriber accepts: it arrives, same webhook-id.
      receiver.answer(() => ({ status: 200 }));
      await page.getByRole('link', { name: 'Undelivered' }).click();
      const replay = page.getByRole('button', { name: /^Replay record \d+$/ });
      await replay.waitFor();
      expect(await replay.count()).toBe(1);
      await replay.click();
      await page
        .getByRole('status')
        .getByText(/Record \d+ replayed\./)
        .waitFor();
      await eventually(() => receiver.requests.length === 2, 20_000, 'the replayed delivery');
      expect(receiver.requests[1]?.headers['webhook-id']).toBe(
        receiver.requests[0]?.headers['webhook-id'],
      );
      await page.getByRole('cell', { name: 'NEXUS_ERR_WEBHOOK_REFUSED', exact: true }).waitFor();
      expect(await checkAccessibility(page)).toEqual([]);
      await screenshot(page, 'admin-undelivered');

      // Bad input is refused with the hub's reason, and nothing is stored.
      await page.getByRole('link', { name: 'Tenants' }).click();
      await page.getByLabel('Id (ccid)').fill('Bad Tenant!');
      await page.getByLabel('Name', { exact: true }).fill('x');
      await page.getByRole('button', { name: 'Create' }).click();
      await page
        .getByRole('alert')
        .getByText(/NEXUS_ERR_VALIDATION/)
        .waitFor();
      expect(await page.getByTestId('shown-once').count()).toBe(0);

      // Signing out forgets the token.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.reload();
      await token.waitFor();
      // The browser logs the refusals this test provoked (the agent's token, the chat key, the
      // bad tenant id) as failed loads; nothing else went wrong (no CSP violation, no exception).
      expect(errors.filter(error => !/status of (400|401|403) /.test(error))).toEqual([]);
      expect(errors).toHaveLength(3);
    } finally {
      await receiver.close();
    }
  }, 120_000);
});
