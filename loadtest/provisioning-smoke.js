// k6 smoke test of provisioning: a tenant, an API key, services, a channel, reads, a revoke, and
// the tenant disabled again. Compatible with k6 v0.47 and later.
//
//   npm start   # then, in another shell:
//   k6 run loadtest/provisioning-smoke.js
//   BASE_URL=https://nexus.example.com ADMIN_TOKEN=<operator token> k6 run loadtest/provisioning-smoke.js
//
// Environment (every variable has a default; docs/loadtest.md has the details):
//   BASE_URL     the hub (http://localhost:4000, where `npm start` listens)
//   ADMIN_TOKEN  a cluster operator's token (nexus-dev-admin-token: what `npm start` uses when
//                NEXUS_ADMIN_TOKEN is unset)
//   VUS (1), ITERATIONS (1): that many rounds shared by the VUs; or
//   DURATION     (unset) when set, the VUS repeat rounds for that long instead (`20s`, `5m`)
// Every round provisions a tenant `k6-<time>-<vu>-<iteration>` of its own and disables it at the
// end (its rows stay, as a disabled tenant's do). The knobs are not named K6_*: k6 reads K6_VUS,
// K6_DURATION, … as its own options, which would replace the scenario below.
import http from 'k6/http';
import { check } from 'k6';

const BASE_URL = (__ENV.BASE_URL || 'http://localhost:4000').replace(/\/+$/, '');
const ADMIN_TOKEN = __ENV.ADMIN_TOKEN || 'nexus-dev-admin-token';
const VUS = positive('VUS', 1);

/**
 * A positive whole number from the environment, or the default.
 * @param {string} name
 * @param {number} fallback
 */
function positive(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    provisioning: __ENV.DURATION
      ? { executor: 'constant-vus', vus: VUS, duration: __ENV.DURATION }
      : {
          executor: 'shared-iterations',
          vus: Math.min(VUS, positive('ITERATIONS', 1)),
          iterations: positive('ITERATIONS', 1),
        },
  },
  thresholds: { checks: ['rate==1'], http_req_failed: ['rate==0'] },
};

export default function () {
  const admin = { Authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
  const tenant = `k6-${Date.now()}-${__VU}-${__ITER}`;
  const created = http.post(
    `${BASE_URL}/nexus/v3/provisioning/tenants`,
    JSON.stringify({ id: tenant, name: tenant, type: 'PureEngage' }),
    { headers: admin, tags: { name: 'create tenant' } },
  );
  if (!check(created, { 'tenant created': r => r.status === 201 })) return;

  const key = http.post(
    `${BASE_URL}/nexus/v3/apikeys`,
    JSON.stringify({
      enabled: true,
      tenant,
      name: 'k6 provisioning',
      permissions: ['nexus:provisioning:*'],
    }),
    { headers: admin, tags: { name: 'create key' } },
  );
  if (!check(key, { 'key created': r => r.status === 201 })) return;
  const apiKey = /** @type {{key: string, id: string}} */ (key.json());
  const asKey = { 'x-api-key': apiKey.key, 'x-ccid': tenant, 'content-type': 'application/json' };

  const sms = http.post(
    `${BASE_URL}/nexus/v3/provisioning/services/${tenant}/SMS`,
    JSON.stringify({ url: 'N/A', data: { provider: 'Async' }, secret: {} }),
    { headers: asKey, tags: { name: 'create service' } },
  );
  check(sms, { 'SMS service created': r => r.status === 201 });
  const mgage = http.post(
    `${BASE_URL}/nexus/v3/provisioning/services/${tenant}/mGageSMS`,
    JSON.stringify({
      url: 'https://directtext.example',
      data: {},
      secret: { username: 'u', password: 'p' },
    }),
    { headers: asKey, tags: { name: 'create service' } },
  );
  check(mgage, { 'mGageSMS service created': r => r.status === 201 });
  // A sender id belongs to one channel of the whole hub: the tenant's own id is one no earlier
  // run (nor another VU) holds.
  const channel = http.put(
    `${BASE_URL}/nexus/v3/provisioning/channels/${tenant}/chat.K6_Main`,
    JSON.stringify({ channelId: tenant, endpoint: 'chat.K6' }),
    { headers: asKey, tags: { name: 'create channel' } },
  );
  check(channel, { 'channel created': r => r.status === 201 });

  const read = http.get(`${BASE_URL}/nexus/v3/provisioning/services/${tenant}/mGageSMS`, {
    headers: asKey,
    tags: { name: 'read service' },
  });
  check(read, {
    'service read': r => r.status === 200,
    'secret not returned': r =>
      !String(r.body).includes('"p"') && String(r.body).includes('"password":true'),
  });
  const revoked = http.del(`${BASE_URL}/nexus/v3/apikeys/${apiKey.id}`, null, {
    headers: admin,
    tags: { name: 'revoke key' },
  });
  check(revoked, { 'key revoked': r => r.status === 200 });
  const refused = http.get(`${BASE_URL}/nexus/v3/provisioning/services/${tenant}`, {
    headers: asKey,
    tags: { name: 'revoked key' },
    responseCallback: http.expectedStatuses(401),
  });
  check(refused, { 'revoked key refused': r => r.status === 401 });
  const disabled = http.del(`${BASE_URL}/nexus/v3/provisioning/tenants/${tenant}`, null, {
    headers: admin,
    tags: { name: 'disable tenant' },
  });
  check(disabled, { 'tenant disabled': r => r.status === 200 });
}
