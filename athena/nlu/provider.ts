import { EgressBlockedError, EgressTimeoutError, type EgressGuard } from '../../lib/egress.js';
import { coerceError, WorkFailure } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';

/**
 * What every NLU provider adapter of the AI connector shares: the turn it reads, what it
 * answers, and the errors that decide retries. An adapter is one function; the connector's
 * worker picks it by the provider name of the tenant's settings (built-in, Dialogflow ES and CX,
 * Amazon Lex V2, Rasa) and calls it once per customer message.
 */

/** One customer turn of one conversation. */
export interface NluRequest {
  readonly tenant: string;
  /** The conversation (the hub's interaction id): the provider's session. */
  readonly sessionId: string;
  readonly text: string;
  /** BCP 47, e.g. `en` or `en-US`. */
  readonly languageCode: string;
}

export interface NluIntent {
  readonly name: string;
  /** 0..1 */
  readonly confidence: number;
}

export interface NluEntity {
  /** `email`, `phone`, `date`, `number`, `url`, or a tenant list's or pattern's name. */
  readonly kind: string;
  /** The normalised value (an ISO date, an E.164 number, a list entry's canonical name). */
  readonly value: string;
  /** The words of the message it was found in, with their offsets when known. */
  readonly text: string;
  readonly start?: number | undefined;
  readonly end?: number | undefined;
}

export interface NluSentiment {
  /** -1 (negative) .. 1 (positive) */
  readonly score: number;
  readonly label: 'negative' | 'neutral' | 'positive';
}

/** What the provider understood, and what it would answer. */
export interface NluResult {
  /** Absent when nothing matched (a fallback). */
  readonly intent?: NluIntent | undefined;
  readonly entities: readonly NluEntity[];
  readonly sentiment?: NluSentiment | undefined;
  /** Texts the provider answers with (a bot's turn), in order; empty when it has none. */
  readonly replies: readonly string[];
  /** The provider's own signal that a person should take over (CX `liveAgentHandoff`, Lex `Close` or fallback). */
  readonly handoff?: { readonly detail: string } | undefined;
  /** The provider's name, as the metrics label it. */
  readonly provider: string;
}

/**
 * One provider's settings, as the tenant stored them: `url` where there is one, `data` its
 * plain settings, `secret` its credentials (already unsealed).
 */
export interface NluSettings {
  readonly url?: string | undefined;
  readonly data: Readonly<Record<string, unknown>>;
  readonly secret: Readonly<Record<string, unknown>>;
}

export interface NluContext {
  readonly guard: EgressGuard;
  readonly timeoutMs: number;
  readonly log: Logger;
}

export type NluProvider = (
  request: NluRequest,
  settings: NluSettings,
  ctx: NluContext,
) => Promise<NluResult>;

/** Retried by the queue: a timeout, a connection error, 408, 429 or 5xx. */
export class NluProviderUnavailableError extends WorkFailure {
  override readonly name = 'NluProviderUnavailableError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('NEXUS_ERR_NLU_PROVIDER_UNAVAILABLE', message, { retry: true, cause: options.cause });
  }
}

/** Permanent: bad credentials (401/403), an unknown agent or bot (404), any other 4xx. */
export const nluRefused = (message: string) =>
  new WorkFailure('NEXUS_ERR_NLU_PROVIDER_REFUSED', message);

/** Permanent: a 2xx whose body the adapter cannot read. */
export const nluBadAnswer = (message: string) =>
  new WorkFailure('NEXUS_ERR_NLU_PROVIDER_BAD_ANSWER', message);

/** Permanent: the settings lack what the adapter needs. */
export const nluNotConfigured = (message: string) =>
  new WorkFailure('NEXUS_ERR_NLU_NOT_CONFIGURED', message);

/** A timeout or a network error (Node's system error codes, undici's), not a refusal or a bug. */
function unanswered(error: unknown): boolean {
  if (error instanceof EgressTimeoutError) return true;
  if (error instanceof EgressBlockedError) return false;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(E[A-Z0-9_]+|UND_ERR_[A-Z_]+)$/.test(code);
}

/**
 * A request to a provider through the egress guard: no answer means the provider is unavailable
 * (retried); a 2xx returns the answer; 408, 429 and 5xx are unavailable; any other status is a
 * refusal. A blocked address or a bug is thrown as it is.
 */
export async function nluRequest(
  ctx: NluContext,
  provider: string,
  url: string,
  init: Parameters<EgressGuard['request']>[1],
): ReturnType<EgressGuard['request']> {
  let response: Awaited<ReturnType<EgressGuard['request']>>;
  try {
    response = await ctx.guard.request(url, { timeoutMs: ctx.timeoutMs, ...init });
  } catch (error) {
    if (!unanswered(error)) throw error;
    throw new NluProviderUnavailableError(`${provider}: ${coerceError(error).message}`, {
      cause: error,
    });
  }
  const { status, body } = response;
  if (status >= 200 && status < 300) return response;
  const detail = `${provider} answered ${status}: ${body.slice(0, 300)}`;
  if (status === 408 || status === 429 || status >= 500) {
    throw new NluProviderUnavailableError(detail);
  }
  throw nluRefused(detail);
}

/** A 2xx answer's JSON; anything else is a bad answer. */
export function nluJson(body: string, provider: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch {
    throw nluBadAnswer(
      `${provider} answered 2xx with a body that is not JSON: ${body.slice(0, 200)}`,
    );
  }
}
