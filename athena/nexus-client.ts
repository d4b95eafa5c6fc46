import { LRUCache } from 'lru-cache';
import type { AthenaConfig } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import { WorkFailure } from '../lib/errors.js';

/** The hub did not answer, or answered 5xx: the caller tries again later. */
export class NexusUnavailableError extends Error {
  override readonly name = 'NexusUnavailableError';
}

/** The hub refused the request (4xx): a retry would get the same answer. */
export class NexusRefusedError extends Error {
  override readonly name = 'NexusRefusedError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/**
 * A failure of a call to the hub, as a job's failure: the hub unreachable is retried
 * (`NEXUS_ERR_HUB_UNAVAILABLE`); anything else goes through as it is.
 */
export function asJobFailure(error: unknown): unknown {
  if (!(error instanceof NexusUnavailableError)) return error;
  return new WorkFailure('NEXUS_ERR_HUB_UNAVAILABLE', error.message, { retry: true, cause: error });
}

/** Where a conversation is, as the hub answers it (`GET …/ai/{ccid}/interactions/{id}`). */
export type InteractionState =
  'routing' | 'bot' | 'queued' | 'offered' | 'assigned' | 'parked' | 'done' | 'unknown';

/** A conversation as the hub answers it. */
export interface Conversation {
  state: InteractionState;
  queue: string | null;
  endpoint: string | null;
}

/** Why the bot hands a conversation to an agent (the hub's `interaction.handoff` reasons). */
export type HandoffReason =
  'intent' | 'low-confidence' | 'provider' | 'keyword' | 'provider-unavailable';

/** The target the hub delivers the connector's webhooks through (the guide's name). */
export const CONNECTOR_TARGET = 'ai-connector';

export interface SigningSecrets {
  /** The current secret first, then the previous one while it still signs. */
  readonly secrets: readonly string[];
  readonly fetchedAt: number;
}

/**
 * The connector's calls to the hub (`athena.nexus.*`), with the cluster API key: the signing
 * secrets of a tenant's `ai-connector` webhook target (cached a minute, fetched again at once
 * when a signature does not match a secret older than a few seconds, so a rotation is seen), and
 * the suggestions it posts for agents.
 */
export class NexusClient {
  private readonly secrets = new LRUCache<string, SigningSecrets>({ max: 10_000, ttl: 60_000 });

  constructor(
    private readonly config: AthenaConfig['nexus'],
    private readonly log: Logger,
  ) {}

  private url(path: string): string {
    return `${this.config.url}${this.config.apiPrefix}${path}`;
  }

  private async call(
    method: string,
    path: string,
    tenant: string,
    body?: unknown,
  ): Promise<{ status: number; json: unknown }> {
    if (!this.config.apiKey) {
      throw new NexusRefusedError('ATHENA_NEXUS_API_KEY is not set', 401);
    }
    let response: Response;
    try {
      response = await fetch(this.url(path), {
        method,
        headers: {
          'x-api-key': this.config.apiKey,
          'x-ccid': tenant,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.config.timeoutMs),
      });
    } catch (error) {
      throw new NexusUnavailableError(`the hub did not answer: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const text = await response.text();
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (response.status >= 500 || response.status === 429 || response.status === 408) {
      throw new NexusUnavailableError(`the hub answered ${response.status}: ${text.slice(0, 200)}`);
    }
    return { status: response.status, json };
  }

  /**
   * The secrets that sign the tenant's deliveries, or an empty list when the tenant or its
   * target does not exist. `fresh` skips a cached answer older than 5 s.
   */
  async signingSecrets(tenant: string, fresh = false): Promise<SigningSecrets> {
    const cached = this.secrets.get(tenant);
    if (cached && !(fresh && Date.now() - cached.fetchedAt > 5_000)) return cached;
    const { status, json } = await this.call(
      'GET',
      `/provisioning/services/${encodeURIComponent(tenant)}/WebhookTransportTarget-${CONNECTOR_TARGET}/secret`,
      tenant,
    );
    if (status === 404) {
      const none = { secrets: [], fetchedAt: Date.now() };
      this.secrets.set(tenant, none);
      return none;
    }
    if (status !== 200) {
      throw new NexusRefusedError(`reading the signing secret: the hub answered ${status}`, status);
    }
    const data = (json as { data?: { secret?: unknown; previousSecret?: unknown } } | undefined)
      ?.data;
    const secrets = [data?.secret, data?.previousSecret].filter(
      (value): value is string => typeof value === 'string' && value.length > 0,
    );
    if (secrets.length === 0) this.log.warn({ tenant }, 'the hub answered no signing secret');
    const answer = { secrets, fetchedAt: Date.now() };
    this.secrets.set(tenant, answer);
    return answer;
  }

  /** Posts an agent-assist suggestion; answers the hub's event id. */
  async postSuggestion(
    tenant: string,
    interactionId: string,
    suggestion: Record<string, unknown>,
  ): Promise<{ eventId: string }> {
    const { status, json } = await this.call(
      'POST',
      `/ai/${encodeURIComponent(tenant)}/interactions/${encodeURIComponent(interactionId)}/suggestions`,
      tenant,
      suggestion,
    );
    if (status !== 200 && status !== 201) {
      throw new NexusRefusedError(
        `posting a suggestion: the hub answered ${status}: ${JSON.stringify(json).slice(0, 300)}`,
        status,
      );
    }
    const eventId = (json as { data?: { eventId?: unknown } } | undefined)?.data?.eventId;
    return { eventId: typeof eventId === 'string' ? eventId : '' };
  }

  /**
   * Where the conversation is, and the queue and endpoint it belongs to; `unknown` when the hub
   * does not know it.
   */
  async conversation(tenant: string, interactionId: string): Promise<Conversation> {
    const { status, json } = await this.call(
      'GET',
      `/ai/${encodeURIComponent(tenant)}/interactions/${encodeURIComponent(interactionId)}`,
      tenant,
    );
    if (status === 404) return { state: 'unknown', queue: null, endpoint: null };
    if (status !== 200) {
      throw new NexusRefusedError(`reading the interaction: the hub answered ${status}`, status);
    }
    const data = (json as { data?: Record<string, unknown> } | undefined)?.data ?? {};
    const text = (value: unknown) => (typeof value === 'string' ? value : null);
    return {
      state: (text(data.state) ?? 'unknown') as InteractionState,
      queue: text(data.queue),
      endpoint: text(data.endpoint),
    };
  }

  /**
   * The bot's answer to a customer message. False when the conversation is no longer the bot's
   * (handed off, or done meanwhile): the hub stored nothing.
   */
  async postBotMessages(
    tenant: string,
    interactionId: string,
    turn: { replyTo: string; connector: string; texts: readonly string[] },
  ): Promise<boolean> {
    const { status, json } = await this.call(
      'POST',
      `/ai/${encodeURIComponent(tenant)}/interactions/${encodeURIComponent(interactionId)}/bot/messages`,
      tenant,
      turn,
    );
    if (status === 409) return false;
    if (status !== 200 && status !== 201) {
      throw new NexusRefusedError(
        `posting the bot's answer: the hub answered ${status}: ${JSON.stringify(json).slice(0, 300)}`,
        status,
      );
    }
    return true;
  }

  /** Hands the conversation to its queue's agents; false when it was no longer the bot's. */
  async handoff(
    tenant: string,
    interactionId: string,
    handoff: { reason: HandoffReason; detail?: string },
  ): Promise<boolean> {
    const { status, json } = await this.call(
      'POST',
      `/ai/${encodeURIComponent(tenant)}/interactions/${encodeURIComponent(interactionId)}/bot/handoff`,
      tenant,
      {
        reason: handoff.reason,
        ...(handoff.detail ? { detail: handoff.detail.slice(0, 500) } : {}),
      },
    );
    if (status !== 200) {
      throw new NexusRefusedError(`handing off: the hub answered ${status}`, status);
    }
    return (json as { data?: { handedOff?: unknown } } | undefined)?.data?.handedOff === true;
  }
}
