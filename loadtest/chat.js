// k6 load test of customer chat: start a session (form fields, as the widget), send messages,
// read the transcript. Compatible with k6 v0.47 and later (plain ES modules).
//
//   BASE_URL=https://nexus.example.com CHAT_KEY=<tenant xapikey> k6 run loadtest/chat.js
//
// Environment: BASE_URL (required), CHAT_KEY (required: a key with nexus:consumer:chat and a
// capacity above the load), ENDPOINT (GlobalChatSwitchboard: a chat endpoint of the tenant that
// leads to a routing queue), VUS (20), DURATION (1m), MESSAGES (10 per session), P95_MS (500).
import http from 'k6/http';
import { check, fail } from 'k6';

const BASE_URL = __ENV.BASE_URL;
const CHAT_KEY = __ENV.CHAT_KEY;
const MESSAGES = Number(__ENV.MESSAGES || 10);

/** @type {import('k6/options').Options} */
export const options = {
  vus: Number(__ENV.VUS || 20),
  duration: __ENV.DURATION || '1m',
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: [`p(95)<${Number(__ENV.P95_MS || 500)}`],
    checks: ['rate>0.99'],
  },
};

export function setup() {
  if (!BASE_URL || !CHAT_KEY) fail('set BASE_URL and CHAT_KEY');
}

/**
 * @param {string} key
 * @param {string} value
 */
const field = (key, value) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`;

export default function () {
  const form = [field('data[nickname]', `k6 ${__VU}`), field('data[email]', `vu${__VU}@k6.test`)];
  form.push(field('data[endpoint]', __ENV.ENDPOINT ?? 'GlobalChatSwitchboard'));
  const started = http.post(`${BASE_URL}/nexus/v3/chat/sessions`, form.join('&'), {
    headers: { 'x-api-key': CHAT_KEY, 'content-type': 'application/x-www-form-urlencoded' },
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
