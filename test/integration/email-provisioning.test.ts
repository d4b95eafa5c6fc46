import { generateKeyPairSync } from 'node:crypto';
import request from 'supertest';
import { sql } from 'slonik';
import { describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../api/app.js';
import { useHarness, type Harness } from '../helpers/harness.js';
import { putService, serviceCount, setupTenant } from '../helpers/tenant-services.js';

/**
 * The SMTP email provider's provisioning (`SmtpEmail`, `Email` provider `SMTP`): a relay URL,
 * STARTTLS policy, pool and DKIM domains in `data`; credentials and DKIM keys sealed in `secret`
 * and never returned. Bad bodies answer 400 naming the field and store nothing.
 */

const TENANT = 'email-tenant';
const pem = (type: 'rsa' | 'ed25519', bits = 2048) =>
  (type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: bits })
    : generateKeyPairSync('ed25519')
  ).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

const setup = (h: Harness) => setupTenant(h, TENANT);
const put = (app: BuiltApp, admin: Record<string, string>, name: string, body: object) =>
  putService(app, admin, TENANT, name, body);

const refused = (res: request.Response, code: string, field: string) => {
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.body.status.code).toBe(code);
  expect(res.body.status.field).toBe(field);
};

describe('SMTP email provisioning', () => {
  const h = useHarness();

  it('stores an SMTP relay with DKIM domains, seals its secret and never returns it', async () => {
    const { app, admin } = await setup(h());
    await put(app, admin, 'Email', { url: 'N/A', data: { provider: 'SMTP' } }).expect(201);
    const rsa = pem('rsa');
    const created = await put(app, admin, 'SmtpEmail', {
      url: 'smtp://relay.example.com:587',
      data: {
        starttls: 'required',
        maxConnections: 3,
        dkim: [
          { domain: 'mail.example.com', selector: 's2026' },
          { domain: 'example.org', selector: 'ed' },
        ],
      },
      secret: {
        username: 'relay-user',
        password: 'relay-pass',
        dkimKeys: { 'mail.example.com': rsa, 'example.org': pem('rsa', 1024) },
      },
    }).expect(201);
    expect(created.body.data.data).toEqual({
      starttls: 'required',
      maxConnections: 3,
      maxMessages: 100,
      dkim: [
        { domain: 'mail.example.com', selector: 's2026' },
        { domain: 'example.org', selector: 'ed' },
      ],
    });
    const read = await request(app)
      .get(`/nexus/v3/provisioning/services/${TENANT}/SmtpEmail`)
      .set(admin)
      .expect(200);
    expect(JSON.stringify(read.body)).not.toContain('relay-pass');
    expect(JSON.stringify(read.body)).not.toContain('PRIVATE KEY');
    const stored = await h().db.oneFirst(
      sql.unsafe`SELECT secret_sealed FROM services WHERE name = 'SmtpEmail'`,
    );
    expect(String(stored)).not.toContain('relay-pass');

    // smtps:// without credentials or DKIM: TLS from the start, defaults for the pool.
    await put(app, admin, 'SmtpEmail', { url: 'smtps://relay.example.com' }).expect(200);
  });

  it('refuses bad relays, keys and policies with 400 naming the field, storing nothing', async () => {
    const { app, admin } = await setup(h());
    const V = 'NEXUS_ERR_VALIDATION';
    refused(
      await put(app, admin, 'SmtpEmail', { url: 'https://relay.example.com' }),
      V,
      'body.url',
    );
    refused(
      await put(app, admin, 'SmtpEmail', { url: 'smtp://user:pw@relay.example.com' }),
      V,
      'body.url',
    );
    refused(
      await put(app, admin, 'SmtpEmail', {
        url: 'smtps://relay.example.com',
        data: { starttls: 'required' },
      }),
      V,
      'body.data.starttls',
    );
    refused(
      await put(app, admin, 'SmtpEmail', {
        url: 'smtp://relay.example.com',
        secret: { username: 'only-user' },
      }),
      V,
      'body.secret.password',
    );
    refused(
      await put(app, admin, 'SmtpEmail', {
        url: 'smtp://relay.example.com',
        data: { dkim: [{ domain: 'example.com', selector: 's1' }] },
      }),
      V,
      'body.secret.dkimKeys',
    );
    refused(
      await put(app, admin, 'SmtpEmail', {
        url: 'smtp://relay.example.com',
        data: { dkim: [{ domain: 'example.com', selector: 's1' }] },
        secret: { dkimKeys: { 'example.com': 'not a key' } },
      }),
      V,
      'body.secret.dkimKeys.example.com',
    );
    refused(
      await put(app, admin, 'SmtpEmail', {
        url: 'smtp://relay.example.com',
        data: { dkim: [{ domain: 'example.com', selector: 's1' }] },
        secret: { dkimKeys: { 'example.com': pem('rsa', 512) } },
      }),
      V,
      'body.secret.dkimKeys.example.com',
    );
    refused(
      await put(app, admin, 'SmtpEmail', {
        url: 'smtp://relay.example.com',
        data: { dkim: [{ domain: 'not a domain', selector: 's1' }] },
      }),
      V,
      'body.data.dkim.0.domain',
    );
    refused(
      await put(app, admin, 'SmtpEmail', {
        url: 'smtp://relay.example.com',
        data: { dkim: [{ domain: 'example.com', selector: 's1' }] },
        secret: { dkimKeys: { 'example.com': pem('ed25519') } },
      }),
      V,
      'body.secret.dkimKeys.example.com',
    );
    refused(
      await put(app, admin, 'Email', { url: 'N/A', data: { provider: 'Sendmail' } }),
      V,
      'body.data.provider',
    );
    // A relay the hub could never reach (loopback, private) is refused as any outbound URL.
    refused(
      await put(app, admin, 'SmtpEmail', { url: 'smtp://127.0.0.1:25' }),
      'NEXUS_ERR_EGRESS_BLOCKED',
      'body.url',
    );
    refused(
      await put(app, admin, 'SmtpEmail', { url: 'smtps://10.0.0.5' }),
      'NEXUS_ERR_EGRESS_BLOCKED',
      'body.url',
    );
    expect(await serviceCount(h())).toBe(0);
  });
});
