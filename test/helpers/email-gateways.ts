import { createHmac, timingSafeEqual } from 'node:crypto';
import { startReceiver, type Answer, type ReceivedRequest, type Receiver } from './receiver.js';

/**
 * Local stand-ins for the HTTP email providers, speaking their protocols and checking
 * authentication as the real ones do: SparkPost's transmissions API (the raw API key as
 * `Authorization`), a Third-Party Messaging email gateway (`X-Hub-Signature`, HMAC-SHA1 of the
 * raw body with the channel's webhook secret) and Genesys Cloud (client-credentials tokens on
 * `/oauth/token`, Bearer tokens on the agentless email API). A request that fails authentication
 * is answered 401 and never reaches the script.
 *
 * Each answers a good request with success unless a script says otherwise: `script(recipient,
 * ...answers)` queues answers for the requests whose first recipient is `recipient` (mails are
 * sent concurrently, so answers follow recipients, not arrival order).
 */

export interface EmailGateway {
  readonly url: string;
  /** Every request, authenticated or not. */
  readonly requests: ReceivedRequest[];
  /** The requests that passed authentication and reached the send API, parsed. */
  readonly sends: { readonly request: ReceivedRequest; readonly body: Record<string, unknown> }[];
  /** Queues answers for the next sends to `recipient` (then success again). */
  script(recipient: string, ...answers: Answer[]): void;
  close(): Promise<void>;
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Answer => ({
  status,
  headers: { 'Content-Type': 'application/json', ...headers },
  body: JSON.stringify(body),
});

const sameText = (a: string, b: string) =>
  a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

function parse(body: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The shared part: routing to the send API, the scripts, the record of sends. */
async function gateway(
  handle: (
    request: ReceivedRequest,
    send: (body: Record<string, unknown>, recipient: string, success: () => Answer) => Answer,
  ) => Answer,
): Promise<EmailGateway> {
  const scripts = new Map<string, Answer[]>();
  const sends: EmailGateway['sends'] = [];
  const receiver: Receiver = await startReceiver(request =>
    handle(request, (body, recipient, success) => {
      sends.push({ request, body });
      return scripts.get(recipient.toLowerCase())?.shift() ?? success();
    }),
  );
  return {
    url: receiver.url,
    requests: receiver.requests,
    sends,
    script(recipient, ...answers) {
      const key = recipient.toLowerCase();
      scripts.set(key, [...(scripts.get(key) ?? []), ...answers]);
    },
    close: () => receiver.close(),
  };
}

/**
 * SparkPost's `POST /api/v1/transmissions`: the exact API key or 401; recipients inline and
 * `content.email_rfc822` alone, or 422 as SparkPost answers an invalid transmission; success is
 * `{results: {total_rejected_recipients: 0, total_accepted_recipients, id}}`.
 */
export async function startSparkPost(apikey: string): Promise<EmailGateway> {
  let transmissions = 0;
  return gateway((request, send) => {
    if (request.method !== 'POST' || request.path.split('?')[0] !== '/api/v1/transmissions') {
      return json(404, { errors: [{ message: 'resource not found', code: '1600' }] });
    }
    const key = request.headers.authorization;
    if (typeof key !== 'string' || !sameText(key, apikey)) {
      return json(401, { errors: [{ message: 'Unauthorized.' }] });
    }
    const body = parse(request.body);
    const recipients = body?.recipients as { address?: { email?: unknown } }[] | undefined;
    const content = body?.content as Record<string, unknown> | undefined;
    if (
      !body ||
      !Array.isArray(recipients) ||
      recipients.length === 0 ||
      recipients.some(entry => typeof entry.address?.email !== 'string') ||
      typeof content?.email_rfc822 !== 'string' ||
      Object.keys(content).length !== 1
    ) {
      return json(422, {
        errors: [{ message: 'invalid data format/type', code: '1300' }],
      });
    }
    const first = recipients[0]?.address?.email as string;
    return send(body, first, () =>
      json(200, {
        results: {
          total_rejected_recipients: 0,
          total_accepted_recipients: recipients.length,
          id: String(7_000_000_000_000_000 + ++transmissions),
        },
      }),
    );
  });
}

/**
 * A Third-Party Messaging email gateway's webhook (`POST /outbound`): `X-Hub-Signature` must be
 * `sha1=` and the hex HMAC-SHA1 of the raw body with `secret`, or 401; success is
 * `{messageId: "gw-<n>"}`.
 */
export async function startAsyncGateway(secret: string): Promise<EmailGateway> {
  let messages = 0;
  return gateway((request, send) => {
    if (request.method !== 'POST' || request.path !== '/outbound') return json(404, {});
    const signature = request.headers['x-hub-signature'];
    const expected = `sha1=${createHmac('sha1', secret).update(request.body).digest('hex')}`;
    if (typeof signature !== 'string' || !sameText(signature, expected)) {
      return json(401, { error: 'bad signature' });
    }
    const body = parse(request.body);
    const message = (body?.messages as { to?: { address?: unknown }[] }[] | undefined)?.[0];
    const first = message?.to?.[0]?.address;
    if (!body || typeof first !== 'string') return json(400, { error: 'no recipient' });
    return send(body, first, () => json(200, { messageId: `gw-${++messages}` }));
  });
}

export interface GenesysCloud extends EmailGateway {
  /** How many tokens the login issued. */
  readonly tokensIssued: () => number;
  /** Every token issued so far stops working (as when a client's tokens are revoked). */
  revokeTokens(): void;
}

/**
 * Genesys Cloud: `POST /oauth/token` with HTTP Basic client credentials and
 * `grant_type=client_credentials` issues `token-<n>` for a day; `POST
 * /api/v2/conversations/emails/agentless` needs a live Bearer token (401 otherwise) and an
 * AgentlessEmailSendRequestDto (400 otherwise), and answers `{id, conversationId, ...}`.
 */
export async function startGenesysCloud(
  clientId: string,
  clientSecret: string,
): Promise<GenesysCloud> {
  let issued = 0;
  let emails = 0;
  const live = new Set<string>();
  const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
  const base = await gateway((request, send) => {
    if (request.method === 'POST' && request.path === '/oauth/token') {
      const authorization = request.headers.authorization;
      if (
        typeof authorization !== 'string' ||
        !sameText(authorization, basic) ||
        request.body !== 'grant_type=client_credentials'
      ) {
        return json(401, { error: 'invalid_client' });
      }
      const token = `token-${++issued}`;
      live.add(token);
      return json(200, { access_token: token, token_type: 'bearer', expires_in: 86_400 });
    }
    if (request.method !== 'POST' || request.path !== '/api/v2/conversations/emails/agentless') {
      return json(404, { status: 404, code: 'not.found', message: 'not found' });
    }
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
    if (!bearer || !live.has(bearer)) {
      return json(401, { status: 401, code: 'bad.credentials', message: 'Invalid login' });
    }
    const body = parse(request.body);
    const to = body?.toAddresses as { email?: unknown }[] | undefined;
    const from = body?.fromAddress as { email?: unknown } | undefined;
    if (
      !body ||
      !['Outbound', 'Inbound', 'Integration'].includes(body.senderType as string) ||
      typeof from?.email !== 'string' ||
      !Array.isArray(to) ||
      to.length === 0 ||
      to.some(entry => typeof entry.email !== 'string') ||
      (typeof body.textBody !== 'string' && typeof body.htmlBody !== 'string')
    ) {
      return json(400, { status: 400, code: 'bad.request', message: 'invalid request' });
    }
    return send(body, to[0]?.email as string, () => {
      const n = ++emails;
      return json(202, {
        id: `gc-email-${n}`,
        conversationId: `gc-conversation-${n}`,
        senderType: body.senderType,
        fromAddress: body.fromAddress,
        toAddresses: body.toAddresses,
        subject: body.subject,
        dateCreated: new Date().toISOString(),
      });
    });
  });
  return {
    ...base,
    tokensIssued: () => issued,
    revokeTokens: () => live.clear(),
  };
}
