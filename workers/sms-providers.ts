import { createHmac } from 'node:crypto';
import { XMLParser } from 'fast-xml-parser';
import type { ResolvedService } from '../db/service-directory.js';
import { retryAfterMs } from '../domain/delivery-policy.js';
import { EgressBlockedError, EgressTimeoutError, type EgressGuard } from '../lib/egress.js';
import { coerceError, WorkFailure, type FailureCode } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { SmsEncoding } from '../domain/sms-segments.js';
import { storedCustomHeaders } from './custom-headers.js';

/** One outbound SMS, as a provider adapter sends it. */
export interface SmsSend {
  tenant: string;
  messageId: string;
  /** The company's number (the channel's `channelId`). */
  from: string;
  /** The customer's number. */
  to: string;
  text: string;
  encoding: SmsEncoding;
}

/** What the provider said: it took the message (`sent`), under its own id when it gave one. */
export interface SmsAccepted {
  providerMessageId: string;
}

export interface ProviderContext {
  guard: EgressGuard;
  timeoutMs: number;
  /** Reads a provisioned service of the tenant (cached). */
  service(name: string): Promise<ResolvedService | undefined>;
  /** The hub's public base URL (delivery report callbacks). */
  publicUrl: string;
  /** Signs callback URLs the hub gives to gateways that cannot authenticate (Kannel). */
  callbackSignature(value: string): string;
  /** Where a stored header the hub does not send is reported. */
  log?: Logger;
}

export type SmsProvider = (send: SmsSend, ctx: ProviderContext) => Promise<SmsAccepted>;

/** Retried by the queue (5xx, 408, 429, timeouts, connection errors). */
export class ProviderUnavailableError extends WorkFailure {
  override readonly name = 'ProviderUnavailableError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('NEXUS_ERR_SMS_PROVIDER_UNAVAILABLE', message, { retry: true, cause: options.cause });
  }
}

/** The provider asked the hub to slow down (429): wait, without using an attempt. */
export class ProviderThrottledError extends WorkFailure {
  override readonly name = 'ProviderThrottledError';
  constructor(
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super('NEXUS_ERR_SMS_PROVIDER_UNAVAILABLE', message, { retry: true });
  }
}

/** A permanent failure of the send, coded (the message fails, the interaction is flagged). */
const refused = (code: FailureCode, message: string) => new WorkFailure(code, message);

/**
 * A request to a provider through the egress guard. No answer (a timeout, a connection error:
 * a system error code such as `ECONNREFUSED`) means the provider is unavailable (retried; the
 * original is the `cause`). Anything else (a blocked address: {@link EgressBlockedError}, a bug)
 * is thrown as it is.
 */
async function request(
  ctx: ProviderContext,
  url: string,
  init: Parameters<EgressGuard['request']>[1],
): ReturnType<EgressGuard['request']> {
  try {
    return await ctx.guard.request(url, init);
  } catch (error) {
    if (!unanswered(error)) throw error;
    throw new ProviderUnavailableError(coerceError(error).message, { cause: error });
  }
}

/** A timeout or a network error (Node's system error codes, undici's), not a refusal or a bug. */
function unanswered(error: unknown): boolean {
  if (error instanceof EgressTimeoutError) return true;
  if (error instanceof EgressBlockedError) return false;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(E[A-Z0-9_]+|UND_ERR_[A-Z_]+)$/.test(code);
}

/** A 2xx answer's JSON body; one that is not JSON is a bad answer, retried as before. */
function answerOf(body: string, provider: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(body);
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
  } catch (error) {
    throw new WorkFailure(
      'NEXUS_ERR_SMS_PROVIDER_BAD_ANSWER',
      `${provider} answered 2xx with a body that is not JSON: ${body.slice(0, 200)}`,
      { retry: true, cause: error },
    );
  }
}

function outcome(
  status: number,
  body: string,
  provider: string,
  headers: Readonly<Record<string, string | string[] | undefined>> = {},
): void {
  if (status >= 200 && status < 300) return;
  const detail = `${provider} answered ${status}: ${body.slice(0, 200)}`;
  if (status === 429) {
    const header = headers['retry-after'];
    throw new ProviderThrottledError(
      detail,
      retryAfterMs(Array.isArray(header) ? header[0] : header, Date.now()),
    );
  }
  if (status === 408 || status === 429 || status >= 500) throw new ProviderUnavailableError(detail);
  throw refused('NEXUS_ERR_SMS_PROVIDER_REFUSED', detail);
}

/**
 * A custom gateway through the Third-Party Messaging API (`Async` service): POST to the channel's
 * aggregator webhook, signed `X-Hub-Signature: sha1=<HMAC(body, channel's webhook secret)>`, with
 * `X-B3-TraceId` and the service's `header:` entries; the answer's `messageId` identifies the
 * message in later receipts. Body (the hub's design where the guide shows none):
 * `{messages: [{id, channelId, type: "Text", from, to, text}]}`.
 */
export const sendAsync: SmsProvider = async (send, ctx) => {
  const service = await ctx.service('Async');
  const data = service?.data as
    { channels?: { channelId: string; webhook: { url: string } }[] } | undefined;
  const secrets = service?.secret as
    { channels?: { channelId: string; webhook: { secret: string } }[] } | undefined;
  const channel = data?.channels?.find(entry => entry.channelId === send.from);
  const secret = secrets?.channels?.find(entry => entry.channelId === send.from)?.webhook.secret;
  if (!service || !channel || !secret) {
    throw refused(
      'NEXUS_ERR_SMS_PROVIDER_NOT_CONFIGURED',
      `the Async service has no channel ${send.from}`,
    );
  }
  const body = JSON.stringify({
    messages: [
      {
        id: send.messageId,
        channelId: send.from,
        type: 'Text',
        from: send.from,
        to: send.to,
        text: send.text,
      },
    ],
  });
  const response = await request(ctx, channel.webhook.url, {
    method: 'POST',
    headers: {
      ...storedCustomHeaders(service.data, service, ctx.log),
      'Content-Type': 'application/json',
      'X-Hub-Signature': `sha1=${createHmac('sha1', secret).update(body).digest('hex')}`,
      'X-B3-TraceId': send.messageId.replace(/-/g, ''),
    },
    body,
    timeoutMs: ctx.timeoutMs,
  });
  outcome(response.status, response.body, 'the aggregator', response.headers);
  let messageId: unknown;
  try {
    messageId = (JSON.parse(response.body) as { messageId?: unknown }).messageId;
  } catch {
    messageId = undefined;
  }
  if (typeof messageId !== 'string' || messageId.length === 0 || messageId.length > 255) {
    throw refused(
      'NEXUS_ERR_SMS_PROVIDER_BAD_ANSWER',
      'the aggregator answered 2xx without a messageId',
    );
  }
  return { providerMessageId: messageId };
};

/**
 * Kannel's smsbox HTTP interface (`KannelSMS` service): `GET sendsms` with the `sendsms-user`
 * credentials, UTF-8 text, and a delivery-report URL back to the hub that carries the message id
 * and a signature (Kannel cannot authenticate its callbacks). Kannel answers 202 with
 * `0: Accepted for delivery` or `3: Queued for later delivery`; it returns no id of its own, so
 * the hub's message id is the provider id.
 */
export const sendKannel: SmsProvider = async (send, ctx) => {
  const service = await ctx.service('KannelSMS');
  const credentials = service?.secret as { username?: string; password?: string } | undefined;
  if (!service?.url || !credentials?.username || !credentials.password) {
    throw refused('NEXUS_ERR_SMS_PROVIDER_NOT_CONFIGURED', 'the tenant has no KannelSMS service');
  }
  const reference = `${send.tenant}:${send.messageId}`;
  const report = new URL(`${ctx.publicUrl}/nexus/v3/sms/receipt/kannel`);
  report.searchParams.set('ccid', send.tenant);
  report.searchParams.set('id', send.messageId);
  report.searchParams.set('sig', ctx.callbackSignature(reference));
  // Kannel substitutes %d (report type) and %A (the SMSC's answer) when it calls back.
  const dlrUrl = `${report.toString()}&type=%d&answer=%A`;
  const url = new URL(service.url);
  url.searchParams.set('username', credentials.username);
  url.searchParams.set('password', credentials.password);
  url.searchParams.set('from', send.from);
  url.searchParams.set('to', send.to);
  url.searchParams.set('text', send.text);
  url.searchParams.set('charset', 'UTF-8');
  url.searchParams.set('coding', send.encoding === 'UCS-2' ? '2' : '0');
  const options = service.data as { dlrMask?: number; smsc?: string };
  url.searchParams.set('dlr-mask', String(options.dlrMask ?? 31));
  if (options.smsc) url.searchParams.set('smsc', options.smsc);
  url.searchParams.set('dlr-url', dlrUrl);
  const response = await request(ctx, url.toString(), {
    method: 'GET',
    timeoutMs: ctx.timeoutMs,
  });
  outcome(response.status, response.body, 'Kannel', response.headers);
  if (!/^\s*[03]:/.test(response.body)) {
    throw refused(
      'NEXUS_ERR_SMS_PROVIDER_REFUSED',
      `Kannel refused the message: ${response.body.slice(0, 200)}`,
    );
  }
  return { providerMessageId: send.messageId };
};

const xml = new XMLParser({ parseTagValue: false, ignoreAttributes: true });

/**
 * Kaleyra (formerly mGage) DirectTEXT (`mGageSMS` service): a form POST to
 * `<url>/a2w_preRouter/httpApiRouter` (when the service URL has no path) with HTTP Basic,
 * `reply_to` (the channel number), `recipient` and `body`; the XML answer's `code` 100 means
 * accepted, and its recipient's `messageId` identifies the message in later receipts.
 */
export const sendMgage: SmsProvider = async (send, ctx) => {
  const service = await ctx.service('mGageSMS');
  const credentials = service?.secret as { username?: string; password?: string } | undefined;
  if (!service?.url || !credentials?.username || !credentials.password) {
    throw refused('NEXUS_ERR_SMS_PROVIDER_NOT_CONFIGURED', 'the tenant has no mGageSMS service');
  }
  const url = new URL(service.url);
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/a2w_preRouter/httpApiRouter';
  const body = new URLSearchParams({
    reply_to: send.from,
    recipient: send.to.replace(/^\+/, ''),
    body: send.text,
  }).toString();
  const response = await request(ctx, url.toString(), {
    method: 'POST',
    headers: {
      ...storedCustomHeaders(service.data, service, ctx.log),
      'Content-Type': 'application/x-www-form-urlencoded',
      Authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`,
    },
    body,
    timeoutMs: ctx.timeoutMs,
  });
  outcome(response.status, response.body, 'DirectTEXT', response.headers);
  let answer: {
    httpApiResponse?: {
      code?: string;
      recipients?: { recipient?: { messageId?: string } | { messageId?: string }[] };
    };
  };
  try {
    answer = xml.parse(response.body) as typeof answer;
  } catch {
    throw refused(
      'NEXUS_ERR_SMS_PROVIDER_BAD_ANSWER',
      `DirectTEXT answered something else than XML: ${response.body.slice(0, 200)}`,
    );
  }
  const code = answer.httpApiResponse?.code;
  if (code !== '100') {
    throw refused(
      'NEXUS_ERR_SMS_PROVIDER_REFUSED',
      `DirectTEXT refused the message (code ${code ?? 'none'})`,
    );
  }
  const recipient = [answer.httpApiResponse?.recipients?.recipient ?? []].flat()[0];
  return { providerMessageId: recipient?.messageId ?? send.messageId };
};

/** Access tokens of the tenants' Genesys Cloud OAuth clients, until shortly before they expire. */
const porticoTokens = new Map<string, { token: string; until: number }>();

async function porticoToken(
  send: SmsSend,
  ctx: ProviderContext,
  refresh: boolean,
): Promise<string> {
  const idp = await ctx.service('PurecloudIDP');
  const client = idp?.secret as { clientId?: string; clientSecret?: string } | undefined;
  if (!idp?.url || !client?.clientId || !client.clientSecret) {
    throw refused(
      'NEXUS_ERR_SMS_PROVIDER_NOT_CONFIGURED',
      'the tenant has no PurecloudIDP service (the OAuth client)',
    );
  }
  const key = `${send.tenant}:${idp.url}:${client.clientId}`;
  const cached = porticoTokens.get(key);
  if (cached && !refresh && cached.until > Date.now()) return cached.token;
  const response = await request(ctx, `${idp.url.replace(/\/+$/, '')}/oauth/token`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`,
    },
    body: 'grant_type=client_credentials',
    timeoutMs: ctx.timeoutMs,
  });
  outcome(response.status, response.body, 'the Genesys Cloud login', response.headers);
  const answer = answerOf(response.body, 'the Genesys Cloud login');
  if (typeof answer.access_token !== 'string') {
    throw refused(
      'NEXUS_ERR_SMS_PROVIDER_BAD_ANSWER',
      'the Genesys Cloud login answered without an access_token',
    );
  }
  const seconds = typeof answer.expires_in === 'number' ? answer.expires_in : 3_600;
  porticoTokens.set(key, {
    token: answer.access_token,
    until: Date.now() + Math.max(0, seconds - 60) * 1000,
  });
  return answer.access_token;
}

/**
 * Genesys Cloud SMS aggregation (`Portico`; services `PorticoSMS` for the API URL and
 * `PurecloudIDP` for the OAuth client): a client-credentials token (cached until a minute before
 * it expires, fetched again once on a 401), then the agentless message API
 * `POST /api/v2/conversations/messages/agentless {fromAddress, toAddress,
 * toAddressMessengerType: "sms", textBody}`; the answer's `id` identifies the message in receipts.
 */
export const sendPortico: SmsProvider = async (send, ctx) => {
  const api = await ctx.service('PorticoSMS');
  if (!api?.url) {
    throw refused('NEXUS_ERR_SMS_PROVIDER_NOT_CONFIGURED', 'the tenant has no PorticoSMS service');
  }
  const body = JSON.stringify({
    fromAddress: send.from,
    toAddress: send.to,
    toAddressMessengerType: 'sms',
    textBody: send.text,
  });
  const post = async (refresh: boolean) =>
    request(ctx, `${api.url?.replace(/\/+$/, '')}/api/v2/conversations/messages/agentless`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Authorization: `Bearer ${await porticoToken(send, ctx, refresh)}`,
      },
      body,
      timeoutMs: ctx.timeoutMs,
    });
  let response = await post(false);
  if (response.status === 401) response = await post(true);
  outcome(response.status, response.body, 'Genesys Cloud', response.headers);
  const id = answerOf(response.body, 'Genesys Cloud').id;
  if (typeof id !== 'string' || id.length === 0) {
    throw refused(
      'NEXUS_ERR_SMS_PROVIDER_BAD_ANSWER',
      'Genesys Cloud answered without a message id',
    );
  }
  return { providerMessageId: id };
};

/** The service that holds each provider's settings (its `data.maxPerSecond` among them). */
export const PROVIDER_SERVICE: Readonly<Record<string, string>> = {
  Async: 'Async',
  Kannel: 'KannelSMS',
  mGage: 'mGageSMS',
  Portico: 'PorticoSMS',
};

export const SMS_PROVIDERS: Readonly<Record<string, SmsProvider>> = {
  Async: sendAsync,
  Kannel: sendKannel,
  mGage: sendMgage,
  Portico: sendPortico,
};
