import { readFileSync } from 'node:fs';
import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { BuiltApp } from '../../api/app.js';
import { PERMISSION_NAMES } from '../../api/auth/permissions.js';
import { useHarness, type Harness } from '../helpers/harness.js';

const counts = async (h: Harness) =>
  h.db.one(sql.type(
    z.object({ tenants: z.number(), keys: z.number(), services: z.number(), channels: z.number() }),
  )`
    SELECT (SELECT count(*)::int FROM tenants) AS tenants, (SELECT count(*)::int FROM api_keys) AS keys,
           (SELECT count(*)::int FROM services) AS services, (SELECT count(*)::int FROM channels) AS channels`);

interface Case {
  name: string;
  send: (app: BuiltApp, admin: string) => request.Test;
  status?: number;
  code?: string;
  field: string;
}

const long = 'x'.repeat(5_000);
const tenants = (body: unknown) => (app: BuiltApp, admin: string) =>
  request(app)
    .post('/nexus/v3/provisioning/tenants')
    .set('Authorization', admin)
    .send(body as object);
const keys = (body: unknown) => (app: BuiltApp, admin: string) =>
  request(app)
    .post('/nexus/v3/apikeys')
    .set('Authorization', admin)
    .send(body as object);
const service =
  (name: string, body: unknown, tenant = 't1') =>
  (app: BuiltApp, admin: string) =>
    request(app)
      .post(`/nexus/v3/provisioning/services/${tenant}/${name}`)
      .set('Authorization', admin)
      .send(body as object);
const channel = (name: string, body: unknown) => (app: BuiltApp, admin: string) =>
  request(app)
    .put(`/nexus/v3/provisioning/channels/t1/${encodeURIComponent(name)}`)
    .set('Authorization', admin)
    .send(body as object);

const asyncData = { channels: [{ channelId: '1650', webhook: { url: 'https://gw.example' } }] };
const asyncSecret = {
  channels: [{ channelId: '1650', webhook: { secret: 'w' }, api: { secret: 'a' } }],
};

const CASES: Case[] = [
  { name: 'tenant without id', send: tenants({ name: 'x' }), field: 'body.id' },
  { name: 'tenant id with a space', send: tenants({ id: 'a b', name: 'x' }), field: 'body.id' },
  {
    name: 'tenant name too long',
    send: tenants({ id: 't2', name: 'n'.repeat(256) }),
    field: 'body.name',
  },
  { name: 'tenant id of the wrong type', send: tenants({ id: 12, name: 'x' }), field: 'body.id' },
  {
    name: 'genesystenantid as a string',
    send: tenants({ id: 't2', name: 'x', genesystenantid: '1' }),
    field: 'body.genesystenantid',
  },
  {
    name: 'tenant backendurl not a URL',
    send: tenants({ id: 't2', name: 'x', backendurl: 'gws' }),
    field: 'body.backendurl',
  },
  {
    name: 'tenant with an unknown field',
    send: tenants({ id: 't2', name: 'x', colour: 'red' }),
    field: 'body.colour',
  },
  {
    name: 'key without permissions',
    send: keys({ tenant: 't1', name: 'k' }),
    field: 'body.permissions',
  },
  {
    name: 'key with an unknown permission',
    send: keys({ tenant: 't1', name: 'k', permissions: ['nexus:everything'] }),
    field: 'body.permissions.0',
  },
  {
    name: 'cluster key without the cluster permission',
    send: keys({ tenant: '*', name: 'k', permissions: ['nexus:consumer:chat'] }),
    field: 'body.permissions',
  },
  {
    name: 'tenant key with the cluster permission',
    send: keys({ tenant: 't1', name: 'k', permissions: ['nexus:cluster:*'] }),
    field: 'body.permissions',
  },
  {
    name: 'key capacity zero',
    send: keys({ tenant: 't1', name: 'k', permissions: ['nexus:consumer:chat'], capacity: 0 }),
    field: 'body.capacity',
  },
  {
    name: 'key frequency as a string',
    send: keys({ tenant: 't1', name: 'k', permissions: ['nexus:consumer:chat'], frequency: '60' }),
    field: 'body.frequency',
  },
  {
    name: 'key expiring in the past',
    send: keys({
      tenant: 't1',
      name: 'k',
      permissions: ['nexus:consumer:chat'],
      expires: '2020-01-01T00:00:00Z',
    }),
    field: 'body.expires',
  },
  {
    name: 'key of an unknown tenant',
    send: keys({ tenant: 'nobody', name: 'k', permissions: ['nexus:consumer:chat'] }),
    field: 'body.tenant',
  },
  {
    name: 'key name too long',
    send: keys({ tenant: 't1', name: 'k'.repeat(256), permissions: ['nexus:consumer:chat'] }),
    field: 'body.name',
  },
  {
    name: 'unknown service name',
    send: service('FaxService', { url: 'N/A' }),
    field: 'params.serviceName',
  },
  {
    name: 'webhook target with a bad name',
    send: service('WebhookTransportTarget-', { url: 'https://x.example' }),
    field: 'params.serviceName',
  },
  {
    name: 'mGageSMS without its password',
    send: service('mGageSMS', { url: 'https://m.example', secret: { username: 'u' } }),
    field: 'body.secret.password',
  },
  {
    name: 'mGageSMS url not a URL',
    send: service('mGageSMS', { url: 'directtext', secret: { username: 'u', password: 'p' } }),
    field: 'body.url',
  },
  {
    name: 'mGageSMS password too long',
    send: service('mGageSMS', {
      url: 'https://m.example',
      secret: { username: 'u', password: long },
    }),
    field: 'body.secret.password',
  },
  {
    name: 'SMS with an unknown provider',
    send: service('SMS', { url: 'N/A', data: { provider: 'Carrier-Pigeon' } }),
    field: 'body.data.provider',
  },
  {
    name: 'SMS with a secret',
    send: service('SMS', { url: 'N/A', secret: { password: 'p' } }),
    field: 'body.secret.password',
  },
  {
    name: 'Async without channels',
    send: service('Async', { data: {}, secret: asyncSecret }),
    field: 'body.data.channels',
  },
  {
    name: 'Async webhook url not http',
    send: service('Async', {
      data: { channels: [{ channelId: '1650', webhook: { url: 'ftp://gw' } }] },
      secret: asyncSecret,
    }),
    field: 'body.data.channels.0.webhook.url',
  },
  {
    name: 'Async secret for an unknown channel',
    send: service('Async', {
      data: asyncData,
      secret: { channels: [{ ...asyncSecret.channels[0], channelId: '9999' }] },
    }),
    field: 'body.secret.channels',
  },
  {
    name: 'Async custom header with a bad name',
    send: service('Async', {
      data: { ...asyncData, 'header:bad header': '1' },
      secret: asyncSecret,
    }),
    field: 'body.data.header:bad header',
  },
  {
    name: 'Async custom header overriding the signature',
    send: service('Async', {
      data: { ...asyncData, 'header:X-Hub-Signature': '1' },
      secret: asyncSecret,
    }),
    field: 'body.data.header:X-Hub-Signature',
  },
  {
    name: 'Async unknown data field',
    send: service('Async', { data: { ...asyncData, retries: 3 }, secret: asyncSecret }),
    field: 'body.data.retries',
  },
  {
    name: 'Email without provider',
    send: service('Email', { url: 'N/A', data: {} }),
    field: 'body.data.provider',
  },
  {
    name: 'PurecloudIDP secret of the wrong type',
    send: service('PurecloudIDP', { url: 'https://login.example', secret: 'abc' }),
    field: 'body.secret',
  },
  {
    name: 'webhook target without url',
    send: service('WebhookTransportTarget-crm', { data: {} }),
    field: 'body.url',
  },
  {
    name: 'webhook target with an unknown signature scheme',
    send: service('WebhookTransportTarget-crm', {
      url: 'https://crm.example',
      data: { signatures: ['md5'] },
    }),
    field: 'body.data.signatures.0',
  },
  {
    name: 'service body with an unknown field',
    send: service('PlatformUCS', { url: 'https://ucs.example', extra: 1 }),
    field: 'body.extra',
  },
  {
    name: 'service of an unknown tenant',
    send: service('SMS', { url: 'N/A' }, 'nobody'),
    status: 404,
    code: 'NEXUS_ERR_NOT_FOUND',
    field: '',
  },
  {
    name: 'channel name without prefix',
    send: channel('SMS_Main', { channelId: '1', endpoint: 'e' }),
    field: 'params.name',
  },
  {
    name: 'channel name with a space',
    send: channel('chat.SMS Main', { channelId: '1', endpoint: 'e' }),
    field: 'params.name',
  },
  {
    name: 'chat channel without endpoint',
    send: channel('chat.Main', { channelId: '1' }),
    field: 'body.endpoint',
  },
  {
    name: 'channel cxcOnly not a flag',
    send: channel('chat.Main', { channelId: '1', endpoint: 'e', cxcOnly: 'maybe' }),
    field: 'body.cxcOnly',
  },
  {
    name: 'channel id taken by another section',
    send: channel('chat.Other', { channelId: '15550001', endpoint: 'e' }),
    status: 409,
    code: 'NEXUS_ERR_CHANNEL_ID_TAKEN',
    field: 'body.channelId',
  },
];

describe('provisioning input validation', () => {
  const h = useHarness();

  it('answers every bad body with 400 (or its conflict), a code and the field, and stores nothing', async () => {
    const app = h().app();
    const admin = `Bearer ${h().config.adminToken}`;
    await request(app)
      .post('/nexus/v3/provisioning/tenants')
      .set('Authorization', admin)
      .send({ id: 't1', name: 'T1' })
      .expect(201);
    await request(app)
      .put('/nexus/v3/provisioning/channels/t1/chat.Main')
      .set('Authorization', admin)
      .send({ channelId: '15550001', endpoint: 'chat.Main' })
      .expect(201);
    const before = await counts(h());

    for (const testCase of CASES) {
      const res = await testCase.send(app, admin);
      const expected = {
        status: testCase.status ?? 400,
        code: testCase.code ?? 'NEXUS_ERR_VALIDATION',
      };
      expect({ status: res.status, code: res.body.status?.code }, testCase.name).toEqual(expected);
      if (testCase.field) expect(res.body.status.field, testCase.name).toBe(testCase.field);
      expect(res.body.status.message, testCase.name).toEqual(expect.any(String));
    }
    expect(await counts(h())).toEqual(before);
    // The channel that had the id is unchanged.
    const main = await request(app)
      .get('/nexus/v3/provisioning/channels/t1/chat.Main')
      .set('Authorization', admin)
      .expect(200);
    expect(main.body.data).toMatchObject({ channelId: '15550001', endpoint: 'chat.Main' });
  });
});

describe('OpenAPI document', () => {
  const h = useHarness();

  it('documents every route the app serves, and serves a reference page', async () => {
    const app = h().app();
    const doc = (await request(app).get('/nexus/v3/openapi.json').expect(200)).body;
    expect(doc.openapi).toBe('3.1.0');
    const documented = new Set<string>();
    for (const [path, operations] of Object.entries(doc.paths as Record<string, object>)) {
      for (const method of Object.keys(operations)) {
        documented.add(`${method.toUpperCase()} ${path}`);
      }
    }
    // Every route layer of the Express app, as "METHOD /path/{param}".
    const served = new Set<string>();
    const stack = (
      app as unknown as {
        router: { stack: { route?: { path: string; methods: Record<string, boolean> } }[] };
      }
    ).router.stack;
    for (const layer of stack) {
      if (!layer.route) continue;
      for (const method of Object.keys(layer.route.methods)) {
        served.add(`${method.toUpperCase()} ${layer.route.path.replace(/:(\w+)/g, '{$1}')}`);
      }
    }
    expect(served.size).toBeGreaterThan(20);
    expect([...served].filter(route => !documented.has(route))).toEqual([]);
    expect([...documented].filter(route => !served.has(route))).toEqual([]);

    const create = doc.paths['/nexus/v3/apikeys'].post;
    expect(create['x-permission']).toBe('nexus:provisioning:*');
    expect(create.requestBody.content['application/json'].schema.$ref).toBe(
      '#/components/schemas/ApiKeyCreate',
    );
    expect(doc.components.schemas.ApiKeyCreate.properties.permissions.items.enum).toContain(
      'nexus:consumer:chat',
    );

    // docs/permissions.md lists every route with the permission it needs, and the catalogue.
    const permissionsDoc = readFileSync(
      new URL('../../docs/permissions.md', import.meta.url),
      'utf8',
    );
    const table = [...permissionsDoc.matchAll(/^\| `([A-Z]+ \/[^`]*)` +\| ([^|]+?) +\|/gm)].map(
      match => [match[1], match[2]],
    );
    const expected = [...documented].map(operation => {
      const [method, path] = operation.split(' ') as [string, string];
      const op = doc.paths[path][method.toLowerCase()];
      const needs = op['x-permission']
        ? `\`${op['x-permission']}\``
        : op.security.length
          ? 'any valid credential'
          : 'public';
      return [operation, needs];
    });
    expect(Object.fromEntries(table)).toEqual(Object.fromEntries(expected));
    const catalogue = [...permissionsDoc.matchAll(/^\| `(nexus:[a-z:*]+)` +\|/gm)].map(
      match => match[1],
    );
    expect(catalogue.sort()).toEqual([...PERMISSION_NAMES].sort());

    const page = await request(app).get('/nexus/v3/docs/').expect(200);
    expect(page.text).toMatch(/swagger-ui/i);
  });
});
