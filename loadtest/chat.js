// k6 load test of customer chat: start a session (form fields, as the widget), send messages,
// read the transcript. Compatible with k6 v0.47 and later (plain ES modules; k6 v0.47 compiles
// no numeric separators).
//
//   npm start   # then, in another shell:
//   k6 run loadtest/chat.js
//   BASE_URL=https://nexus.example.com CHAT_KEY=<tenant chat key> k6 run loadtest/chat.js
//
// Environment (every variable has a default; docs/loadtest.md has the details):
//   BASE_URL     the hub (http://localhost:4000, where `npm start` listens)
//   CHAT_KEY     a key with nexus:consumer:chat and a capacity above the load, whose tenant has
//                ENDPOINT leading to a routing queue. Unset: setup() provisions a tenant
//                `k6-chat-<time>` with ENDPOINT, a queue `Main` and such a key, using ADMIN_TOKEN,
//                and teardown() disables that tenant.
//   ADMIN_TOKEN  the operator token for that provisioning (nexus-dev-admin-token: what `npm start`
//                uses when NEXUS_ADMIN_TOKEN is unset)
//   ENDPOINT     the chat endpoint sessions start on (GlobalChatSwitchboard)
//   VUS (20), DURATION (1m), MESSAGES (10 per session), P95_MS (500)
//   RATE         sessions started per second (an open model: constant arrival rate, up to VUS
//                virtual users). Unset: the VUS loop as fast as the hub answers.
// The knobs are not named K6_*: k6 reads K6_VUS, K6_DURATION, … as its own options, which would
// replace the scenario below.
import http from 'k6/http';
import { check, fail } from 'k6';

const BASE_URL = (__ENV.BASE_URL || 'http://localhost:4000').replace(/\/+$/, '');
const ADMIN_TOKEN = __ENV.ADMIN_TOKEN || 'nexus-dev-admin-token';
const ENDPOINT = __ENV.ENDPOINT || 'GlobalChatSwitchboard';
const MESSAGES = positive('MESSAGES', 10);
const VUS = positive('VUS', 20);
const DURATION = __ENV.DURATION || '1m';
const RATE = __ENV.RATE ? positive('RATE', 1) : undefined;

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
    chat: RATE
      ? {
          executor: 'constant-arrival-rate',
          rate: RATE,
          timeUnit: '1s',
          duration: DURATION,
          preAllocatedVUs: Math.min(VUS, RATE * 2),
          maxVUs: VUS,
        }
      : { executor: 'constant-vus', vus: VUS, duration: DURATION },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: [`p(95)<${positive('P95_MS', 500)}`],
    checks: ['rate>0.99'],
  },
};

/**
 * @param {string} key
 * @param {string} value
 */
const field = (key, value) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`;

const adminHeaders = () => ({
  Authorization: `Bearer ${ADMIN_TOKEN}`,
  'content-type': 'application/json',
});

/**
 * The chat key to load with: CHAT_KEY, or one of a tenant provisioned here.
 * @returns {{key: string, tenant?: string}}
 */
export function setup() {
  if (__ENV.CHAT_KEY) return { key: __ENV.CHAT_KEY };
  const tenant = `k6-chat-${Date.now()}`;
  const admin = { headers: adminHeaders(), tags: { name: 'provision' } };
  const created = http.post(
    `${BASE_URL}/nexus/v3/provisioning/tenants`,
    JSON.stringify({ id: tenant, name: tenant }),
    admin,
  );
  if (created.status === 0) fail(`${BASE_URL} does not answer (BASE_URL?): ${created.error}`);
  if (created.status !== 201) {
    fail(`provisioning a tenant at ${BASE_URL} answered ${created.status} (ADMIN_TOKEN?)`);
  }
  const endpoint = http.put(
    `${BASE_URL}/nexus/v3/provisioning/endpoints/${tenant}/${ENDPOINT}`,
    '{}',
    admin,
  );
  const queue = http.put(
    `${BASE_URL}/nexus/v3/provisioning/queues/${tenant}/Main`,
    JSON.stringify({ endpoints: [ENDPOINT] }),
    admin,
  );
  // The tenant's own chat key allows 120 requests a minute; the load needs more.
  const key = http.post(
    `${BASE_URL}/nexus/v3/apikeys`,
    JSON.stringify({
      tenant,
      name: 'k6 chat load',
      permissions: ['nexus:consumer:chat'],
      capacity: 1000000,
      frequency: 60,
    }),
    admin,
  );
  for (const [what, res] of /** @type {const} */ ([
    ['endpoint', endpoint],
    ['queue', queue],
    ['API key', key],
  ])) {
    if (res.status !== 201) fail(`provisioning the ${what} answered ${res.status}: ${res.body}`);
  }
  return { key: /** @type {{key: string}} */ (key.json()).key, tenant };
}

/** @param {{key: string, tenant?: string}} data */
export default function (data) {
  const form = [field('data[nickname]', `k6 ${__VU}`), field('data[email]', `vu${__VU}@k6.test`)];
  form.push(field('data[endpoint]', ENDPOINT));
  const started = http.post(`${BASE_URL}/nexus/v3/chat/sessions`, form.join('&'), {
    headers: { 'x-api-key': data.key, 'content-type': 'application/x-www-form-urlencoded' },
    tags: { name: 'start session' },
  });
  if (!check(started, { 'session started (201)': r => r.status === 201 })) return;
  const session = /** @type {{data: {selfUri: string, clientToken: string}}} */ (started.json());
  const headers = {
    'x-nexus-client-key': session.data.clientToken,
    'content-type': 'application/x-www-form-urlencoded',
  };
  for (let i = 0; i < MESSAGES; i++) {
    const body = [
      field('data[type]', 'Text'),
      field('data[text]', `message ${i} from VU ${__VU} iteration ${__ITER}`),
      field('data[clientMessageId]', `${__VU}-${__ITER}-${i}`),
    ].join('&');
    const sent = http.post(`${session.data.selfUri}/messages`, body, {
      headers,
      tags: { name: 'send message' },
    });
    check(sent, { 'message accepted (202)': r => r.status === 202 });
  }
  const transcript = http.get(`${session.data.selfUri}/messages?after=0`, {
    headers,
    tags: { name: 'read transcript' },
  });
  check(transcript, { 'transcript read (200)': r => r.status === 200 });
}

/**
 * Disables the tenant setup() provisioned (its data stays; its keys stop working).
 * @param {{key: string, tenant?: string}} data
 */
export function teardown(data) {
  if (!data.tenant) return;
  const disabled = http.del(`${BASE_URL}/nexus/v3/provisioning/tenants/${data.tenant}`, null, {
    headers: adminHeaders(),
    tags: { name: 'provision' },
  });
  if (disabled.status !== 200) fail(`disabling ${data.tenant} answered ${disabled.status}`);
}
