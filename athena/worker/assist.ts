import type { DatabasePool } from 'slonik';
import {
  findProvider,
  findReceivedMessage,
  recordOutcome,
  searchArticles,
} from '../../db/queries/athena.js';
import type { AthenaConfig } from '../../lib/config.js';
import type { EgressGuard } from '../../lib/egress.js';
import { WorkFailure } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { nluCallsTotal, nluLatencySeconds, suggestionsTotal } from '../../lib/metrics.js';
import { SecretBox } from '../../lib/secrets.js';
import type { aiConnectorQueue } from '../../queues/ai-connector.js';
import type { Processor } from '../../workers/run-processor.js';
import { NexusRefusedError, NexusUnavailableError, type NexusClient } from '../nexus-client.js';
import { isNluProviderName, NLU_PROVIDERS } from '../nlu/index.js';
import type { NluResult } from '../nlu/provider.js';
import { providerSecretContext } from '../providers.js';

/** The provider settings a tenant's conversations use unless one names another. */
export const DEFAULT_PROVIDER = 'default';
/** Knowledge articles suggested per message, at most. */
const ARTICLES_PER_MESSAGE = 3;

export interface AssistDeps {
  db: DatabasePool;
  config: AthenaConfig;
  nexus: NexusClient;
  guard: EgressGuard;
  log: Logger;
}

/** An article's rank (`ts_rank_cd`, 0..∞) as a confidence in 0..1. */
const rankConfidence = (rank: number) => Math.round((rank / (rank + 0.1)) * 1000) / 1000;

/**
 * The `ai-connector` processor (agent assist): reads one customer message the hub delivered,
 * asks the tenant's NLU provider (`athena_providers`, the `default` entry) what it means, looks
 * up the tenant's knowledge articles, and posts what it found to the hub as one suggestion (the
 * provider's replies and the articles, with the intent, entities and sentiment), which the hub
 * hands to the agent's socket as an `assist.suggestion` event.
 *
 * - No provider configured: articles only (nothing posted when none matches).
 * - The provider down, slow past its time limit, or answering 5xx/429: retried by the queue,
 *   then undelivered (the failure codes of `athena/nlu/provider.ts`). Refused credentials fail
 *   at once.
 * - The hub unreachable: retried. The hub refusing (a finished interaction): nothing to do.
 * - The hub's answer is idempotent on the message, so a retry after a post that was recorded
 *   adds nothing.
 */
export function createAssistProcessor(deps: AssistDeps): Processor<typeof aiConnectorQueue> {
  const secrets = new SecretBox(deps.config.hub.secretKey, deps.config.hub.previousSecretKeys);
  return async (payload, ctx) => {
    const key = {
      tenantId: payload.tenantId,
      messageId: payload.messageId,
      connector: payload.connector,
    };
    const message = await findReceivedMessage(deps.db, key);
    if (!message) throw new WorkFailure('NEXUS_ERR_WORK_FAILED', 'the message is not stored');

    const settings = await findProvider(deps.db, payload.tenantId, DEFAULT_PROVIDER);
    let result: NluResult | undefined;
    if (settings) {
      if (!isNluProviderName(settings.provider)) {
        throw new WorkFailure(
          'NEXUS_ERR_NLU_NOT_CONFIGURED',
          `unknown NLU provider ${settings.provider}`,
        );
      }
      const provider = NLU_PROVIDERS[settings.provider];
      const started = performance.now();
      try {
        result = await provider(
          {
            tenant: payload.tenantId,
            sessionId: message.interaction_id,
            text: message.text,
            languageCode:
              typeof settings.data.languageCode === 'string' ? settings.data.languageCode : 'en',
          },
          {
            url: settings.url ?? undefined,
            data: settings.data,
            secret: settings.secret_sealed
              ? (secrets.open(
                  settings.secret_sealed,
                  providerSecretContext(payload.tenantId, settings.name),
                ) as Record<string, unknown>)
              : {},
          },
          { guard: deps.guard, timeoutMs: deps.config.nexus.timeoutMs, log: ctx.log },
        );
        nluCallsTotal.inc({ provider: settings.provider, outcome: 'answered' });
      } catch (error) {
        nluCallsTotal.inc({
          provider: settings.provider,
          outcome:
            error instanceof Error && error.name !== 'UnrecoverableError'
              ? 'unavailable'
              : 'failed',
        });
        throw error;
      } finally {
        nluLatencySeconds.observe(
          { provider: settings.provider },
          (performance.now() - started) / 1000,
        );
      }
    }
    const articles = await searchArticles(
      deps.db,
      payload.tenantId,
      message.text,
      ARTICLES_PER_MESSAGE,
    );
    const replyConfidence = result?.intent?.confidence ?? 0.5;
    const suggestions = [
      ...(result?.replies ?? []).map(text => ({
        type: 'reply' as const,
        text: text.slice(0, 4_000),
        confidence: replyConfidence,
      })),
      ...articles.map(article => ({
        type: 'article' as const,
        text: article.body.slice(0, 4_000),
        title: article.title,
        ...(article.url ? { url: article.url } : {}),
        confidence: rankConfidence(article.rank),
      })),
    ];
    const provider = settings?.provider ?? 'articles';
    if (suggestions.length === 0 && !result?.intent) {
      await recordOutcome(deps.db, key, {
        outcome: 'no-match',
        provider,
        intent: null,
        confidence: null,
      });
      suggestionsTotal.inc({ provider, outcome: 'no-match' });
      return;
    }
    try {
      await deps.nexus.postSuggestion(payload.tenantId, message.interaction_id, {
        messageId: payload.messageId,
        connector: payload.connector,
        provider,
        ...(result?.intent ? { intent: result.intent } : {}),
        ...(result?.entities.length ? { entities: result.entities.slice(0, 50) } : {}),
        ...(result?.sentiment ? { sentiment: result.sentiment } : {}),
        suggestions: suggestions.slice(0, 10),
      });
    } catch (error) {
      if (error instanceof NexusUnavailableError) {
        suggestionsTotal.inc({ provider, outcome: 'retry' });
        throw new WorkFailure('NEXUS_ERR_HUB_UNAVAILABLE', error.message, {
          retry: true,
          cause: error,
        });
      }
      if (error instanceof NexusRefusedError && error.status !== 401 && error.status !== 403) {
        // A finished interaction, a message the hub does not know: nothing to suggest any more.
        ctx.log.info({ status: error.status }, 'the hub refused the suggestion');
        await recordOutcome(deps.db, key, {
          outcome: 'failed',
          provider,
          intent: result?.intent?.name ?? null,
          confidence: result?.intent?.confidence ?? null,
        });
        suggestionsTotal.inc({ provider, outcome: 'refused' });
        return;
      }
      throw error;
    }
    await recordOutcome(deps.db, key, {
      outcome: 'suggested',
      provider,
      intent: result?.intent?.name ?? null,
      confidence: result?.intent?.confidence ?? null,
    });
    suggestionsTotal.inc({ provider, outcome: 'posted' });
  };
}
