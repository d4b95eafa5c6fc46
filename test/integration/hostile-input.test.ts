import { createHmac } from 'node:crypto';
import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { connect, provisionChatTenant } from '../helpers/chat.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';

/**
 * A hostile tester's corpus against every body-taking route: NUL characters in each kind of
 * field, ids and cursors past bigint, malformed and misdeclared bodies, hop-by-hop custom
 * headers, bad Standard Webhooks secrets. Each must answer its coded 4xx naming the field, never
 * a 5xx, and store nothing.
 */

const TENANT = 'chat-tenant';
const NUMBER = '+18005550100';
const API_SECRET = 'api-secret-of-the-channel';
const NUL = '\u0000';
const HUGE = '99999999999999999999';

interface Case {
  name: string;
  send: () => request.Test;
  status: number;
  code: string;
  /** The field the answer names (exactly), when it names one. */
  field?: string;
}

/** Rows in every table of the schema, by table. */
async function rowCounts(h: Harness): Promise<Record<string, number>> {
  const tables = await h.db.anyFirst(sql.type(z.object({ table_name: z.string() }))`
    SELECT table_name FROM information_schema.tables
    WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`);
  const counts: Record<string, number> = {};
  for (const table of tables) {
    counts[table] = await h.db.oneFirst(
      sql.type(
        z.object({ n: z.number() }),
      )`SELECT count(*)::int AS n FROM ${sql.identifier([table])}`,
    );
  }
  return counts;
}

async function setup(h: Harness) {
  const app = h.app();
  const t = await provisionChatTenant(h, app, TENANT);
  const admin = { Authorization: `Bearer ${h.config.adminToken}` };
  const agent = { Authorization: `Bearer ${t.agent.token}` };
  const smsKey = (
    await request(app)
      .post('/nexus/v3/apikeys')
      .set(admin)
      .send({ tenant: TENANT, name: 'aggregator', permissions: ['nexus:sms:webhook'] })
      .expect(201)
  ).body.key as string;
  await request(app)
    .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Main`)
    .set(admin)
    .send({ channelId: NUMBER, endpoint: 'GlobalChatSwitchboard', provider: 'Async' })
    .expect(201);
  await request(app)
    .put(`/nexus/v3/provisioning/services/${TENANT}/Async`)
    .set(admin)
    .send({
      url: 'N/A',
      data: { channels: [{ channelId: NUMBER, webhook: { url: 'https://gateway.example/hook' } }] },
      secret: {
        channels: [{ channelId: NUMBER, webhook: { secret: 'w' }, api: { secret: API_SECRET } }],
      },
    })
    .expect(201);
  const session = (
    await request(app)
      .post('/nexus/v3/chat/sessions')
      .set('x-api-key', t.chatKey)
      .send({ data: { nickname: 'Ann', endpoint: 'GlobalChatSwitchboard' } })
      .expect(201)
  ).body.data as { id: string; clientToken: string; interactionId: string };
  await request(app)
    .post(`/nexus/v3/agent/interactions/${session.interactionId}/join`)
    .set(agent)
    .expect(200);
  return { app, t, admin, agent, smsKey, session };
}

type Setup = Awaited<ReturnType<typeof setup>>;

/** A Third-Party Messaging API request, signed over its exact bytes. */
const signed = (s: Setup, path: string, raw: string | Buffer, type = 'application/json') =>
  request(s.app)
    .post(`/nexus/v3/channels/${encodeURIComponent(NUMBER)}/${path}`)
    .set('x-ccid', TENANT)
    .set('Content-Type', type)
    .set('X-Hub-Signature', `sha1=${createHmac('sha1', API_SECRET).update(raw).digest('hex')}`)
    .send(raw);

function corpus(s: Setup): Case[] {
  const { app, admin, agent, smsKey, session } = s;
  const chat = `/nexus/v3/chat/sessions/${session.id}`;
  const interaction = `/nexus/v3/agent/interactions/${session.interactionId}`;
  const services = `/nexus/v3/provisioning/services/${TENANT}`;
  const target = `${services}/WebhookTransportTarget-crm`;
  const mo = (form: string) =>
    request(app).post('/nexus/v3/sms/message').auth(TENANT, smsKey).type('form').send(form);
  const nul = (status = 400) => ({ status, code: 'NEXUS_ERR_VALIDATION' });
  const mo1001 = Array.from({ length: 1_001 }, (_, i) => `f${i}=x`).join('&');

  const cases: Case[] = [
    // --- A NUL character in each kind of field, on each body-taking route ---
    {
      name: 'chat session, form field',
      send: () =>
        request(app)
          .post('/nexus/v3/chat/sessions')
          .set('x-api-key', s.t.chatKey)
          .type('form')
          .send('data[nickname]=A%00nn&data[endpoint]=GlobalChatSwitchboard'),
      ...nul(),
      field: 'body.data[nickname]',
    },
    {
      name: 'chat session, JSON user data',
      send: () =>
        request(app)
          .post('/nexus/v3/chat/sessions')
          .set('x-api-key', s.t.chatKey)
          .send({
            data: { nickname: 'Ann', endpoint: 'GlobalChatSwitchboard', plan: `gold${NUL}` },
          }),
      ...nul(),
      field: 'body.data.plan',
    },
    {
      name: 'chat session, a NUL in a key',
      send: () =>
        request(app)
          .post('/nexus/v3/chat/sessions')
          .set('x-api-key', s.t.chatKey)
          .send({ data: { nickname: 'Ann', [`pl${NUL}an`]: 'gold' } }),
      ...nul(),
      field: 'body.data.pl\\u0000an',
    },
    {
      name: 'chat message, JSON text',
      send: () =>
        request(app)
          .post(`${chat}/messages`)
          .set('x-nexus-client-key', session.clientToken)
          .send({ data: { text: `hello${NUL}` } }),
      ...nul(),
      field: 'body.data.text',
    },
    {
      name: 'chat message, form text',
      send: () =>
        request(app)
          .post(`${chat}/messages`)
          .set('x-nexus-client-key', session.clientToken)
          .type('form')
          .send('data[text]=hel%00lo'),
      ...nul(),
      field: 'body.data[text]',
    },
    {
      name: 'chat message, clientMessageId',
      send: () =>
        request(app)
          .post(`${chat}/messages`)
          .set('x-nexus-client-key', session.clientToken)
          .send({ data: { text: 'hello', clientMessageId: `c${NUL}1` } }),
      ...nul(),
      field: 'body.data.clientMessageId',
    },
    {
      name: 'agent message',
      send: () =>
        request(app)
          .post(`${interaction}/messages`)
          .set(agent)
          .send({ text: `hi${NUL}` }),
      ...nul(),
      field: 'body.text',
    },
    {
      name: 'SMS MO (form), message',
      send: () =>
        mo(
          `device_address=%2B15551234567&inbound_address=${encodeURIComponent(NUMBER)}&message=hi%00`,
        ),
      ...nul(),
      field: 'body.message',
    },
    {
      name: 'SMS MO (form), inbound_address',
      send: () => mo('device_address=%2B15551234567&inbound_address=%2B1800%00&message=hi'),
      ...nul(),
      field: 'body.inbound_address',
    },
    {
      name: 'SMS MO (form), message_id',
      send: () =>
        mo(
          `device_address=%2B15551234567&inbound_address=${encodeURIComponent(NUMBER)}&message=hi&message_id=m%001`,
        ),
      ...nul(),
      field: 'body.message_id',
    },
    {
      name: 'SMS MO as a GET, message',
      send: () =>
        request(app)
          .get(
            `/nexus/v3/sms/message?device_address=%2B15551234567&inbound_address=${encodeURIComponent(NUMBER)}&message=hi%00`,
          )
          .auth(TENANT, smsKey),
      ...nul(),
      field: 'query.message',
    },
    {
      name: 'SMS receipt (form), messageId',
      send: () =>
        request(app)
          .post('/nexus/v3/sms/receipt')
          .auth(TENANT, smsKey)
          .type('form')
          .send('messageId=p%001&status=delivered'),
      ...nul(),
      field: 'body.messageId',
    },
    {
      name: 'Third-Party API, message text',
      send: () =>
        signed(
          s,
          'messages',
          JSON.stringify({ messages: [{ id: 'a', from: '+15551234567', text: `x${NUL}` }] }),
        ),
      ...nul(),
      field: 'body.messages.0.text',
    },
    {
      name: 'Third-Party API, message id',
      send: () =>
        signed(
          s,
          'messages',
          JSON.stringify({ messages: [{ id: `a${NUL}`, from: '+15551234567', text: 'x' }] }),
        ),
      ...nul(),
      field: 'body.messages.0.id',
    },
    {
      name: 'Third-Party API, receipt messageId',
      send: () =>
        signed(
          s,
          'receipts',
          JSON.stringify({ receipts: [{ messageId: `p${NUL}`, status: 'sent' }] }),
        ),
      ...nul(),
      field: 'body.receipts.0.messageId',
    },
    {
      name: 'Third-Party API, media filename',
      send: () =>
        signed(
          s,
          'media',
          Buffer.from(
            `--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a${NUL}.png"\r\nContent-Type: image/png\r\n\r\nPNG\r\n--XyZ--\r\n`,
          ),
          'multipart/form-data; boundary=XyZ',
        ),
      ...nul(),
      field: 'body.file',
    },
    {
      name: 'provisioning, tenant name',
      send: () =>
        request(app)
          .post('/nexus/v3/provisioning/tenants')
          .set(admin)
          .send({ id: 't2', name: `T${NUL}wo` }),
      ...nul(),
      field: 'body.name',
    },
    {
      name: 'provisioning, channel',
      send: () =>
        request(app)
          .put(`/nexus/v3/provisioning/channels/${TENANT}/chat.SMS_Other`)
          .set(admin)
          .send({ channelId: `+1800${NUL}`, endpoint: 'GlobalChatSwitchboard' }),
      ...nul(),
      field: 'body.channelId',
    },
    {
      name: 'provisioning, service data',
      send: () =>
        request(app)
          .put(`${services}/SmsKeywords`)
          .set(admin)
          .send({ url: 'N/A', data: { helpText: `Help${NUL}` } }),
      ...nul(),
      field: 'body.data.helpText',
    },
    {
      name: 'provisioning, queue name in the path',
      send: () =>
        request(app)
          .put(`/nexus/v3/provisioning/queues/${TENANT}/Ma%00in`)
          .set(admin)
          .send({ endpoints: ['GlobalChatSwitchboard'] }),
      ...nul(),
      field: 'params.name',
    },
    {
      name: 'provisioning, agent name',
      send: () =>
        request(app)
          .post('/nexus/v3/agents')
          .set({ ...admin, 'x-ccid': TENANT })
          .send({ username: 'bob', name: `Bob${NUL}` }),
      ...nul(),
      field: 'body.name',
    },
    {
      name: 'provisioning, API key name',
      send: () =>
        request(app)
          .post('/nexus/v3/apikeys')
          .set(admin)
          .send({ tenant: TENANT, name: `k${NUL}`, permissions: ['nexus:sms:webhook'] }),
      ...nul(),
      field: 'body.name',
    },
    {
      name: 'operations, query filter',
      send: () => request(app).get(`/nexus/v3/undelivered?tenant=a%00b`).set(admin),
      ...nul(),
      field: 'query.tenant',
    },
    {
      name: 'webhooks, target custom header value',
      send: () =>
        request(app)
          .put(target)
          .set(admin)
          .send({ url: 'https://crm.example/hooks', data: { 'header:X-Api-Key': `k${NUL}` } }),
      ...nul(),
      field: 'body.data.header:X-Api-Key',
    },
    {
      name: 'webhooks, target secret',
      send: () =>
        request(app)
          .put(target)
          .set(admin)
          .send({ url: 'https://crm.example/hooks', secret: `s${NUL}` }),
      ...nul(),
      field: 'body.secret',
    },
    {
      name: 'webhooks, target url',
      send: () =>
        request(app)
          .put(target)
          .set(admin)
          .send({ url: `https://crm.example/h${NUL}` }),
      ...nul(),
      field: 'body.url',
    },

    // --- Ids and cursors: decimal, within bigint (and exact in JavaScript) ---
    ...[HUGE, '-1', '1e3', '0x10', '1.5', '9007199254740993'].map(id => ({
      name: `webhook delivery id ${id}`,
      send: () => request(app).get(`/nexus/v3/webhooks/${TENANT}/deliveries/${id}`).set(admin),
      ...nul(),
      field: 'params.id',
    })),
    {
      name: 'undelivered replay of id past bigint',
      send: () => request(app).post(`/nexus/v3/undelivered/${HUGE}/replay`).set(admin),
      ...nul(),
      field: 'params.id',
    },
    {
      name: 'webhook deliveries cursor past bigint',
      send: () =>
        request(app).get(`/nexus/v3/webhooks/${TENANT}/deliveries?before=${HUGE}`).set(admin),
      ...nul(),
      field: 'query.before',
    },
    {
      name: 'undelivered cursor past bigint',
      send: () => request(app).get(`/nexus/v3/undelivered?before=${HUGE}`).set(admin),
      ...nul(),
      field: 'query.before',
    },
    {
      name: 'chat events cursor past bigint',
      send: () =>
        request(app)
          .get(`${chat}/messages?after=${HUGE}`)
          .set('x-nexus-client-key', session.clientToken),
      ...nul(),
      field: 'query.after',
    },
    {
      name: 'agent interaction cursor past bigint',
      send: () => request(app).get(`${interaction}?after=${HUGE}`).set(agent),
      ...nul(),
      field: 'query.after',
    },
    {
      name: 'campaign replies cursor past bigint',
      send: () =>
        request(app).get(`/nexus/v3/sms/campaigns/${TENANT}/c1/replies?after=${HUGE}`).set(admin),
      ...nul(),
      field: 'query.after',
    },
    {
      name: 'agent read of a seq past bigint',
      send: () =>
        request(app).post(`${interaction}/read`).set(agent).type('json').send(`{"seq": ${HUGE}}`),
      ...nul(),
      field: 'body.seq',
    },
    {
      name: 'customer read of a seq past bigint (form)',
      send: () =>
        request(app)
          .post(`${chat}/read`)
          .set('x-nexus-client-key', session.clientToken)
          .type('form')
          .send(`data[seq]=${HUGE}`),
      ...nul(),
      field: 'body.data.seq',
    },

    // --- Bodies the parsers refuse ---
    {
      name: '1,001 form parameters (SMS MO)',
      send: () => mo(mo1001),
      status: 413,
      code: 'NEXUS_ERR_TOO_MANY_PARAMETERS',
    },
    {
      name: 'Content-Encoding: gzip with a plain body',
      send: () =>
        request(app)
          .post('/nexus/v3/provisioning/tenants')
          .set(admin)
          .set('Content-Type', 'application/json')
          .set('Content-Encoding', 'gzip')
          .send('{"id":"t3","name":"Three"}'),
      status: 400,
      code: 'NEXUS_ERR_BAD_ENCODING',
      field: 'header.content-encoding',
    },
    {
      name: 'Content-Encoding: gzip with a plain form (SMS MO)',
      send: () =>
        request(app)
          .post('/nexus/v3/sms/message')
          .auth(TENANT, smsKey)
          .set('Content-Type', 'application/x-www-form-urlencoded')
          .set('Content-Encoding', 'gzip')
          .send('device_address=%2B15551234567&inbound_address=%2B18005550100&message=hi'),
      status: 400,
      code: 'NEXUS_ERR_BAD_ENCODING',
      field: 'header.content-encoding',
    },
    {
      name: 'Content-Encoding the hub does not know',
      send: () =>
        request(app)
          .post('/nexus/v3/provisioning/tenants')
          .set(admin)
          .set('Content-Type', 'application/json')
          .set('Content-Encoding', 'compress')
          .send('{"id":"t3","name":"Three"}'),
      status: 415,
      code: 'NEXUS_ERR_UNSUPPORTED_ENCODING',
      field: 'header.content-encoding',
    },
    {
      name: 'bad JSON',
      send: () =>
        request(app)
          .post('/nexus/v3/provisioning/tenants')
          .set(admin)
          .set('Content-Type', 'application/json')
          .send('{"id": "t3", "name": '),
      status: 400,
      code: 'NEXUS_ERR_BAD_JSON',
    },
    {
      name: 'JSON in a charset other than UTF-8',
      send: () =>
        request(app)
          .post('/nexus/v3/provisioning/tenants')
          .set(admin)
          .set('Content-Type', 'application/json; charset=latin1')
          .send('{"id":"t3","name":"Three"}'),
      status: 415,
      code: 'NEXUS_ERR_UNSUPPORTED_CHARSET',
    },
    {
      name: 'a form in an unknown charset',
      send: () =>
        request(app)
          .post('/nexus/v3/sms/message')
          .auth(TENANT, smsKey)
          .set('Content-Type', 'application/x-www-form-urlencoded; charset=klingon')
          .send('device_address=%2B15551234567&inbound_address=%2B18005550100&message=hi'),
      status: 415,
      code: 'NEXUS_ERR_UNSUPPORTED_CHARSET',
    },
    {
      name: 'JSON nested 10,000 deep',
      send: () =>
        request(app)
          .put(`${services}/SmsKeywords`)
          .set(admin)
          .set('Content-Type', 'application/json')
          .send(`{"url":"N/A","data":${'['.repeat(10_000)}${']'.repeat(10_000)}}`),
      ...nul(),
    },

    // --- Custom headers and Standard Webhooks secrets ---
    ...[
      'Transfer-Encoding',
      'Connection',
      'Keep-Alive',
      'Upgrade',
      'TE',
      'Trailer',
      'Expect',
      'Proxy-Authorization',
      'Host',
      'Content-Length',
      'Content-Encoding',
      'Content-Type',
      'X-Hub-Signature-256',
      'X-Hub-Signature-512',
      'webhook-signature',
      'Webhook-Version',
    ].map(name => ({
      name: `webhook target header:${name}`,
      send: () =>
        request(app)
          .put(target)
          .set(admin)
          .send({ url: 'https://crm.example/hooks', data: { [`header:${name}`]: 'chunked' } }),
      ...nul(),
      field: `body.data.header:${name}`,
    })),
    {
      name: 'provider header:Transfer-Encoding',
      send: () =>
        request(app)
          .put(`${services}/mGageSMS`)
          .set(admin)
          .send({
            url: 'https://directtext.example',
            data: { 'header:Transfer-Encoding': 'chunked' },
            secret: { username: 'u', password: 'p' },
          }),
      ...nul(),
      field: 'body.data.header:Transfer-Encoding',
    },
    {
      name: 'webhook target header value with a control character',
      send: () =>
        request(app)
          .put(target)
          .set(admin)
          .send({ url: 'https://crm.example/hooks', data: { 'header:X-Api-Key': 'a\u0007b' } }),
      ...nul(),
      field: 'body.data.header:X-Api-Key',
    },
    ...['whsec_not*base64!', 'whsec_YWJj', 'whsec_c2VjcmV0LWZvci10aGUtZXhhbXBsZQ', 'whsec_'].map(
      secret => ({
        name: `webhook target secret ${secret}`,
        send: () =>
          request(app).put(target).set(admin).send({ url: 'https://crm.example/hooks', secret }),
        ...nul(),
        field: 'body.secret',
      }),
    ),
    {
      name: 'webhook target secret {secret: whsec_…} not base64',
      send: () =>
        request(app)
          .put(target)
          .set(admin)
          .send({ url: 'https://crm.example/hooks', secret: { secret: 'whsec_%%%%' } }),
      ...nul(),
      field: 'body.secret.secret',
    },
  ];
  return cases;
}

describe('hostile input', () => {
  const h = useHarness();

  it('answers each hostile request with its coded 4xx naming the field, never a 5xx, and stores nothing', async () => {
    const s = await setup(h());
    const before = await rowCounts(h());
    const cases = corpus(s);
    const mismatches: unknown[] = [];
    for (const c of cases) {
      const res = await c.send();
      const status = res.body?.status as { code?: string; field?: string } | undefined;
      const got = { status: res.status, code: status?.code, field: status?.field };
      const want = {
        status: c.status,
        code: c.code,
        field: c.field === undefined ? got.field : c.field,
      };
      if (res.status >= 500 || JSON.stringify(got) !== JSON.stringify(want)) {
        mismatches.push({ case: c.name, got, want, message: res.body?.status?.message });
      }
    }
    expect(mismatches).toEqual([]);
    expect(await rowCounts(h())).toEqual(before);
    expect(cases.length).toBeGreaterThan(60);
  });

  it('refuses a NUL in messages sent over the sockets (customer and agent), storing nothing', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app, TENANT);
    const session = (
      await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname: 'Ann', endpoint: 'GlobalChatSwitchboard' } })
        .expect(201)
    ).body.data as { clientToken: string; interactionId: string };
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${session.interactionId}/join`)
      .set('Authorization', `Bearer ${t.agent.token}`)
      .expect(200);
    const customer = connect(api.url, '/chat', { token: session.clientToken });
    const agent = connect(api.url, '/agent', { token: t.agent.token });
    try {
      await Promise.all([customer.connected, agent.connected]);
      const before = await rowCounts(h());
      const acks = [
        await customer.socket.timeout(5_000).emitWithAck('message', { text: `hi${NUL}` }),
        await customer.socket
          .timeout(5_000)
          .emitWithAck('message', { text: 'hi', clientMessageId: `c${NUL}` }),
        await agent.socket
          .timeout(5_000)
          .emitWithAck('message', { interactionId: session.interactionId, text: `hi${NUL}` }),
        await customer.socket.timeout(5_000).emitWithAck('read', { seq: Number(HUGE) }),
        await agent.socket
          .timeout(5_000)
          .emitWithAck('message', { interactionId: `${session.interactionId}${NUL}`, text: 'hi' }),
        await agent.socket
          .timeout(5_000)
          .emitWithAck('message', { interactionId: '99999999999999999999', text: 'hi' }),
      ] as { status: { code: string } }[];
      expect(acks.map(ack => ack.status.code)).toEqual(Array(6).fill('NEXUS_ERR_VALIDATION'));
      expect(await rowCounts(h())).toEqual(before);
    } finally {
      customer.socket.close();
      agent.socket.close();
    }
  });

  it('a seq a client claims past the safe integers or not whole does not silence its socket', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app, TENANT);
    const session = (
      await request(api.url)
        .post('/nexus/v3/chat/sessions')
        .set('x-api-key', t.chatKey)
        .send({ data: { nickname: 'Ann', endpoint: 'GlobalChatSwitchboard' } })
        .expect(201)
    ).body.data as { clientToken: string; interactionId: string };
    const id = session.interactionId;
    await request(api.url)
      .post(`/nexus/v3/agent/interactions/${id}/join`)
      .set('Authorization', `Bearer ${t.agent.token}`)
      .expect(200);
    const customer = connect(api.url, '/chat', { token: session.clientToken, lastSeq: 1e20 });
    const fractional = connect(api.url, '/chat', { token: session.clientToken, lastSeq: 0.5 });
    const agent = connect(api.url, '/agent', {
      token: t.agent.token,
      lastSeqs: { [id]: Number(HUGE) },
    });
    const subscriber = connect(api.url, '/agent', { token: t.agent.token });
    const sockets = [customer, fractional, agent, subscriber];
    try {
      await Promise.all(sockets.map(s => s.connected));
      const refused = await Promise.all(
        [Number(HUGE), 1.5, -1, 'x'].map(
          lastSeq =>
            subscriber.socket
              .timeout(5_000)
              .emitWithAck('subscribe', { interactionId: id, lastSeq }) as Promise<{
              status: { code: string; field?: string };
            }>,
        ),
      );
      expect(refused.map(ack => ack.status)).toEqual(
        Array(4).fill(expect.objectContaining({ code: 'NEXUS_ERR_VALIDATION', field: 'lastSeq' })),
      );
      const sent = (await agent.socket
        .timeout(5_000)
        .emitWithAck('message', { interactionId: id, text: 'still heard' })) as {
        status: { code: unknown };
      };
      expect(sent.status.code).toBe(0);
      const heard = (s: (typeof sockets)[number]) =>
        s.received.some(
          e =>
            e.name === 'message' &&
            (e.data?.message as { text?: string } | undefined)?.text === 'still heard',
        );
      await eventually(
        () => heard(customer) && heard(fractional) && heard(agent),
        10_000,
        'the message at every socket',
      );
      // The agent socket was caught up from the start: the join, then the message.
      expect(agent.received.filter(e => e.seq).map(e => e.seq)).toEqual([1, 2]);
    } finally {
      for (const s of sockets) s.socket.close();
    }
  });

  it('still accepts the same requests without the hostile part', async () => {
    const s = await setup(h());
    await request(s.app)
      .post(`/nexus/v3/chat/sessions/${s.session.id}/messages`)
      .set('x-nexus-client-key', s.session.clientToken)
      .send({ data: { text: 'hello' } })
      .expect(202);
    await request(s.app)
      .post('/nexus/v3/sms/message')
      .auth(TENANT, s.smsKey)
      .type('form')
      .send(
        `device_address=%2B15551234567&inbound_address=${encodeURIComponent(NUMBER)}&message=hi`,
      )
      .expect(202);
    await request(s.app)
      .get(`/nexus/v3/webhooks/${TENANT}/deliveries/9007199254740991`)
      .set(s.admin)
      .expect(404);
    await request(s.app)
      .get(`/nexus/v3/webhooks/${TENANT}/deliveries?before=9007199254740991`)
      .set(s.admin)
      .expect(200);
    await request(s.app)
      .put(`/nexus/v3/provisioning/services/${TENANT}/WebhookTransportTarget-crm`)
      .set(s.admin)
      .send({
        url: 'https://crm.example/hooks',
        data: { 'header:Authorization': 'Bearer crm-token', 'header:X-Api-Key': 'k\tv' },
        secret: 'whsec_c2VjcmV0LWZvci10aGUtZXhhbXBsZQ==',
      })
      .expect(201);
  });
});
