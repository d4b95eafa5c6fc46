// k6 smoke test of provisioning: a tenant, an API key, services, a channel, reads, a revoke.
// Compatible with k6 v0.47 and later.
//
//   BASE_URL=https://nexus.example.com ADMIN_TOKEN=<operator token> k6 run loadtest/provisioning-smoke.js
//
// Environment: BASE_URL, ADMIN_TOKEN (required); VUS (1), ITERATIONS (1).
import http from 'k6/http';
import { check, fail } from 'k6';

const BASE_URL = __ENV.BASE_URL;
const ADMIN_TOKEN = __ENV.ADMIN_TOKEN;

/** @type {import('k6/options').Options} */
export const options = {
  vus: Number(__ENV.VUS || 1),
  iterations: Number(__ENV.ITERATIONS || 1),
  thresholds: { checks: ['rate==1'], http_req_failed: ['rate==0'] },
};

export function setup() {
  if (!BASE_URL || !ADMIN_TOKEN) fail('set BASE_URL and ADMIN_TOKEN');
}

export default function () {
  const admin = { Authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
  const tenant = `k6-${Date.now()}-${__VU}-${__ITER}`;
  const created = http.post(
    `${BASE_URL}/nexus/v3/provisioning/tenants`,
    JSON.stringify({ id: tenant, name: tenant, type: 'PureEngage' }),
    { headers: admin },
  );
  check(created, { 'tenant created': r => r.status === 201 });

  const key = http.post(
    `${BASE_URL}/nexus/v3/apikeys`,
    JSON.stringify({
      enabled: true,
      tenant,
      name: 'k6 provisioning',
      permissions: ['nexus:provisioning:*'],
    }),
    { headers: admin },
  );
  check(key, { 'key created': r => r.status === 201 });
  const apiKey = /** @type {{key: string, id: string}} */ (key.json());
  const asKey = { 'x-api-key': apiKey.key, 'x-ccid': tenant, 'content-type': 'application/json' };

  const sms = http.post(
    `${BASE_URL}/nexus/v3/provisioning/services/${tenant}/SMS`,
    JSON.stringify({ url: 'N/A', data: { provider: 'Async' }, secret: {} }),
    { headers: asKey },
  );
  check(sms, { 'SMS service created': r => r.status === 201 });
  const mgage = http.post(
    `${BASE_URL}/nexus/v3/provisioning/services/${tenant}/mGageSMS`,
    JSON.stringify({
      url: 'https://directtext.example',
      data: {},
      secret: { username: 'u', password: 'p' },
    }),
    { headers: asKey },
  );
  check(mgage, { 'mGageSMS service created': r => r.status === 201 });
  const channel = http.put(
    `${BASE_URL}/nexus/v3/provisioning/channels/${tenant}/chat.K6_Main`,
    JSON.stringify({ channelId: `1555${__VU}${__ITER}`, endpoint: 'chat.K6' }),
    { headers: asKey },
  );
  check(channel, { 'channel created': r => r.status === 201 });

  const read = http.get(`${BASE_URL}/nexus/v3/provisioning/services/${tenant}/mGageSMS`, {
    headers: asKey,
  });
  check(read, {
    'service read': r => r.status === 200,
    'secret not returned': r =>
      !String(r.body).includes('"p"') && String(r.body).includes('"password":true'),
  });
  const revoked = http.del(`${BASE_URL}/nexus/v3/apikeys/${apiKey.id}`, null, { headers: admin });
  check(revoked, { 'key revoked': r => r.status === 200 });
  const refused = http.get(`${BASE_URL}/nexus/v3/provisioning/services/${tenant}`, {
    headers: asKey,
    responseCallback: http.expectedStatuses(401),
  });
  check(refused, { 'revoked key refused': r => r.status === 401 });
}
