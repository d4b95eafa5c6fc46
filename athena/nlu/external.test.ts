import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import { Hash } from '@smithy/hash-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { jwtVerify, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressGuard } from '../../lib/egress.js';
import { WorkFailure } from '../../lib/errors.js';
import { createLogger } from '../../lib/logger.js';
import { CLOUD_PLATFORM_SCOPE } from './dialogflow-auth.js';
import { dialogflowCx } from './dialogflow-cx.js';
import { dialogflowEndpoint, dialogflowEs, dialogflowSessionId } from './dialogflow-es.js';
import { lexSessionId, lexV2 } from './lex-v2.js';
import {
  NluProviderUnavailableError,
  type NluContext,
  type NluProvider,
  type NluRequest,
  type NluSettings,
} from './provider.js';
import { rasa } from './rasa.js';

/**
 * The external NLU adapters against local servers that speak each provider's protocol and check
 * its authentication as the provider does: Google's token endpoint verifies the service
 * account's RS256 assertion and the Dialogflow API the bearer token it issued; the Lex runtime
 * recomputes the SigV4 signature; Rasa's HTTP API checks its auth token or JWT.
 */

interface Received {
  method: string;
  /** The request target as sent: path and query. */
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** What a fake answers instead of speaking its protocol: a status and body, or nothing at all. */
type Fault = { status: number; body: string } | 'hang' | undefined;

type Handler = (req: Received, res: ServerResponse) => unknown;

const json = (res: ServerResponse, status: number, body: unknown, headers = {}) =>
  res
    .writeHead(status, { 'content-type': 'application/json', ...headers })
    .end(JSON.stringify(body));

/** A loopback server recording every request; `fault` (when set) answers the routes it covers. */
async function serve(handler: Handler, faulty: (req: Received) => boolean = () => true) {
  const received: Received[] = [];
  const state: { fault: Fault } = { fault: undefined };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request: Received = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      received.push(request);
      const fault = faulty(request) ? state.fault : undefined;
      if (fault === 'hang') return;
      if (fault) {
        res.writeHead(fault.status, { 'content-type': 'text/plain' }).end(fault.body);
        return;
      }
      Promise.resolve(handler(request, res)).catch((error: unknown) =>
        res.writeHead(500).end(String(error)),
      );
    });
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    state,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

const guard = new EgressGuard(['127.0.0.1/32']);
const log = createLogger('silent');
const ctx = (timeoutMs = 5_000): NluContext => ({ guard, timeoutMs, log });

const turn = (text: string, sessionId = '7d5c2f0e-8a43-4f7e-9a59-0c7f2b1e4d10'): NluRequest => ({
  tenant: 'acme',
  sessionId,
  text,
  languageCode: 'en',
});

/** The error `promise` rejects with (and a failed test when it resolves). */
async function failureOf(promise: Promise<unknown>): Promise<WorkFailure> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(WorkFailure);
  return error as WorkFailure;
}

/** A permanent failure with `code`: BullMQ does not retry an `UnrecoverableError`. */
async function expectPermanent(promise: Promise<unknown>, code: string) {
  const error = await failureOf(promise);
  expect(error.code).toBe(code);
  expect(error.name).toBe('UnrecoverableError');
  return error;
}

async function expectUnavailable(promise: Promise<unknown>) {
  const error = await failureOf(promise);
  expect(error).toBeInstanceOf(NluProviderUnavailableError);
  expect(error.code).toBe('NEXUS_ERR_NLU_PROVIDER_UNAVAILABLE');
  expect(error.name).not.toBe('UnrecoverableError');
  return error;
}

afterAll(() => guard.close());

// ---------------------------------------------------------------------------------------------
// Google: the OAuth token endpoint and the Dialogflow API, on one server
// ---------------------------------------------------------------------------------------------

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

const rsaPair = () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey,
  };
};

/**
 * Google's side: `POST /token` verifies the assertion (RS256 with the account's public key,
 * iss = sub = the account, aud = this token URL, the cloud-platform scope, one hour, the key's
 * kid) and issues a token; `/v2/…` and `/v3/…` take only a live token it issued (401
 * UNAUTHENTICATED otherwise) and answer with `detect` (the test's answer).
 */
async function googleFake(accounts: ReadonlyMap<string, KeyObject>) {
  const issued = new Map<string, string>(); // token → account
  const revoked = new Set<string>();
  /** Accounts whose tokens are revoked as soon as issued. */
  const revokeOnIssue = new Set<string>();
  const tokenRequests: string[] = []; // the account of each
  let detect: (req: Received) => unknown = () => ({ queryResult: {} });
  const fake = await serve(
    async (req, res) => {
      if (req.path === '/token') {
        const form = new URLSearchParams(req.body);
        if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) {
          return json(res, 400, { error: 'invalid_request' });
        }
        if (form.get('grant_type') !== JWT_BEARER) {
          return json(res, 400, { error: 'unsupported_grant_type' });
        }
        const assertion = form.get('assertion') ?? '';
        const claimed = JSON.parse(
          Buffer.from(assertion.split('.')[1] ?? '', 'base64url').toString() || '{}',
        ) as { iss?: string };
        const publicKey = accounts.get(claimed.iss ?? '');
        if (!publicKey) {
          return json(res, 401, {
            error: 'invalid_client',
            error_description: 'The OAuth client was not found.',
          });
        }
        const verified = await jwtVerify(assertion, publicKey, {
          algorithms: ['RS256'],
          issuer: claimed.iss,
          subject: claimed.iss,
          audience: `${fake.url}/token`,
        }).catch(() => undefined);
        if (!verified) {
          return json(res, 400, {
            error: 'invalid_grant',
            error_description: 'Invalid JWT Signature.',
          });
        }
        const { payload, protectedHeader } = verified;
        if (payload.scope !== CLOUD_PLATFORM_SCOPE) {
          return json(res, 400, { error: 'invalid_scope' });
        }
        if ((payload.exp ?? 0) - (payload.iat ?? 0) !== 3600 || protectedHeader.kid !== 'key-1') {
          return json(res, 400, { error: 'invalid_grant', error_description: 'Invalid JWT.' });
        }
        const account = claimed.iss ?? '';
        tokenRequests.push(account);
        const token = `ya29.test-${tokenRequests.length}`;
        issued.set(token, account);
        if (revokeOnIssue.has(account)) revoked.add(token);
        return json(res, 200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
      }
      const bearer = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''))?.[1] ?? '';
      if (!issued.has(bearer) || revoked.has(bearer)) {
        return json(res, 401, {
          error: {
            code: 401,
            message: 'Request had invalid authentication credentials.',
            status: 'UNAUTHENTICATED',
          },
        });
      }
      return json(res, 200, detect(req));
    },
    req => req.path !== '/token',
  );
  return {
    ...fake,
    tokenRequests,
    revoked,
    revokeOnIssue,
    answer(next: (req: Received) => unknown) {
      detect = next;
    },
    /** The API calls (not the token requests). */
    apiCalls: () => fake.received.filter(req => req.path !== '/token'),
  };
}

describe('Dialogflow (ES and CX) with a Google service account', () => {
  const good = rsaPair();
  const other = rsaPair();
  const accounts = new Map<string, KeyObject>();
  for (const name of ['es', 'cx', 'cache', 'race', 'revoked', 'refused', 'faults']) {
    accounts.set(`${name}@nexus-test.iam.gserviceaccount.com`, good.publicKey);
  }
  let google: Awaited<ReturnType<typeof googleFake>>;

  beforeAll(async () => {
    google = await googleFake(accounts);
  });
  afterAll(() => google.close());

  const serviceAccount = (name: string, pem = good.pem) => ({
    type: 'service_account',
    project_id: 'nexus-test',
    private_key_id: 'key-1',
    private_key: pem,
    client_email: `${name}@nexus-test.iam.gserviceaccount.com`,
    client_id: '1234567890',
    token_uri: 'https://oauth2.googleapis.com/token',
  });
  const esSettings = (name: string, data: Record<string, unknown> = {}): NluSettings => ({
    data: {
      projectId: 'nexus-test',
      endpoint: google.url,
      tokenUrl: `${google.url}/token`,
      ...data,
    },
    secret: { serviceAccount: serviceAccount(name) },
  });

  describe('Dialogflow ES', () => {
    it('detects the intent: confidence, parameters with the words said, default-platform replies, sentiment', async () => {
      const text = 'I want to book a room in paris for two nights';
      google.answer(() => ({
        responseId: 'r-1',
        queryResult: {
          queryText: text,
          action: 'room.book',
          parameters: { 'geo-city': 'Paris', number: 2, 'date-period': '' },
          allRequiredParamsPresent: true,
          fulfillmentText: 'Booking a room in Paris.',
          fulfillmentMessages: [
            { text: { text: ['Booking a room in Paris.'] } },
            { platform: 'SLACK', text: { text: ['(Slack) Booking a room in Paris.'] } },
            { text: { text: ['For two nights?'] } },
          ],
          outputContexts: [
            {
              name: 'projects/nexus-test/agent/sessions/s/contexts/booking',
              lifespanCount: 5,
              parameters: {
                'geo-city': 'Paris',
                'geo-city.original': 'paris',
                number: 2,
                'number.original': 'two',
              },
            },
          ],
          intent: { name: 'projects/nexus-test/agent/intents/42', displayName: 'room.book' },
          intentDetectionConfidence: 0.87,
          languageCode: 'en',
          sentimentAnalysisResult: { queryTextSentiment: { score: -0.6, magnitude: 0.6 } },
        },
      }));
      const result = await dialogflowEs(turn(text), esSettings('es', { sentiment: true }), ctx());
      expect(result).toEqual({
        intent: { name: 'room.book', confidence: 0.87 },
        entities: [
          { kind: 'geo-city', value: 'Paris', text: 'paris', start: 25, end: 30 },
          { kind: 'number', value: '2', text: 'two', start: 35, end: 38 },
        ],
        sentiment: { score: -0.6, label: 'negative' },
        replies: ['Booking a room in Paris.', 'For two nights?'],
        handoff: undefined,
        provider: 'dialogflow-es',
      });
      const call = google.apiCalls().at(-1);
      expect(call?.method).toBe('POST');
      expect(call?.path).toBe(
        '/v2/projects/nexus-test/agent/sessions/7d5c2f0e-8a43-4f7e-9a59-0c7f2b1e4d10:detectIntent',
      );
      expect(JSON.parse(call?.body ?? '')).toEqual({
        queryInput: { text: { text, languageCode: 'en' } },
        queryParams: { sentimentAnalysisRequestConfig: { analyzeQueryTextSentiment: true } },
      });
      expect(call?.headers['content-type']).toBe('application/json; charset=utf-8');
    });

    it('takes a regional agent, an environment, a long conversation id; a fallback is no intent; a handoff intent hands off', async () => {
      const sessionId = 'conversation:acme:7d5c2f0e-8a43-4f7e-9a59-0c7f2b1e4d10';
      const settings = esSettings('es', {
        location: 'europe-west1',
        environment: 'prod',
        languageCode: 'de',
        handoffIntents: ['agent.human'],
      });
      google.answer(() => ({
        queryResult: {
          intent: { displayName: 'Default Fallback Intent', isFallback: true },
          intentDetectionConfidence: 1,
          fulfillmentText: 'Wie bitte?',
        },
      }));
      const fallback = await dialogflowEs(turn('blah', sessionId), settings, ctx());
      expect(fallback.intent).toBeUndefined();
      expect(fallback.replies).toEqual(['Wie bitte?']);
      expect(fallback.handoff).toBeUndefined();
      const hashed = dialogflowSessionId(sessionId);
      expect(hashed).toMatch(/^[0-9a-f]{36}$/);
      const call = google.apiCalls().at(-1);
      expect(call?.path).toBe(
        `/v2/projects/nexus-test/locations/europe-west1/agent/environments/prod/users/-/sessions/${hashed}:detectIntent`,
      );
      expect(JSON.parse(call?.body ?? '').queryInput.text.languageCode).toBe('de');

      google.answer(() => ({
        queryResult: {
          intent: { displayName: 'agent.human' },
          intentDetectionConfidence: 0.95,
          fulfillmentMessages: [{ text: { text: ['Ich verbinde Sie.'] } }],
        },
      }));
      const human = await dialogflowEs(turn('Mitarbeiter bitte', sessionId), settings, ctx());
      expect(human.intent).toEqual({ name: 'agent.human', confidence: 0.95 });
      expect(human.handoff?.detail).toBe(
        'Dialogflow ES matched agent.human, a handoff intent (data.handoffIntents)',
      );
      expect(human.entities).toEqual([]);
      expect(human.sentiment).toBeUndefined();
    });

    it('sends at most 256 characters of text', async () => {
      google.answer(() => ({ queryResult: {} }));
      await dialogflowEs(turn('é'.repeat(300)), esSettings('es'), ctx());
      const sent = JSON.parse(google.apiCalls().at(-1)?.body ?? '').queryInput.text.text as string;
      expect(sent).toBe('é'.repeat(256));
    });
  });

  describe('Dialogflow CX', () => {
    const cxSettings = (data: Record<string, unknown> = {}): NluSettings => ({
      // No data.tokenUrl: the key's token_uri is used.
      data: { projectId: 'nexus-test', agentId: 'agent-1', endpoint: google.url, ...data },
      secret: {
        serviceAccount: JSON.stringify({
          ...serviceAccount('cx'),
          token_uri: `${google.url}/token`,
        }),
      },
    });

    it('detects the intent of the match, its parameters, replies, sentiment and a live agent handoff', async () => {
      const text = 'Talk to someone about my Paris booking';
      google.answer(() => ({
        responseId: 'r-2',
        queryResult: {
          text,
          languageCode: 'en',
          parameters: { city: 'Paris', account: 'A-17' },
          responseMessages: [
            { text: { text: ['Connecting you to an agent.'] } },
            { liveAgentHandoff: { metadata: { queue: 'bookings' } } },
            { payload: { richContent: [] } },
          ],
          currentPage: { name: 'projects/.../pages/END_FLOW', displayName: 'End Flow' },
          match: {
            intent: { name: 'projects/nexus-test/.../intents/9', displayName: 'agent.request' },
            parameters: { city: 'Paris' },
            resolvedInput: text,
            matchType: 'INTENT',
            confidence: 0.91,
          },
          sentimentAnalysisResult: { score: 0.4, magnitude: 0.4 },
        },
      }));
      const result = await dialogflowCx(
        turn(text),
        cxSettings({ location: 'europe-west2', sentiment: true }),
        ctx(),
      );
      expect(result).toEqual({
        intent: { name: 'agent.request', confidence: 0.91 },
        entities: [{ kind: 'city', value: 'Paris', text: 'Paris', start: 25, end: 30 }],
        sentiment: { score: 0.4, label: 'positive' },
        replies: ['Connecting you to an agent.'],
        handoff: { detail: 'Dialogflow CX asked for a live agent (metadata {"queue":"bookings"})' },
        provider: 'dialogflow-cx',
      });
      const call = google.apiCalls().at(-1);
      expect(call?.path).toBe(
        '/v3/projects/nexus-test/locations/europe-west2/agents/agent-1/sessions/7d5c2f0e-8a43-4f7e-9a59-0c7f2b1e4d10:detectIntent',
      );
      expect(JSON.parse(call?.body ?? '')).toEqual({
        queryInput: { text: { text }, languageCode: 'en' },
        queryParams: { analyzeQueryTextSentiment: true },
      });
    });

    it('a NO_MATCH is no intent; an environment is in the session path', async () => {
      google.answer(() => ({
        queryResult: {
          responseMessages: [{ text: { text: ["Sorry, I didn't get that."] } }],
          match: { event: 'sys.no-match-default', matchType: 'NO_MATCH' },
        },
      }));
      const result = await dialogflowCx(turn('zzz'), cxSettings({ environment: 'env-9' }), ctx());
      expect(result.intent).toBeUndefined();
      expect(result.handoff).toBeUndefined();
      expect(result.replies).toEqual(["Sorry, I didn't get that."]);
      expect(google.apiCalls().at(-1)?.path).toBe(
        '/v3/projects/nexus-test/locations/global/agents/agent-1/environments/env-9/sessions/7d5c2f0e-8a43-4f7e-9a59-0c7f2b1e4d10:detectIntent',
      );
    });

    it('uses the location host unless data.endpoint is set', () => {
      expect(dialogflowEndpoint({}, 'europe-west2')).toBe(
        'https://europe-west2-dialogflow.googleapis.com',
      );
      expect(dialogflowEndpoint({}, 'global')).toBe('https://dialogflow.googleapis.com');
      expect(dialogflowEndpoint({ endpoint: 'http://127.0.0.1:1/' }, 'us-east1')).toBe(
        'http://127.0.0.1:1',
      );
    });
  });

  describe('service account tokens', () => {
    it('two turns (even concurrent ones) take one token', async () => {
      google.answer(() => ({ queryResult: {} }));
      const before = google.apiCalls().length;
      await Promise.all([
        dialogflowEs(turn('one'), esSettings('race'), ctx()),
        dialogflowEs(turn('two'), esSettings('race'), ctx()),
      ]);
      await dialogflowEs(turn('three'), esSettings('cache'), ctx());
      await dialogflowEs(turn('four'), esSettings('cache'), ctx());
      const count = (name: string) =>
        google.tokenRequests.filter(a => a.startsWith(`${name}@`)).length;
      expect(count('race')).toBe(1);
      expect(count('cache')).toBe(1);
      const bearers = google
        .apiCalls()
        .slice(before)
        .map(call => call.headers.authorization);
      expect(bearers).toHaveLength(4);
      expect(bearers[0]).toBe(bearers[1]);
      expect(bearers[2]).toBe(bearers[3]);
      expect(bearers[0]).not.toBe(bearers[2]);
    });

    it('a cached token the API refuses (401) is dropped and the turn goes through with a new one', async () => {
      google.answer(() => ({ queryResult: { intent: { displayName: 'hello' } } }));
      await dialogflowEs(turn('hi'), esSettings('revoked'), ctx());
      const first = google.apiCalls().at(-1)?.headers.authorization ?? '';
      google.revoked.add(first.replace('Bearer ', ''));
      const result = await dialogflowEs(turn('hi again'), esSettings('revoked'), ctx());
      expect(result.intent).toEqual({ name: 'hello', confidence: 1 });
      expect(google.tokenRequests.filter(a => a.startsWith('revoked@'))).toHaveLength(2);
      const [refused, retried] = google.apiCalls().slice(-2);
      expect(refused?.headers.authorization).toBe(first);
      expect(retried?.headers.authorization).not.toBe(first);
    });

    it('a new token the API refuses is a refusal (no loop), and is not kept', async () => {
      google.revokeOnIssue.add('refused@nexus-test.iam.gserviceaccount.com');
      const error = await expectPermanent(
        dialogflowEs(turn('hi'), esSettings('refused'), ctx()),
        'NEXUS_ERR_NLU_PROVIDER_REFUSED',
      );
      expect(error.message).toContain('dialogflow-es answered 401');
      expect(google.tokenRequests.filter(a => a.startsWith('refused@'))).toHaveLength(1);
      await expectPermanent(
        dialogflowEs(turn('hi'), esSettings('refused'), ctx()),
        'NEXUS_ERR_NLU_PROVIDER_REFUSED',
      );
      expect(google.tokenRequests.filter(a => a.startsWith('refused@'))).toHaveLength(2);
    });

    it('a key Google does not know, or a signature by another key, is refused at the token endpoint', async () => {
      const before = google.apiCalls().length;
      const wrongKey: NluSettings = {
        ...esSettings('es'),
        secret: { serviceAccount: serviceAccount('es', other.pem) },
      };
      const invalid = await expectPermanent(
        dialogflowEs(turn('hi'), wrongKey, ctx()),
        'NEXUS_ERR_NLU_PROVIDER_REFUSED',
      );
      expect(invalid.message).toContain('answered 400');
      expect(invalid.message).toContain('invalid_grant');
      const unknown: NluSettings = {
        ...esSettings('es'),
        secret: { ...serviceAccount('stranger') }, // the key's fields directly in secret
      };
      const notFound = await expectPermanent(
        dialogflowCx(turn('hi'), { ...unknown, data: { ...unknown.data, agentId: 'a' } }, ctx()),
        'NEXUS_ERR_NLU_PROVIDER_REFUSED',
      );
      expect(notFound.message).toContain('answered 401');
      expect(google.apiCalls()).toHaveLength(before);
    });
  });

  describe('settings', () => {
    it('missing project, agent or key fields are not configured, and nothing is sent', async () => {
      const before = google.received.length;
      await expectPermanent(
        dialogflowEs(
          turn('hi'),
          { data: {}, secret: { serviceAccount: serviceAccount('es') } },
          ctx(),
        ),
        'NEXUS_ERR_NLU_NOT_CONFIGURED',
      );
      await expectPermanent(
        dialogflowEs(turn('hi'), { data: { projectId: 'p' }, secret: {} }, ctx()),
        'NEXUS_ERR_NLU_NOT_CONFIGURED',
      );
      await expectPermanent(
        dialogflowEs(
          turn('hi'),
          { data: { projectId: 'p' }, secret: { client_email: 'a@b', private_key: 'not a key' } },
          ctx(),
        ),
        'NEXUS_ERR_NLU_NOT_CONFIGURED',
      );
      await expectPermanent(
        dialogflowCx(
          turn('hi'),
          { data: { projectId: 'p' }, secret: { serviceAccount: serviceAccount('cx') } },
          ctx(),
        ),
        'NEXUS_ERR_NLU_NOT_CONFIGURED',
      );
      await expectPermanent(
        dialogflowCx(
          turn('hi'),
          {
            data: { projectId: 'p', agentId: 'a', location: 'evil.example.com/x' },
            secret: { serviceAccount: serviceAccount('cx') },
          },
          ctx(),
        ),
        'NEXUS_ERR_NLU_NOT_CONFIGURED',
      );
      expect(google.received.length).toBe(before);
    });
  });

  describe.each([
    { name: 'ES', provider: dialogflowEs, data: {} },
    { name: 'CX', provider: dialogflowCx, data: { agentId: 'agent-1' } },
  ])('Dialogflow $name failures', ({ provider, data }) => {
    const settings = () => esSettings('faults', data);
    faultCases(
      () => google.state,
      () => ({ provider, settings: settings() }),
    );
  });
});

/**
 * The failures every adapter maps the same way, against its fake made to misbehave: 503 and 429
 * are retried, a timeout too; a 404 (unknown agent or bot) is refused; a 2xx that is not JSON, or
 * JSON of another shape, is a bad answer.
 */
function faultCases(
  state: () => { fault: Fault },
  adapter: () => { provider: NluProvider; settings: NluSettings },
) {
  const run = (timeoutMs?: number) => {
    const { provider, settings } = adapter();
    return provider(turn('hello'), settings, ctx(timeoutMs));
  };
  const withFault = async <T>(fault: Fault, body: () => Promise<T>) => {
    state().fault = fault;
    try {
      return await body();
    } finally {
      state().fault = undefined;
    }
  };

  it('503 and 429 are unavailable (retried)', async () => {
    const busy = await withFault({ status: 503, body: 'Service Unavailable' }, () =>
      expectUnavailable(run()),
    );
    expect(busy.message).toContain('answered 503');
    const limited = await withFault({ status: 429, body: 'Too Many Requests' }, () =>
      expectUnavailable(run()),
    );
    expect(limited.message).toContain('answered 429');
  });

  it('no answer within the timeout is unavailable (retried)', async () => {
    const error = await withFault('hang', () => expectUnavailable(run(300)));
    expect(error.message).toMatch(/within 300 ms/);
  });

  it('a 404 is refused (not retried)', async () => {
    await withFault({ status: 404, body: 'Not Found' }, () =>
      expectPermanent(run(), 'NEXUS_ERR_NLU_PROVIDER_REFUSED'),
    );
  });

  it('a 2xx that is not JSON, or JSON of another shape, is a bad answer', async () => {
    const html = await withFault({ status: 200, body: '<html>proxy login</html>' }, () =>
      expectPermanent(run(), 'NEXUS_ERR_NLU_PROVIDER_BAD_ANSWER'),
    );
    expect(html.message).toContain('not JSON');
    await withFault({ status: 200, body: '"just a string"' }, () =>
      expectPermanent(run(), 'NEXUS_ERR_NLU_PROVIDER_BAD_ANSWER'),
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Amazon Lex V2
// ---------------------------------------------------------------------------------------------

const AWS_KEYS: Record<string, string> = {
  AKIAIOSFODNN7EXAMPLE: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
};

/**
 * AWS's check of a SigV4 request, by recomputing it: the credential scope must name a known key,
 * `lex` and the region; the signature is computed again over the method, path, the headers the
 * client says it signed and the body (its hash recomputed, not taken from the header). The
 * error type is what the Lex runtime answers (`x-amzn-ErrorType`), or undefined when it holds.
 */
async function sigV4Error(req: Received, region: string): Promise<string | undefined> {
  const authorization = String(req.headers.authorization ?? '');
  const parts =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$/.exec(
      authorization,
    );
  if (!parts) return 'IncompleteSignatureException';
  const [, keyId = '', , scopeRegion, service, signed = ''] = parts;
  const secretAccessKey = AWS_KEYS[keyId];
  if (!secretAccessKey) return 'UnrecognizedClientException';
  if (scopeRegion !== region || service !== 'lex') return 'InvalidSignatureException';
  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(
    String(req.headers['x-amz-date']),
  );
  if (!date) return 'IncompleteSignatureException';
  const signingDate = new Date(
    `${date[1]}-${date[2]}-${date[3]}T${date[4]}:${date[5]}:${date[6]}Z`,
  );
  if (Math.abs(Date.now() - signingDate.getTime()) > 5 * 60_000) return 'InvalidSignatureException';
  const regenerated = new Set(['x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token']);
  const headers: Record<string, string> = {};
  for (const name of signed.split(';')) {
    if (!regenerated.has(name)) headers[name] = String(req.headers[name] ?? '');
  }
  const sessionToken = req.headers['x-amz-security-token'];
  const url = new URL(req.path, 'http://lex.invalid');
  const signer = new SignatureV4({
    service: 'lex',
    region,
    credentials: {
      accessKeyId: keyId,
      secretAccessKey,
      ...(typeof sessionToken === 'string' ? { sessionToken } : {}),
    },
    sha256: Hash.bind(null, 'sha256'),
  });
  const expected = await signer.sign(
    new HttpRequest({
      method: req.method,
      protocol: 'http:',
      hostname: 'lex.invalid',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers,
      body: req.body,
    }),
    { signingDate },
  );
  return expected.headers.authorization === authorization ? undefined : 'InvalidSignatureException';
}

describe('Amazon Lex V2', () => {
  let lex: Awaited<ReturnType<typeof serve>>;
  let answer: (req: Received) => unknown = () => ({});

  beforeAll(async () => {
    lex = await serve(async (req, res) => {
      const error = await sigV4Error(req, 'eu-west-1');
      if (error) {
        return json(
          res,
          403,
          {
            message:
              'The request signature we calculated does not match the signature you provided.',
          },
          {
            'x-amzn-ErrorType': `${error}:http://internal.amazon.com/coral/com.amazon.coral.service/`,
          },
        );
      }
      if (
        !/^\/bots\/[^/]+\/botAliases\/[^/]+\/botLocales\/[^/]+\/sessions\/[^/]+\/text$/.test(
          req.path,
        )
      ) {
        return json(
          res,
          404,
          { message: 'Not found' },
          { 'x-amzn-ErrorType': 'ResourceNotFoundException' },
        );
      }
      return json(res, 200, answer(req));
    });
  });
  afterAll(() => lex.close());

  const lexSettings = (
    data: Record<string, unknown> = {},
    secret: Record<string, unknown> = {},
  ): NluSettings => ({
    data: {
      region: 'eu-west-1',
      botId: 'BOT7XK2Q9A',
      botAliasId: 'TSTALIASID',
      localeId: 'en_GB',
      endpoint: lex.url,
      ...data,
    },
    secret: {
      accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
      secretAccessKey: AWS_KEYS.AKIAIOSFODNN7EXAMPLE,
      ...secret,
    },
  });

  it('recognizes the text: intent, score, slots, sentiment, every kind of message', async () => {
    const text = 'I need a room in Paris for two people, this is taking forever';
    answer = () => ({
      messages: [
        { content: 'For which dates?', contentType: 'PlainText' },
        { content: '<speak>Sorry for the <emphasis>wait</emphasis>.</speak>', contentType: 'SSML' },
        { content: '{"kind":"datepicker"}', contentType: 'CustomPayload' },
        {
          contentType: 'ImageResponseCard',
          imageResponseCard: {
            title: 'Pick a date',
            buttons: [
              { text: 'Tonight', value: 'tonight' },
              { text: 'Tomorrow', value: 'tomorrow' },
            ],
          },
        },
      ],
      sessionState: {
        dialogAction: { type: 'ElicitSlot', slotToElicit: 'checkIn' },
        intent: { name: 'BookHotel', state: 'InProgress', confirmationState: 'None' },
        originatingRequestId: 'b1f3c1e0-0000-4000-8000-000000000000',
      },
      interpretations: [
        {
          intent: {
            name: 'BookHotel',
            state: 'InProgress',
            confirmationState: 'None',
            slots: {
              city: {
                value: {
                  originalValue: 'Paris',
                  interpretedValue: 'Paris',
                  resolvedValues: ['Paris'],
                },
              },
              checkIn: null,
              guests: {
                shape: 'List',
                values: [
                  {
                    shape: 'Scalar',
                    value: { originalValue: 'two', interpretedValue: '2', resolvedValues: ['2'] },
                  },
                ],
              },
            },
          },
          nluConfidence: { score: 0.92 },
          sentimentResponse: {
            sentiment: 'NEGATIVE',
            sentimentScore: { positive: 0.05, negative: 0.8, neutral: 0.1, mixed: 0.05 },
          },
          interpretationSource: 'Lex',
        },
        { intent: { name: 'FallbackIntent', slots: {} }, interpretationSource: 'Lex' },
      ],
      sessionId: 'x',
    });
    const result = await lexV2(
      turn(text),
      lexSettings({}, { sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLE' }),
      ctx(),
    );
    expect(result).toEqual({
      intent: { name: 'BookHotel', confidence: 0.92 },
      entities: [
        { kind: 'city', value: 'Paris', text: 'Paris', start: 17, end: 22 },
        { kind: 'guests', value: '2', text: 'two', start: 27, end: 30 },
      ],
      sentiment: { score: -0.75, label: 'negative' },
      replies: ['For which dates?', 'Sorry for the wait.', 'Pick a date', 'Tonight', 'Tomorrow'],
      handoff: undefined,
      provider: 'lex-v2',
    });
    const call = lex.received.at(-1);
    expect(call?.path).toBe(
      '/bots/BOT7XK2Q9A/botAliases/TSTALIASID/botLocales/en_GB/sessions/7d5c2f0e-8a43-4f7e-9a59-0c7f2b1e4d10/text',
    );
    expect(JSON.parse(call?.body ?? '')).toEqual({ text });
    expect(call?.headers['x-amz-security-token']).toBe('IQoJb3JpZ2luX2VjEXAMPLE');
    expect(String(call?.headers.authorization)).toContain(
      'SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token,',
    );
  });

  it('the fallback intent closing the conversation hands off, and is no intent', async () => {
    answer = () => ({
      messages: [{ content: "Sorry, I can't help with that.", contentType: 'PlainText' }],
      sessionState: {
        dialogAction: { type: 'Close' },
        intent: { name: 'FallbackIntent', state: 'Failed', slots: {} },
      },
      interpretations: [
        { intent: { name: 'FallbackIntent', slots: {} } },
        { intent: { name: 'BookHotel', slots: {} }, nluConfidence: { score: 0.31 } },
      ],
    });
    const result = await lexV2(turn('what is the meaning of life'), lexSettings(), ctx());
    expect(result.intent).toBeUndefined();
    expect(result.handoff).toEqual({
      detail: 'Lex closed the conversation with its fallback intent (FallbackIntent)',
    });
    expect(result.replies).toEqual(["Sorry, I can't help with that."]);
  });

  it('a fallback that asks again hands off too; an intent of data.handoffIntents hands off', async () => {
    answer = () => ({
      sessionState: { dialogAction: { type: 'ElicitIntent' }, intent: { name: 'FallbackIntent' } },
      interpretations: [{ intent: { name: 'FallbackIntent' } }],
    });
    const again = await lexV2(turn('hmm'), lexSettings(), ctx());
    expect(again.handoff?.detail).toBe(
      'Lex did not understand: its fallback intent (FallbackIntent) matched',
    );
    expect(again.replies).toEqual([]);

    answer = () => ({
      sessionState: {
        dialogAction: { type: 'Close' },
        intent: { name: 'TalkToAgent', state: 'Fulfilled' },
      },
      interpretations: [
        { intent: { name: 'TalkToAgent', slots: {} }, nluConfidence: { score: 0.97 } },
      ],
    });
    const asked = await lexV2(
      turn('agent please'),
      lexSettings({ handoffIntents: ['TalkToAgent'] }),
      ctx(),
    );
    expect(asked.intent).toEqual({ name: 'TalkToAgent', confidence: 0.97 });
    expect(asked.handoff?.detail).toBe(
      'Lex matched TalkToAgent, a handoff intent (data.handoffIntents)',
    );
    const plain = await lexV2(turn('agent please'), lexSettings(), ctx());
    expect(plain.handoff).toBeUndefined();
  });

  it('derives a valid session id from any conversation id, and the locale from a regional language', async () => {
    expect(lexSessionId('7d5c2f0e-8a43-4f7e-9a59-0c7f2b1e4d10')).toBe(
      '7d5c2f0e-8a43-4f7e-9a59-0c7f2b1e4d10',
    );
    expect(lexSessionId('acme:conv.1')).toBe('acme:conv.1');
    for (const id of ['x', 'conv/1#é', '..', 'a'.repeat(101)]) {
      expect(lexSessionId(id)).toMatch(/^[0-9a-f]{64}$/);
    }
    answer = () => ({ interpretations: [] });
    await lexV2(
      { ...turn('hi', 'conv/1#é'), languageCode: 'fr-CA' },
      lexSettings({ localeId: undefined }),
      ctx(),
    );
    expect(lex.received.at(-1)?.path).toBe(
      `/bots/BOT7XK2Q9A/botAliases/TSTALIASID/botLocales/fr_CA/sessions/${lexSessionId('conv/1#é')}/text`,
    );
  });

  it('a wrong secret key fails the signature check: refused (not retried)', async () => {
    const error = await expectPermanent(
      lexV2(turn('hi'), lexSettings({}, { secretAccessKey: 'not-the-secret' }), ctx()),
      'NEXUS_ERR_NLU_PROVIDER_REFUSED',
    );
    expect(error.message).toContain('lex-v2 answered 403');
    expect(error.message).toContain('signature we calculated does not match');
    await expectPermanent(
      lexV2(turn('hi'), lexSettings({}, { accessKeyId: 'AKIAUNKNOWN000000000' }), ctx()),
      'NEXUS_ERR_NLU_PROVIDER_REFUSED',
    );
  });

  it('missing or unsafe settings are not configured, and nothing is sent', async () => {
    const before = lex.received.length;
    const cases: NluSettings[] = [
      lexSettings({ botId: undefined }),
      lexSettings({ region: 'eu-west-1.evil.example' }),
      lexSettings({ botAliasId: '../../x' }),
      lexSettings({ localeId: undefined }), // and the turn's language is 'en': no region
      lexSettings({}, { secretAccessKey: undefined }),
      lexSettings({ handoffIntents: 'TalkToAgent' }),
    ];
    for (const settings of cases) {
      await expectPermanent(lexV2(turn('hi'), settings, ctx()), 'NEXUS_ERR_NLU_NOT_CONFIGURED');
    }
    expect(lex.received.length).toBe(before);
  });

  describe('failures', () => {
    faultCases(
      () => lex.state,
      () => ({ provider: lexV2, settings: lexSettings() }),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Rasa
// ---------------------------------------------------------------------------------------------

const RASA_TOKEN = 'rasa-auth-token-1';
const RASA_JWT_SECRET = new TextEncoder().encode('rasa-jwt-secret-0123456789abcdef');

describe('Rasa', () => {
  let server: Awaited<ReturnType<typeof serve>>;
  let parse: (text: string) => unknown = () => ({ intent: null, entities: [] });
  let messages: (body: { sender: string; message: string }) => unknown = () => [];

  /** Rasa's HTTP API auth: `?token=` (`--auth-token`) or an HS256 JWT (`--jwt-secret`). */
  const authenticated = async (req: Received) => {
    const url = new URL(req.path, 'http://rasa.invalid');
    if (url.searchParams.get('token') === RASA_TOKEN) return true;
    const bearer = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''))?.[1];
    if (!bearer) return false;
    try {
      const { payload } = await jwtVerify(bearer, RASA_JWT_SECRET, { algorithms: ['HS256'] });
      return (payload.user as { role?: string } | undefined)?.role === 'admin';
    } catch {
      return false;
    }
  };

  beforeAll(async () => {
    server = await serve(async (req, res) => {
      const path = new URL(req.path, 'http://rasa.invalid').pathname;
      if (path === '/model/parse') {
        // The HTTP API checks auth (rasa/server.py requires_auth); Rasa's own error body.
        if (!(await authenticated(req))) {
          return json(res, 401, {
            version: '3.6.20',
            status: 'failure',
            reason: 'NotAuthenticated',
            message: 'User is not authenticated.',
            code: 401,
          });
        }
        const { text } = JSON.parse(req.body) as { text: string };
        return json(res, 200, { text, ...(parse(text) as object) });
      }
      // The REST channel checks nothing (rasa/core/channels/rest.py).
      if (path === '/webhooks/rest/webhook') return json(res, 200, messages(JSON.parse(req.body)));
      return json(res, 404, { status: 'failure', reason: 'NotFound', code: 404 });
    });
  });
  afterAll(() => server.close());

  const rasaSettings = (
    data: Record<string, unknown> = {},
    secret: Record<string, unknown> = { token: RASA_TOKEN },
  ): NluSettings => ({ url: `${server.url}/`, data, secret });

  it('parses the intent and entities first, then takes the bot turn from the REST channel', async () => {
    const text = 'Book a room in Berlin for 2 nights';
    parse = () => ({
      intent: { name: 'book_room', confidence: 0.934 },
      entities: [
        {
          entity: 'city',
          start: 15,
          end: 21,
          confidence_entity: 0.99,
          value: 'Berlin',
          extractor: 'DIETClassifier',
        },
        { entity: 'number', start: 26, end: 27, value: 2, extractor: 'DucklingEntityExtractor' },
      ],
      intent_ranking: [{ name: 'book_room', confidence: 0.934 }],
    });
    messages = body => [
      {
        recipient_id: body.sender,
        text: 'Which kind of room?',
        buttons: [
          { title: 'Single', payload: '/choose{"room":"single"}' },
          { title: 'Double', payload: '/choose{"room":"double"}' },
        ],
      },
      { recipient_id: body.sender, image: 'https://example.com/rooms.jpg' },
      { recipient_id: body.sender, custom: { kind: 'carousel' } },
    ];
    const before = server.received.length;
    const result = await rasa(turn(text), rasaSettings(), ctx());
    expect(result).toEqual({
      intent: { name: 'book_room', confidence: 0.934 },
      entities: [
        { kind: 'city', value: 'Berlin', text: 'Berlin', start: 15, end: 21 },
        { kind: 'number', value: '2', text: '2', start: 26, end: 27 },
      ],
      replies: ['Which kind of room?\nSingle\nDouble', 'https://example.com/rooms.jpg'],
      handoff: undefined,
      provider: 'rasa',
    });
    const [parsed, webhook] = server.received.slice(before);
    expect(parsed?.path).toBe(`/model/parse?token=${RASA_TOKEN}`);
    expect(JSON.parse(parsed?.body ?? '')).toEqual({ text });
    expect(webhook?.path).toBe(`/webhooks/rest/webhook?token=${RASA_TOKEN}`);
    expect(JSON.parse(webhook?.body ?? '')).toEqual({
      sender: '7d5c2f0e-8a43-4f7e-9a59-0c7f2b1e4d10',
      message: text,
    });
  });

  it('takes a JWT; nlu_fallback is no intent; an intent of data.handoffIntents hands off', async () => {
    const jwt = await new SignJWT({ user: { username: 'nexus', role: 'admin' } })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(RASA_JWT_SECRET);
    messages = body => [{ recipient_id: body.sender, text: 'Let me get a colleague.' }];
    parse = () => ({ intent: { name: 'human_handoff', confidence: 0.88 }, entities: [] });
    const settings = rasaSettings({ handoffIntents: ['human_handoff'] }, { jwt });
    const human = await rasa(turn('a human please'), settings, ctx());
    expect(human.intent).toEqual({ name: 'human_handoff', confidence: 0.88 });
    expect(human.handoff).toEqual({
      detail: 'Rasa parsed human_handoff, a handoff intent (data.handoffIntents)',
    });
    expect(server.received.at(-2)?.headers.authorization).toBe(`Bearer ${jwt}`);

    parse = () => ({ intent: { name: 'nlu_fallback', confidence: 0.3 }, entities: [] });
    const lost = await rasa(turn('qwerty'), settings, ctx());
    expect(lost.intent).toBeUndefined();
    expect(lost.handoff).toBeUndefined();
    expect(lost.replies).toEqual(['Let me get a colleague.']);
  });

  it('with data.parse false only the REST channel is asked', async () => {
    messages = body => [{ recipient_id: body.sender, text: 'Hello!' }];
    const before = server.received.length;
    const result = await rasa(turn('hi'), rasaSettings({ parse: false }), ctx());
    expect(result).toEqual({
      intent: undefined,
      entities: [],
      replies: ['Hello!'],
      handoff: undefined,
      provider: 'rasa',
    });
    expect(server.received.slice(before).map(r => new URL(r.path, 'http://x').pathname)).toEqual([
      '/webhooks/rest/webhook',
    ]);
  });

  it('a wrong token or JWT is refused (not retried), and the message is not sent to the bot', async () => {
    const before = server.received.length;
    const error = await expectPermanent(
      rasa(turn('hi'), rasaSettings({}, { token: 'wrong' }), ctx()),
      'NEXUS_ERR_NLU_PROVIDER_REFUSED',
    );
    expect(error.message).toContain('rasa /model/parse answered 401');
    const forged = await new SignJWT({ user: { username: 'nexus', role: 'admin' } })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode('another-secret-0123456789abcdef'));
    await expectPermanent(
      rasa(turn('hi'), rasaSettings({}, { jwt: forged }), ctx()),
      'NEXUS_ERR_NLU_PROVIDER_REFUSED',
    );
    const paths = server.received.slice(before).map(r => new URL(r.path, 'http://x').pathname);
    expect(paths).toEqual(['/model/parse', '/model/parse']);
  });

  it('a webhook answer that is not a list is a bad answer; missing settings are not configured', async () => {
    messages = () => ({ error: 'unexpected' });
    const error = await expectPermanent(
      rasa(turn('hi'), rasaSettings({ parse: false }), ctx()),
      'NEXUS_ERR_NLU_PROVIDER_BAD_ANSWER',
    );
    expect(error.message).toContain(
      'rasa /webhooks/rest/webhook answered 2xx with an unexpected body',
    );
    const before = server.received.length;
    await expectPermanent(
      rasa(turn('hi'), { data: {}, secret: {} }, ctx()),
      'NEXUS_ERR_NLU_NOT_CONFIGURED',
    );
    await expectPermanent(
      rasa(turn('hi'), { url: 'not a url', data: {}, secret: {} }, ctx()),
      'NEXUS_ERR_NLU_NOT_CONFIGURED',
    );
    expect(server.received.length).toBe(before);
  });

  describe('failures', () => {
    faultCases(
      () => server.state,
      () => ({ provider: rasa, settings: rasaSettings() }),
    );
  });
});
