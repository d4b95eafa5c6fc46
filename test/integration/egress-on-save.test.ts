import type request from 'supertest';
import { describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../api/app.js';
import { useHarness, type Harness } from '../helpers/harness.js';
import { putService, serviceCount, setupTenant } from '../helpers/tenant-services.js';

/**
 * Outbound URLs a tenant saves (webhook targets, provider URLs, an Async channel's webhook) are
 * checked against the egress rules when saved, not only when the hub connects: a URL the hub
 * could never reach is refused with 400 `NEXUS_ERR_EGRESS_BLOCKED` naming the field and
 * `NEXUS_EGRESS_ALLOW`, and nothing is stored.
 */

const TENANT = 'egress-tenant';
const NON_PUBLIC = [
  'http://127.0.0.1:8080/hooks',
  'http://localhost:8080/hooks',
  'http://LOCALHOST./hooks',
  'http://crm.localhost/hooks',
  'http://[::1]/hooks',
  'http://[::ffff:127.0.0.1]/hooks',
  'http://10.0.0.1/hooks',
  'http://172.16.0.1/hooks',
  'http://192.168.1.1/hooks',
  'http://169.254.169.254/latest/meta-data/',
  'http://100.64.0.1/hooks',
  'http://0.0.0.0/hooks',
  'http://2130706433/hooks',
  'http://0177.0.0.1/hooks',
  'http://[fd00::1]/hooks',
];

const setup = (h: Harness) => setupTenant(h, TENANT);
const put = (app: BuiltApp, admin: Record<string, string>, name: string, body: object) =>
  putService(app, admin, TENANT, name, body);

const refused = (res: request.Response, field: string) => {
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.body.status.code).toBe('NEXUS_ERR_EGRESS_BLOCKED');
  expect(res.body.status.field).toBe(field);
  expect(res.body.status.message).toMatch(/NEXUS_EGRESS_ALLOW/);
};

describe('outbound URLs checked when saved, without an allow-list', () => {
  const h = useHarness();

  it('refuses a webhook target on a loopback, private or otherwise non-public address', async () => {
    const { app, admin } = await setup(h());
    for (const [index, url] of NON_PUBLIC.entries()) {
      refused(await put(app, admin, `WebhookTransportTarget-t${index}`, { url }), 'body.url');
    }
    expect(await serviceCount(h())).toBe(0);
  });

  it("refuses providers' URLs and an Async channel's webhook the same way", async () => {
    const { app, admin } = await setup(h());
    const credentials = { username: 'u', password: 'p' };
    refused(
      await put(app, admin, 'mGageSMS', { url: 'http://10.1.2.3/send', secret: credentials }),
      'body.url',
    );
    refused(
      await put(app, admin, 'KannelSMS', {
        url: 'http://localhost:13013/cgi-bin/sendsms',
        secret: credentials,
      }),
      'body.url',
    );
    refused(
      await put(app, admin, 'PurecloudIDP', {
        url: 'http://169.254.169.254/',
        secret: { clientId: 'c', clientSecret: 's' },
      }),
      'body.url',
    );
    refused(
      await put(app, admin, 'Async', {
        url: 'N/A',
        data: {
          channels: [
            { channelId: '1650', webhook: { url: 'https://gw.example/hook' } },
            { channelId: '1651', webhook: { url: 'http://192.168.0.10/hook' } },
          ],
        },
        secret: {
          channels: ['1650', '1651'].map(channelId => ({
            channelId,
            webhook: { secret: 'w' },
            api: { secret: 'a' },
          })),
        },
      }),
      'body.data.channels.1.webhook.url',
    );
    expect(await serviceCount(h())).toBe(0);
  });

  it('accepts public addresses and hostnames without resolving them (checked at connect time)', async () => {
    const { app, admin } = await setup(h());
    await put(app, admin, 'WebhookTransportTarget-crm', {
      url: 'https://crm.example/hooks',
    }).expect(201);
    await put(app, admin, 'WebhookTransportTarget-ip', {
      url: 'http://93.184.215.14/hooks',
    }).expect(201);
    // A name is not resolved when saved: where it points is checked at every connection.
    await put(app, admin, 'WebhookTransportTarget-internal', {
      url: 'http://internal.corp.example/hooks',
    }).expect(201);
    await put(app, admin, 'Async', {
      url: 'N/A',
      data: { channels: [{ channelId: '1650', webhook: { url: 'https://gw.example/hook' } }] },
      secret: { channels: [{ channelId: '1650', webhook: { secret: 'w' }, api: { secret: 'a' } }] },
    }).expect(201);
    expect(await serviceCount(h())).toBe(4);
  });
});

describe('outbound URLs checked when saved, with NEXUS_EGRESS_ALLOW', () => {
  const h = useHarness({ NEXUS_EGRESS_ALLOW: '127.0.0.1,10.0.0.0/8,gateway.internal' });

  it('accepts what the allow-list opens, and only that', async () => {
    const { app, admin } = await setup(h());
    for (const [index, url] of [
      'http://127.0.0.1:8080/hooks',
      'http://localhost:8080/hooks',
      'http://10.20.30.40/hooks',
      'http://gateway.internal/hooks',
    ].entries()) {
      await put(app, admin, `WebhookTransportTarget-ok${index}`, { url }).expect(201);
    }
    refused(
      await put(app, admin, 'WebhookTransportTarget-private', { url: 'http://192.168.1.1/' }),
      'body.url',
    );
    refused(
      await put(app, admin, 'WebhookTransportTarget-v6', { url: 'http://[::1]:8080/' }),
      'body.url',
    );
    expect(await serviceCount(h())).toBe(4);
  });
});
