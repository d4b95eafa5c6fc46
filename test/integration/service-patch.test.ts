import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { BuiltApp } from '../../api/app.js';
import { ServiceDirectory } from '../../db/service-directory.js';
import { InvalidationBus } from '../../lib/invalidation.js';
import { SecretBox } from '../../lib/secrets.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';
import { putService, setupTenant } from '../helpers/tenant-services.js';

/**
 * `PATCH /nexus/v3/provisioning/services/{ccid}/{serviceName}`: the fields given replace the
 * stored ones, the stored secret is kept when none is given (the sealed value as it is, no
 * rotation), and the result is validated and saved as by PUT. Refused patches change nothing.
 */

const TENANT = 'patch-tenant';
const OTHER = 'patch-other';
const TARGET = 'WebhookTransportTarget-crm';
const OLD_SECRET = 'crm-signing-secret-1';
const NEW_SECRET = 'crm-signing-secret-2';

const storedRow = z.object({
  url: z.string().nullable(),
  data: z.record(z.unknown()),
  secret_sealed: z.string().nullable(),
  secret_key_id: z.string().nullable(),
  version: z.number(),
  updated_at: z.string(),
});
const stored = (h: Harness, name: string, tenant = TENANT) =>
  h.db.one(sql.type(storedRow)`
    SELECT url, data, secret_sealed, secret_key_id, version, updated_at::text FROM services
    WHERE tenant_id = ${tenant} AND name = ${name}`);
const targetState = (h: Harness, name: string) =>
  h.db.one(sql.type(
    z.object({ event_types: z.array(z.string()).nullable(), previous: z.string().nullable() }),
  )`
    SELECT event_types, previous_secret_sealed AS previous FROM webhook_targets
    WHERE tenant_id = ${TENANT} AND name = ${name}`);

const patch = (
  app: BuiltApp,
  auth: Record<string, string>,
  name: string,
  body: unknown,
  tenant = TENANT,
) =>
  request(app)
    .patch(`/nexus/v3/provisioning/services/${tenant}/${name}`)
    .set(auth)
    .send(body as object);

const refused = (res: request.Response, status: number, code: string, field?: string) => {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.status.code).toBe(code);
  if (field !== undefined) expect(res.body.status.field).toBe(field);
};

async function withTarget(h: Harness) {
  const { app, admin } = await setupTenant(h, TENANT);
  await putService(app, admin, TENANT, TARGET, {
    url: 'https://crm.example.com/hooks',
    data: { events: ['interaction.started'], signatures: ['x-hub-signature-256'] },
    secret: OLD_SECRET,
  }).expect(201);
  return { app, admin };
}

describe('PATCH a service', () => {
  const h = useHarness();

  it('changes data of a webhook target and keeps its sealed secret, without a rotation', async () => {
    const { app, admin } = await withTarget(h());
    const workerBus = InvalidationBus.create(h().config, h().redis, h().log, 'worker');
    try {
      await eventually(() => workerBus.live);
      const directory = new ServiceDirectory(
        h().db,
        new SecretBox(h().config.secretKey),
        workerBus,
      );
      expect(await directory.get(TENANT, TARGET)).toMatchObject({ version: 1 });
      const before = await stored(h(), TARGET);

      const res = await patch(app, admin, TARGET, {
        data: { events: ['delivery.exhausted'], format: 'events' },
      }).expect(200);
      expect(res.body.data).toMatchObject({
        tenant: TENANT,
        name: TARGET,
        url: 'https://crm.example.com/hooks',
        // Replaced whole: `signatures` is gone.
        data: { events: ['delivery.exhausted'], format: 'events' },
        secret: { secret: true },
        version: 2,
        updatedby: 'admin',
      });
      expect(JSON.stringify(res.body)).not.toContain(OLD_SECRET);

      const read = await request(app)
        .get(`/nexus/v3/provisioning/services/${TENANT}/${TARGET}`)
        .set(admin)
        .expect(200);
      expect(read.body.data.secret).toEqual({ secret: true });
      const after = await stored(h(), TARGET);
      expect(after.secret_sealed).toBe(before.secret_sealed);
      expect(after.secret_key_id).toBe(before.secret_key_id);
      expect(after.data).toEqual({ events: ['delivery.exhausted'], format: 'events' });
      // The target follows its new events; no previous secret signs beside the kept one.
      expect(await targetState(h(), TARGET)).toEqual({
        event_types: ['delivery.exhausted'],
        previous: null,
      });

      // Workers hear of the change and still sign with the old secret.
      await eventually(
        async () => (await directory.get(TENANT, TARGET))?.version === 2,
        5_000,
        'the patched target',
      );
      expect(await directory.get(TENANT, TARGET)).toMatchObject({
        data: { events: ['delivery.exhausted'], format: 'events' },
        secret: { secret: OLD_SECRET },
      });

      // `url` alone: data and secret stay.
      await patch(app, admin, TARGET, { url: 'https://crm2.example.com/hooks' }).expect(200);
      expect(await stored(h(), TARGET)).toMatchObject({
        url: 'https://crm2.example.com/hooks',
        data: { events: ['delivery.exhausted'], format: 'events' },
        secret_sealed: before.secret_sealed,
        version: 3,
      });
    } finally {
      await workerBus.close();
    }
  });

  it('replaces the secret when one is given, the old one signing for the grace period', async () => {
    const { app, admin } = await withTarget(h());
    const before = await stored(h(), TARGET);
    const res = await patch(app, admin, TARGET, { secret: { secret: NEW_SECRET } }).expect(200);
    expect(res.body.data).toMatchObject({
      data: { events: ['interaction.started'], signatures: ['x-hub-signature-256'] },
      secret: { secret: true },
      version: 2,
    });
    const after = await stored(h(), TARGET);
    expect(after.secret_sealed).not.toBe(before.secret_sealed);
    expect(after.url).toBe('https://crm.example.com/hooks');
    const box = new SecretBox(h().config.secretKey);
    const directory = new ServiceDirectory(h().db, box, h().bus);
    expect(await directory.get(TENANT, TARGET)).toMatchObject({ secret: { secret: NEW_SECRET } });
    // The replaced secret keeps signing beside the new one for the grace period.
    expect((await targetState(h(), TARGET)).previous).toBe(before.secret_sealed);
  });

  it('keeps a secret the shape checks against the new data (Async channels)', async () => {
    const { app, admin } = await setupTenant(h(), TENANT);
    const secret = {
      channels: [{ channelId: '1650', webhook: { secret: 'w-1' }, api: { secret: 'a-1' } }],
    };
    await putService(app, admin, TENANT, 'Async', {
      data: { channels: [{ channelId: '1650', webhook: { url: 'https://gw.example.com/a' } }] },
      secret,
    }).expect(201);
    const before = await stored(h(), 'Async');
    await patch(app, admin, 'Async', {
      data: { channels: [{ channelId: '1650', webhook: { url: 'https://gw.example.com/b' } }] },
    }).expect(200);
    expect(await stored(h(), 'Async')).toMatchObject({
      data: { channels: [{ channelId: '1650', webhook: { url: 'https://gw.example.com/b' } }] },
      secret_sealed: before.secret_sealed,
      version: 2,
    });
    // A channel the stored secret has no entry for is refused, as PUT refuses it.
    refused(
      await patch(app, admin, 'Async', {
        data: { channels: [{ channelId: '1651', webhook: { url: 'https://gw.example.com/c' } }] },
      }),
      400,
      'NEXUS_ERR_VALIDATION',
      'body.secret.channels',
    );
    expect((await stored(h(), 'Async')).version).toBe(2);
  });

  it('answers 404 for a service not stored, and 400 for bad bodies, changing nothing', async () => {
    const { app, admin } = await withTarget(h());
    refused(
      await patch(app, admin, 'WebhookTransportTarget-missing', { url: 'https://x.example.com' }),
      404,
      'NEXUS_ERR_NOT_FOUND',
    );
    refused(
      await patch(app, admin, 'SMS', { data: { provider: 'mGage' } }),
      404,
      'NEXUS_ERR_NOT_FOUND',
    );
    const count = await h().db.oneFirst(sql.unsafe`SELECT count(*)::int FROM services`);
    expect(count).toBe(1);

    const before = await stored(h(), TARGET);
    const V = 'NEXUS_ERR_VALIDATION';
    refused(await patch(app, admin, TARGET, {}), 400, V, 'body');
    refused(await patch(app, admin, TARGET, { colour: 'red' }), 400, V, 'body.colour');
    refused(
      await patch(app, admin, TARGET, { data: { events: ['interaction.started'] }, colour: 'red' }),
      400,
      V,
      'body.colour',
    );
    refused(
      await patch(app, admin, TARGET, { data: { signatures: ['md5'] } }),
      400,
      V,
      'body.data.signatures.0',
    );
    refused(await patch(app, admin, TARGET, { url: 'not a url' }), 400, V, 'body.url');
    refused(await patch(app, admin, TARGET, { data: 'x' }), 400, V, 'body.data');
    refused(await patch(app, admin, 'NoSuchService', { url: 'x' }), 400, V, 'params.serviceName');
    // A loopback URL the egress rules refuse, as PUT refuses it.
    refused(
      await patch(app, admin, TARGET, { url: 'http://127.0.0.1:9/hooks' }),
      400,
      'NEXUS_ERR_EGRESS_BLOCKED',
      'body.url',
    );
    expect(await stored(h(), TARGET)).toEqual(before);
    expect(await targetState(h(), TARGET)).toEqual({
      event_types: ['interaction.started'],
      previous: null,
    });
  });

  it("refuses another tenant's key, as PUT does, changing nothing", async () => {
    const { app, admin } = await withTarget(h());
    await request(app)
      .post('/nexus/v3/provisioning/tenants')
      .set(admin)
      .send({ id: OTHER, name: OTHER })
      .expect(201);
    const keyOf = async (tenant: string) =>
      (
        await request(app)
          .post('/nexus/v3/apikeys')
          .set(admin)
          .send({ tenant, name: `${tenant} provisioning`, permissions: ['nexus:provisioning:*'] })
          .expect(201)
      ).body.key as string;
    const other = { 'x-api-key': await keyOf(OTHER) };
    const before = await stored(h(), TARGET);

    const put = await putService(app, other, TENANT, TARGET, { url: 'https://evil.example.com' });
    const res = await patch(app, other, TARGET, { url: 'https://evil.example.com' });
    expect(res.status).toBe(put.status);
    refused(res, 403, 'NEXUS_ERR_FORBIDDEN');
    // Naming its own tenant in x-ccid does not help.
    refused(
      await patch(app, { ...other, 'x-ccid': OTHER }, TARGET, { url: 'https://evil.example.com' }),
      403,
      'NEXUS_ERR_FORBIDDEN',
    );
    // A key of the tenant without the provisioning permission is refused too.
    const chatKey = (
      await request(app)
        .post('/nexus/v3/apikeys')
        .set(admin)
        .send({ tenant: TENANT, name: 'chat', permissions: ['nexus:consumer:chat'] })
        .expect(201)
    ).body.key as string;
    refused(
      await patch(app, { 'x-api-key': chatKey }, TARGET, { url: 'https://evil.example.com' }),
      403,
      'NEXUS_ERR_FORBIDDEN',
    );
    expect(await stored(h(), TARGET)).toEqual(before);

    // The tenant's own key may.
    const own = { 'x-api-key': await keyOf(TENANT) };
    const ok = await patch(app, own, TARGET, { url: 'https://crm3.example.com/hooks' }).expect(200);
    expect(ok.body.data.updatedby).toMatch(/^apikey:/);
  });

  it('is documented in the OpenAPI document', async () => {
    const app = h().app();
    const doc = (await request(app).get('/nexus/v3/openapi.json').expect(200)).body;
    const op = doc.paths['/nexus/v3/provisioning/services/{ccid}/{serviceName}'].patch;
    expect(op).toMatchObject({ summary: 'Update a service', tags: ['Services'] });
    expect(op['x-permission']).toBe('nexus:provisioning:*');
    expect(doc.components.schemas.ServiceUpdate.additionalProperties).toBe(false);
  });
});
