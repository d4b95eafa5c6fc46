import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { describe, expect, it, vi } from 'vitest';
import { buildApp, type BuiltApp } from '../../api/app.js';
import { hotPath, type HotRoute } from '../../api/hot-path.js';
import { requestContextBinder } from '../../api/request-context.js';
import { requestTotal } from '../../lib/metrics.js';
import { provisionChatTenant } from '../helpers/chat.js';
import { useHarness, type Harness } from '../helpers/harness.js';

const SEND = '/nexus/v3/chat/sessions/:sessionId/messages';

/** The app without its hot path: Express answers the sends as it did before there was one. */
const expressOnly = (h: Harness): BuiltApp =>
  buildApp({
    config: h.config,
    log: h.log,
    db: h.db,
    queues: h.queues,
    redis: h.redis,
    bus: h.bus,
    hotPath: false,
  });

const sendsCounted = async (code: string) =>
  (await requestTotal.get()).values.find(
    value =>
      value.labels.route === SEND && value.labels.code === code && value.labels.method === 'POST',
  )?.value ?? 0;

interface Answer {
  status: number;
  body: unknown;
  type: string | undefined;
  cors: string | undefined;
}

/** What a caller can see of an answer, without what differs per request (ids). */
function answerOf(response: request.Response): Answer {
  const body = structuredClone(response.body as Record<string, unknown>);
  delete body.operationId;
  const data = body.data as Record<string, unknown> | undefined;
  if (data && typeof data.id === 'string') data.id = '<id>';
  return {
    status: response.status,
    body,
    type: response.headers['content-type'],
    cors: response.headers['access-control-allow-origin'],
  };
}

describe('the hot path', () => {
  const h = useHarness();

  it('answers every send as Express does, the bad ones included', async () => {
    const hot = h().app();
    const plain = expressOnly(h());
    const t = await provisionChatTenant(h(), hot);
    const started = await request(hot)
      .post('/nexus/v3/chat/sessions')
      .set('x-api-key', t.chatKey)
      .type('form')
      .send({ 'data[nickname]': 'Ada', 'data[endpoint]': 'GlobalChatSwitchboard' })
      .expect(201);
    const session = started.body.data as { id: string; clientToken: string };
    const path = `/nexus/v3/chat/sessions/${session.id}/messages`;
    const key = session.clientToken;
    let n = 0;
    const fresh = () => `m-${++n}`;

    type Send = (app: BuiltApp) => request.Test;
    const json =
      (body: unknown, at = path): Send =>
      app =>
        request(app)
          .post(at)
          .set('x-nexus-client-key', key)
          .send(body as object);
    const raw =
      (type: string, body: string | Buffer, headers: Record<string, string> = {}): Send =>
      app =>
        request(app)
          .post(path)
          .set('x-nexus-client-key', key)
          .set('Content-Type', type)
          .set(headers)
          // As the bytes are, not serialised as JSON.
          .serialize(value => value as string)
          .send(body);

    const cases: [string, () => Send, number][] = [
      ['JSON', () => json({ data: { text: 'hello', clientMessageId: fresh() } }), 202],
      [
        'form fields',
        () => app =>
          request(app)
            .post(path)
            .set('x-nexus-client-key', key)
            .type('form')
            .send({ 'data[type]': 'Text', 'data[text]': 'hi', 'data[clientMessageId]': fresh() }),
        202,
      ],
      ['no client message id', () => json({ data: { text: 'no id' } }), 202],
      [
        'gzip',
        () =>
          raw(
            'application/json',
            gzipSync(JSON.stringify({ data: { text: 'zipped', clientMessageId: fresh() } })),
            { 'Content-Encoding': 'gzip' },
          ),
        202,
      ],
      [
        'trailing slash, upper case',
        () =>
          json(
            { data: { text: 'up', clientMessageId: fresh() } },
            `${path.toUpperCase()}/`.replace(session.id.toUpperCase(), session.id),
          ),
        202,
      ],
      [
        'the /chat/v3 alias',
        () => json({ data: { text: 'alias' } }, path.replace('/nexus/', '/chat/')),
        202,
      ],
      ['malformed JSON', () => raw('application/json', '{"data": {'), 400],
      ['a JSON array', () => raw('application/json', '[1,2]'), 400],
      ['bad gzip', () => raw('application/json', 'not gzip', { 'Content-Encoding': 'gzip' }), 400],
      ['unknown encoding', () => raw('application/json', '{}', { 'Content-Encoding': 'br2' }), 415],
      ['latin-1 JSON', () => raw('application/json; charset=latin1', '{}'), 415],
      ['too large', () => json({ data: { text: 'x'.repeat(1_100_000) } }), 413],
      ['no text', () => json({ data: { type: 'Text' } }), 400],
      ['empty text', () => json({ data: { text: '   ' } }), 400],
      ['a NUL in the text', () => json({ data: { text: 'a\u0000b' } }), 400],
      ['a NUL in a key', () => json({ data: { text: 'ok' }, 'x\u0000': 1 }), 400],
      ['an unknown field', () => json({ data: { text: 'ok', colour: 'red' } }), 400],
      ['another type', () => json({ data: { type: 'Image', text: 'ok' } }), 400],
      ['data not an object', () => json({ data: 'text' }), 400],
      ['no body', () => app => request(app).post(path).set('x-nexus-client-key', key), 400],
      ['a plain-text body', () => raw('text/plain', 'hello'), 400],
      [
        'no client key',
        () => app =>
          request(app)
            .post(path)
            .send({ data: { text: 'who' } }),
        401,
      ],
      [
        'a wrong client key',
        () => app =>
          request(app)
            .post(path)
            .set('x-nexus-client-key', `${key}x`)
            .send({ data: { text: 'who' } }),
        401,
      ],
      [
        'a session id that is not one',
        () => json({ data: { text: 'x' } }, '/nexus/v3/chat/sessions/not-a-session/messages'),
        400,
      ],
      [
        'an unknown session',
        () =>
          json(
            { data: { text: 'x' } },
            '/nexus/v3/chat/sessions/00000000-0000-4000-8000-000000000000/messages',
          ),
        401,
      ],
    ];

    for (const [name, make, status] of cases) {
      const viaHot = answerOf(await make()(hot));
      const viaExpress = answerOf(await make()(plain));
      expect({ name, ...viaHot }).toEqual({ name, ...viaExpress });
      expect({ name, status: viaHot.status }, JSON.stringify(viaHot.body)).toEqual({
        name,
        status,
      });
      expect(viaHot.cors).toBe('*');
    }

    // A retry with the same client message id is a duplicate through either.
    const retry = { data: { text: 'once', clientMessageId: 'retry-1' } };
    const first = await json(retry)(hot).expect(202);
    const again = await json(retry)(plain).expect(202);
    expect(again.body.data).toEqual({ id: first.body.data.id, duplicate: true });
    const third = await json(retry)(hot).expect(202);
    expect(third.body.data).toEqual({ id: first.body.data.id, duplicate: true });
  });

  it('carries the request context, metrics and CORS; leaves queries and preflights to Express', async () => {
    const app = h().app();
    const t = await provisionChatTenant(h(), app);
    const started = await request(app)
      .post('/nexus/v3/chat/sessions')
      .set('x-api-key', t.chatKey)
      .send({ data: { nickname: 'Bo', endpoint: 'GlobalChatSwitchboard' } })
      .expect(201);
    const session = started.body.data as { id: string; clientToken: string };
    const path = `/nexus/v3/chat/sessions/${session.id}/messages`;

    // Express's router sees none of the hot sends, and the rest of the requests.
    const router = (app as unknown as { router: { handle: (...args: unknown[]) => void } }).router;
    const routed = vi.spyOn(router, 'handle');
    const accepted = await sendsCounted('202');
    const refused = await sendsCounted('400');
    const sent = await request(app)
      .post(path)
      .set('x-nexus-client-key', session.clientToken)
      .set('X-Request-Id', 'widget-42')
      .set('X-B3-TraceId', '0123456789ABCDEF')
      .send({ data: { text: 'traced' } })
      .expect(202);
    expect(sent.headers['x-request-id']).toBe('widget-42');
    expect(sent.headers['x-b3-traceid']).toBe('0123456789abcdef');
    expect(sent.body.operationId).toBe('widget-42');
    expect(sent.headers['access-control-allow-origin']).toBe('*');

    const untraced = await request(app)
      .post(path)
      .set('x-nexus-client-key', session.clientToken)
      .send({ data: { text: 'untraced' } })
      .expect(202);
    expect(untraced.headers['x-b3-traceid']).toMatch(/^[0-9a-f]{32}$/);
    expect(untraced.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(untraced.body.operationId).toBe(untraced.headers['x-request-id']);

    expect(routed).not.toHaveBeenCalled();

    // A query string goes to Express, which answers the same way under the same route.
    await request(app)
      .post(`${path}?from=widget`)
      .set('x-nexus-client-key', session.clientToken)
      .send({ data: { text: 'with a query' } })
      .expect(202);
    await request(app)
      .post(path)
      .set('x-nexus-client-key', session.clientToken)
      .send({ data: {} })
      .expect(400);
    expect(routed).toHaveBeenCalledTimes(1);
    expect(await sendsCounted('202')).toBe(accepted + 3);
    expect(await sendsCounted('400')).toBe(refused + 1);

    // The preflight is CORS's, from Express.
    const preflight = await request(app)
      .options(path)
      .set('Origin', 'https://shop.example')
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'x-nexus-client-key')
      .expect(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('*');
    expect(preflight.headers['access-control-allow-headers']).toContain('x-nexus-client-key');
  });

  it('takes only the plain case of a hot route and leaves every other request to the app', async () => {
    const served: { params: unknown; query: unknown; body: unknown }[] = [];
    const route: HotRoute = {
      method: 'POST',
      path: '/v1/things/:thingId/parts',
      cors: false,
      async run(req, res) {
        served.push({ params: req.params, query: req.query, body: req.body as unknown });
        res.statusCode = 204;
        res.end();
      },
    };
    const hot = hotPath({
      routes: [route],
      context: requestContextBinder(h().log),
      parsers: [],
      log: h().log,
    });
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (hot(req, res)) return;
      res.statusCode = 299;
      res.end();
    });
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const url = `http://127.0.0.1:${port}`;
    try {
      const statusOf = async (method: 'post' | 'get' | 'put', path: string) =>
        (await request(url)[method](path)).status;
      expect(await statusOf('post', '/v1/things/abc-1_2/parts')).toBe(204);
      expect(await statusOf('post', '/V1/THINGS/abc/PARTS/')).toBe(204);
      expect(served.map(entry => entry.params)).toEqual([
        { thingId: 'abc-1_2' },
        { thingId: 'abc' },
      ]);
      expect(served[0]?.query).toEqual({});
      // Everything else is the app's.
      for (const [method, path] of [
        ['get', '/v1/things/abc/parts'],
        ['put', '/v1/things/abc/parts'],
        ['post', '/v1/things/abc/parts?x=1'],
        ['post', '/v1/things/a%20b/parts'],
        ['post', '/v1/things/a.b/parts'],
        ['post', '/v1/things//parts'],
        ['post', '/v1/things/abc/parts//'],
        ['post', '/v1/things/abc/parts/more'],
        ['post', '/x/v1/things/abc/parts'],
        ['post', `/v1/things/${'a'.repeat(129)}/parts`],
      ] as const) {
        expect({ method, path, status: await statusOf(method, path) }).toEqual({
          method,
          path,
          status: 299,
        });
      }
      expect(served).toHaveLength(2);
    } finally {
      await new Promise(resolve => server.close(resolve));
    }
  });
});
