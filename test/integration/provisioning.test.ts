import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLogger } from '../../lib/logger.js';
import { createHarness, type Harness } from '../helpers/harness.js';
import { startIdentityProvider, type IdentityProvider } from '../helpers/identity-provider.js';

/** The guide's variables (`$ccId`, `$tenantName`, ...), substituted. */
const $ccid = '578ec98e-f07c-46ad-9675-f36c22f3ba9f';
const $tenantName = 'premise_tenant';
const $tenantUser = 'nexus';
const $tenantUserPassword = 'nexus_password-CLEAR-1';
const $gwsURL = 'https://gws.mydomain.com';
const $ucsURL = 'https://ucs.mydomain.com';
const $kaleyraURL = 'http://directtext.mgage.com';
const $kaleyraUserName = 'kaleyra-user';
const $kaleyraPassword = 'kaleyra-password-CLEAR-2';
const $asyncPhoneNumber = '16504661149';
const $asyncEmailDomain = 'company.com';
const $asyncWebhookURL = 'https://genesys-webhook.company.com';
const $asyncWebhookSignatureKey = 'async-webhook-secret-CLEAR-3';
const $asyncAPISignatureKey = 'async-api-secret-CLEAR-4';
const $gcLoginURL = 'https://login.mypurecloud.com';
const $gcAPIURL = 'https://api.mypurecloud.com';
const $clientId = '4da40a9de-b113-4024-8ba9-c9dd89c91f67';
const $clientSecret = 'aKSXEgLO57cm6FqxD4hrjkcW-CLEAR-5';
const $sparkpostURL = 'https://api.sparkpost.com/api/v1';
const $sparkpostApikey = 'sparkpost-apikey-CLEAR-6';
const $athenaURL = 'https://athena.local/athena/v1/agent-assist-chat/messages';

const CLEAR_TEXT_SECRETS = [
  $tenantUserPassword,
  $kaleyraPassword,
  $asyncWebhookSignatureKey,
  $asyncAPISignatureKey,
  $clientSecret,
  $sparkpostApikey,
];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('provisioning as the guide does it', () => {
  let idp: IdentityProvider;
  let h: Harness;
  const logLines: string[] = [];

  beforeAll(async () => {
    idp = await startIdentityProvider();
  });
  afterAll(() => idp.close());
  beforeEach(async () => {
    logLines.length = 0;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(chunk.toString());
        done();
      },
    });
    h = await createHarness(
      { NEXUS_JWT_ISSUER: idp.issuer, NEXUS_JWT_JWKS_URL: idp.jwksUrl },
      { log: createLogger('debug', sink) },
    );
  });
  afterEach(() => h.close());

  it('replays the guide: tenant, API keys, SMS / Async / Email services, AI connector target', async () => {
    const app = h.app();
    // "Get the authentication token": here, JWTs from the configured issuer.
    const $outGWSAccessToken = await idp.sign({
      sub: `${$ccid}\\${$tenantUser}`,
      ccid: $ccid,
      role: 'admin',
    });
    const $outClusterGWSAccessToken = await idp.sign({ sub: 'ops', role: 'cluster' });

    // Enable a tenant › Provision the tenant in Digital Channels
    const tenant = await request(app)
      .post('/nexus/v3/provisioning/tenants')
      .set('Authorization', `Bearer ${$outGWSAccessToken}`)
      .set('Content-Type', 'application/json')
      .send({
        id: $ccid,
        name: $tenantName,
        type: 'PureEngage',
        backendurl: $gwsURL,
        username: $tenantUser,
        token: $tenantUserPassword,
        genesystenantid: 1,
      })
      .expect(201);
    expect(tenant.body).toEqual({
      status: { code: 0 },
      data: { xapikey: expect.stringMatching(UUID) },
      operationId: expect.any(String),
    });
    const $nexusApiKey = tenant.body.data.xapikey as string;
    const chatKey = await request(app)
      .get('/nexus/v3/apikeys/current')
      .set('x-api-key', $nexusApiKey)
      .expect(200);
    expect(chatKey.body).toMatchObject({
      tenant: $ccid,
      permissions: ['nexus:consumer:chat'],
      enabled: true,
    });

    // Provision API keys › Tenant API keys (the guide sends the bare token)
    const guideKeyFields = {
      id: expect.stringMatching(UUID),
      enabled: true,
      created: expect.any(String),
      revoked: false,
      expires: false,
      createdby: expect.any(String),
      capacity: 120,
      frequency: 60,
      key: expect.stringMatching(UUID),
    };
    const tenantKey = await request(app)
      .post('/nexus/v3/apikeys')
      .set('Authorization', $outGWSAccessToken)
      .set('Content-Type', 'application/json')
      .send({
        enabled: true,
        tenant: $ccid,
        name: `API key for ${$tenantName}`,
        permissions: ['nexus:consumer:chat'],
      })
      .expect(201);
    expect(tenantKey.body).toEqual({
      ...guideKeyFields,
      tenant: $ccid,
      name: `API key for ${$tenantName}`,
      permissions: ['nexus:consumer:chat'],
      createdby: `${$ccid}\\${$tenantUser}`,
    });

    // › Cluster API keys
    const clusterKey = await request(app)
      .post('/nexus/v3/apikeys')
      .set('Authorization', $outClusterGWSAccessToken)
      .set('Content-Type', 'application/json')
      .send({
        enabled: true,
        tenant: '*',
        name: 'Cluster API key',
        permissions: ['nexus:cluster:*'],
      })
      .expect(201);
    expect(clusterKey.body).toEqual({
      ...guideKeyFields,
      tenant: '*',
      name: 'Cluster API key',
      permissions: ['nexus:cluster:*'],
      createdby: 'ops',
    });
    const $apiKey = clusterKey.body.key as string;

    // › Designer API key
    const designerKey = await request(app)
      .post('/nexus/v3/apikeys')
      .set('Authorization', $outGWSAccessToken)
      .send({
        enabled: true,
        tenant: $ccid,
        name: 'Designer API key',
        permissions: ['nexus:designer:chat'],
      })
      .expect(201);
    expect(designerKey.body).toMatchObject({
      tenant: $ccid,
      permissions: ['nexus:designer:chat'],
      capacity: 120,
    });

    const service = (name: string, body: unknown, status = 201) =>
      request(app)
        .post(`/nexus/v3/provisioning/services/${$ccid}/${name}`)
        .set('Content-Type', 'application/json')
        .set('x-api-key', $apiKey)
        .set('x-ccid', $ccid)
        .send(body as object)
        .expect(status);

    // Provision the Universal Contact Service connection
    await service('PlatformUCS', { url: $ucsURL, secret: {}, data: {} });
    // SMS, option 1: Kaleyra
    await service('SMS', { url: 'N/A', data: { provider: 'mGage' }, secret: {} });
    // (the guide's body lacks the comma after "url"; sent here as valid JSON)
    await service('mGageSMS', {
      url: $kaleyraURL,
      data: {},
      secret: { username: $kaleyraUserName, password: $kaleyraPassword },
    });
    // SMS, option 2: custom gateway
    const asyncBody = {
      data: {
        channels: [
          { channelId: $asyncPhoneNumber, webhook: { url: $asyncWebhookURL } },
          { channelId: $asyncEmailDomain, webhook: { url: $asyncWebhookURL } },
        ],
      },
      secret: {
        channels: [
          {
            channelId: $asyncPhoneNumber,
            webhook: { secret: $asyncWebhookSignatureKey },
            api: { secret: $asyncAPISignatureKey },
          },
          {
            channelId: $asyncEmailDomain,
            webhook: { secret: $asyncWebhookSignatureKey },
            api: { secret: $asyncAPISignatureKey },
          },
        ],
      },
    };
    await service('Async', asyncBody);
    const smsAsync = await service(
      'SMS',
      { url: 'N/A', data: { provider: 'Async' }, secret: {} },
      200,
    );
    expect(smsAsync.body.data).toMatchObject({ data: { provider: 'Async' }, version: 2 });
    // SMS, option 3: Genesys Cloud SMS aggregation
    await service('PurecloudIDP', {
      url: $gcLoginURL,
      secret: { clientId: $clientId, clientSecret: $clientSecret },
      data: {},
    });
    await service('SMS', { url: 'N/A', secret: {}, data: { tokenProvider: 'Purecloud' } }, 200);
    await service('PorticoSMS', { url: $gcAPIURL, secret: {}, data: {} });
    // Email, option 1: SparkPost (the guide's body lacks its closing brace; sent here as valid JSON)
    await service('Email', { url: 'N/A', secret: {}, data: { provider: 'SparkPost' } });
    await service('SparkPostEmail', {
      url: $sparkpostURL,
      secret: { apikey: $sparkpostApikey },
      data: {},
    });
    // Email, option 2: custom gateway
    await service('Async', asyncBody, 200);
    await service('Email', { url: 'N/A', data: { provider: 'Async' }, secret: {} }, 200);
    // Email, option 3: Genesys Cloud
    await service('PorticoEmail', { url: $gcAPIURL, secret: {}, data: {} });

    // AI Connector › Registering webhook to Digital Channels
    await request(app)
      .post(`/nexus/v3/provisioning/services/${$ccid}/WebhookTransportTarget-ai-connector`)
      .set('Authorization', `Bearer ${$outGWSAccessToken}`)
      .set('Content-Type', 'application/json')
      .send({ url: $athenaURL })
      .expect(201);

    // Provision sender IDs (chat.*) and email domains (cxc.*)
    const channel = await request(app)
      .put(`/nexus/v3/provisioning/channels/${$ccid}/chat.SMS_Main_Corporate`)
      .set('x-api-key', $apiKey)
      .set('x-ccid', $ccid)
      .send({
        channelId: $asyncPhoneNumber,
        channelType: 'sms',
        endpoint: 'chat.SMS_Routing',
        interactionSubtype: 'SMS',
        interactionType: 'Inbound',
        media: 'chat',
        cxcOnly: 'false',
        provider: 'Async',
      })
      .expect(201);
    expect(channel.body.data).toMatchObject({
      name: 'chat.SMS_Main_Corporate',
      channelId: $asyncPhoneNumber,
      cxcOnly: false,
    });
    const domain = await request(app)
      .put(`/nexus/v3/provisioning/channels/${$ccid}/cxc.Corporate_Promotions`)
      .set('x-api-key', $apiKey)
      .set('x-ccid', $ccid)
      .send({ channelId: $asyncEmailDomain, channelType: 'email', provider: 'Async' })
      .expect(201);
    expect(domain.body.data).toMatchObject({
      channelType: 'email',
      provider: 'Async',
      endpoint: null,
    });

    // Reads say which secrets are set, never their values.
    const services = await request(app)
      .get(`/nexus/v3/provisioning/services/${$ccid}`)
      .set('x-api-key', $apiKey)
      .set('x-ccid', $ccid)
      .expect(200);
    const byName = Object.fromEntries(
      (services.body.data.items as { name: string }[]).map(item => [item.name, item]),
    );
    expect(Object.keys(byName).sort()).toEqual(
      [
        'Async',
        'Email',
        'PlatformUCS',
        'PorticoEmail',
        'PorticoSMS',
        'PurecloudIDP',
        'SMS',
        'SparkPostEmail',
        'WebhookTransportTarget-ai-connector',
        'mGageSMS',
      ].sort(),
    );
    expect(byName.mGageSMS).toMatchObject({
      url: $kaleyraURL,
      secret: { username: true, password: true },
    });
    expect(byName.Async).toMatchObject({
      data: asyncBody.data,
      secret: {
        channels: [
          { channelId: $asyncPhoneNumber, webhook: { secret: true }, api: { secret: true } },
          { channelId: $asyncEmailDomain },
        ],
      },
      version: 2,
    });
    expect(byName['WebhookTransportTarget-ai-connector']).toMatchObject({
      url: $athenaURL,
      data: {},
      secret: {},
    });
    const tenantRead = await request(app)
      .get(`/nexus/v3/provisioning/tenants/${$ccid}`)
      .set('Authorization', $outGWSAccessToken)
      .expect(200);
    expect(tenantRead.body.data).toMatchObject({
      id: $ccid,
      name: $tenantName,
      token: true,
      genesystenantid: 1,
      enabled: true,
    });

    // No clear-text secret or API key in a database dump or in the logs.
    const { stdout: dump } = await promisify(execFile)('pg_dump', ['--data-only', h.dbUrl], {
      maxBuffer: 64 * 1024 * 1024,
    });
    const logs = logLines.join('');
    expect(logs.length).toBeGreaterThan(0);
    for (const secret of [
      ...CLEAR_TEXT_SECRETS,
      $nexusApiKey,
      $apiKey,
      tenantKey.body.key as string,
      $outGWSAccessToken,
    ]) {
      expect(dump, 'database dump').not.toContain(secret);
      expect(logs, 'logs').not.toContain(secret);
    }
    expect(dump).toMatch(/v1\.[0-9a-f]{8}\./); // sealed secrets are there
  });

  it('refuses a second tenant with the same id and keeps the first', async () => {
    const app = h.app();
    const admin = `Bearer ${h.config.adminToken}`;
    await request(app)
      .post('/nexus/v3/provisioning/tenants')
      .set('Authorization', admin)
      .send({ id: 't1', name: 'First' })
      .expect(201);
    const again = await request(app)
      .post('/nexus/v3/provisioning/tenants')
      .set('Authorization', admin)
      .send({ id: 't1', name: 'Second' })
      .expect(409);
    expect(again.body.status).toEqual({
      code: 'NEXUS_ERR_TENANT_EXISTS',
      message: 'A tenant with id t1 already exists',
      field: 'body.id',
    });
    const read = await request(app)
      .get('/nexus/v3/provisioning/tenants/t1')
      .set('Authorization', admin)
      .expect(200);
    expect(read.body.data.name).toBe('First');
    expect(
      await h.db.oneFirst(
        sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM api_keys`,
      ),
    ).toBe(1);
  });
});
