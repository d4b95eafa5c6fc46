import type { ResolvedService } from '../../db/service-directory.js';
import { retryAfterMs } from '../../domain/delivery-policy.js';
import { EgressBlockedError, EgressTimeoutError, type EgressGuard } from '../../lib/egress.js';
import { coerceError, WorkFailure, type FailureCode } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { ComposedEmail, EmailToBuild } from '../email-message.js';

/**
 * What every email provider adapter shares: the mail as it is sent, the provider's answer, the
 * errors that decide retries, and the HTTP plumbing of the API providers (SparkPost, the Async
 * gateway, Genesys Cloud). The processor (processors/outbound-email.ts) composes the message once,
 * with the Message-ID stored at intake, so every provider sends the same message.
 */

/** One outbound email, as a provider adapter sends it. */
export interface EmailSend {
  readonly tenant: string;
  /** The hub's row id. */
  readonly id: string;
  /** The sending domain (its email channel's channelId). */
  readonly domain: string;
  /** The mail's fields (Async and Genesys Cloud take fields, not MIME). */
  readonly mail: EmailToBuild;
  /** The checked message: the SMTP pool builds (and signs) it as it sends, SparkPost sends its bytes. */
  readonly message: ComposedEmail;
  /** SMTP's envelope: the return path (bounces come back to it) and every recipient. */
  readonly envelope: { readonly from: string; readonly to: readonly string[] };
  /** A campaign's name, or null for conversation mail. */
  readonly campaign: string | null;
}

/** A recipient the provider refused at once (an SMTP RCPT rejection, SparkPost's rejected count). */
export interface RejectedRecipient {
  readonly address: string;
  /** The SMTP reply code, when the provider gave one. */
  readonly code: number | undefined;
  /** The enhanced status code (RFC 3463), when there was one. */
  readonly status: string | undefined;
  readonly response: string;
}

/** What the provider said: it took the mail (`sent`), under its own id. */
export interface EmailAccepted {
  readonly providerMessageId: string;
  /** Recipients refused at once while the others were taken. */
  readonly rejected?: readonly RejectedRecipient[];
}

export interface EmailProviderContext {
  readonly guard: EgressGuard;
  readonly timeoutMs: number;
  /** Reads a provisioned service of the tenant (cached). */
  service(name: string): Promise<ResolvedService | undefined>;
  readonly log: Logger;
}

export type EmailProvider = (send: EmailSend, ctx: EmailProviderContext) => Promise<EmailAccepted>;

/** Retried by the queue (5xx, 408, timeouts, connection errors, SMTP 4xx). */
export class EmailProviderUnavailableError extends WorkFailure {
  override readonly name = 'EmailProviderUnavailableError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('NEXUS_ERR_EMAIL_PROVIDER_UNAVAILABLE', message, { retry: true, cause: options.cause });
  }
}

/** The provider asked the hub to slow down (SparkPost's 420 and 429): wait without an attempt. */
export class EmailProviderThrottledError extends WorkFailure {
  override readonly name = 'EmailProviderThrottledError';
  constructor(
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super('NEXUS_ERR_EMAIL_PROVIDER_UNAVAILABLE', message, { retry: true });
  }
}

/**
 * Every recipient was refused at once: the mail is not sent, and its status is `bounced` (a hard
 * refusal suppresses the address), not a failed send.
 */
export class EmailRejectedError extends WorkFailure {
  override readonly name = 'EmailRejectedError';
  constructor(
    message: string,
    readonly rejected: readonly RejectedRecipient[],
  ) {
    super('NEXUS_ERR_EMAIL_PROVIDER_REFUSED', message);
  }
}

/** A permanent failure of the send, coded. */
export const refused = (code: FailureCode, message: string) => new WorkFailure(code, message);

/**
 * A request to a provider through the egress guard. No answer (a timeout, a connection error)
 * means the provider is unavailable (retried; the original is the `cause`); anything else (a
 * blocked address, a bug) is thrown as it is.
 */
export async function providerRequest(
  ctx: EmailProviderContext,
  url: string,
  init: Parameters<EgressGuard['request']>[1],
): ReturnType<EgressGuard['request']> {
  try {
    return await ctx.guard.request(url, { timeoutMs: ctx.timeoutMs, ...init });
  } catch (error) {
    if (!unanswered(error)) throw error;
    throw new EmailProviderUnavailableError(coerceError(error).message, { cause: error });
  }
}

/** A timeout or a network error (Node's system error codes, undici's), not a refusal or a bug. */
export function unanswered(error: unknown): boolean {
  if (error instanceof EgressTimeoutError) return true;
  if (error instanceof EgressBlockedError) return false;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(E[A-Z0-9_]+|UND_ERR_[A-Z_]+)$/.test(code);
}

/**
 * Throws unless an HTTP answer is a 2xx: 420 and 429 ask to slow down (Retry-After honoured),
 * 408 and 5xx are retried, any other status is a refusal.
 */
export function expectSuccess(
  response: {
    status: number;
    body: string;
    headers: Readonly<Record<string, string | string[] | undefined>>;
  },
  provider: string,
): void {
  const { status, body, headers } = response;
  if (status >= 200 && status < 300) return;
  const detail = `${provider} answered ${status}: ${body.slice(0, 300)}`;
  if (status === 420 || status === 429) {
    const header = headers['retry-after'];
    throw new EmailProviderThrottledError(
      detail,
      retryAfterMs(Array.isArray(header) ? header[0] : header, Date.now()),
    );
  }
  if (status === 408 || status >= 500) throw new EmailProviderUnavailableError(detail);
  throw refused('NEXUS_ERR_EMAIL_PROVIDER_REFUSED', detail);
}

/** A 2xx answer's JSON object; anything else is a bad answer (permanent: a retry could send the mail twice). */
export function jsonAnswer(body: string, provider: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(body);
    if (parsed !== null && typeof parsed === 'object') return parsed as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new WorkFailure(
    'NEXUS_ERR_EMAIL_PROVIDER_BAD_ANSWER',
    `${provider} answered 2xx with a body that is not a JSON object: ${body.slice(0, 200)}`,
  );
}
