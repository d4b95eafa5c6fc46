import type { DatabasePool } from 'slonik';
import { searchArticles, type OutcomeFields, type StoredMessage } from '../../db/queries/athena.js';
import type { Logger } from '../../lib/logger.js';
import { suggestionsTotal } from '../../lib/metrics.js';
import {
  asJobFailure,
  NexusRefusedError,
  NexusUnavailableError,
  type NexusClient,
} from '../nexus-client.js';
import type { NluResult } from '../nlu/provider.js';

/** Knowledge articles suggested per message, at most. */
const ARTICLES_PER_MESSAGE = 3;

/** An article's rank (`ts_rank_cd`, 0..∞) as a confidence in 0..1. */
const rankConfidence = (rank: number) => Math.round((rank / (rank + 0.1)) * 1000) / 1000;

export interface AssistDeps {
  db: DatabasePool;
  nexus: NexusClient;
}

/** One customer message to assist with. */
export interface AssistTurn {
  message: StoredMessage;
  /** The NLU provider's answer; none when the tenant has no provider. */
  result: NluResult | undefined;
  provider: string;
  /** Whether the tenant has knowledge articles to search. */
  withArticles: boolean;
  /** Records the outcome (with the job's completion, by the caller). */
  record(outcome: OutcomeFields): Promise<unknown>;
}

/**
 * Agent assist for one customer message of a conversation an agent handles (or will): the
 * provider's replies as suggested answers (with the intent's confidence), the tenant's best
 * knowledge articles, the intent, entities and sentiment, posted to the hub as one suggestion
 * (the hub's answer is idempotent on the message, so a retry adds nothing). Nothing is posted
 * when nothing was found. The hub unreachable: retried; the hub refusing (a finished
 * interaction): nothing to do.
 */
export async function suggest(deps: AssistDeps, turn: AssistTurn, log: Logger): Promise<void> {
  const { message, result, provider } = turn;
  const articles = turn.withArticles
    ? await searchArticles(deps.db, message.tenant_id, message.text, ARTICLES_PER_MESSAGE)
    : [];
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
  const outcome = (name: 'suggested' | 'no-match' | 'failed') =>
    turn.record({
      outcome: name,
      provider,
      intent: result?.intent?.name ?? null,
      confidence: result?.intent?.confidence ?? null,
    });
  if (suggestions.length === 0 && !result?.intent) {
    await outcome('no-match');
    suggestionsTotal.inc({ provider, outcome: 'no-match' });
    return;
  }
  try {
    await deps.nexus.postSuggestion(message.tenant_id, message.interaction_id, {
      messageId: message.message_id,
      connector: message.connector,
      provider,
      ...(result?.intent ? { intent: result.intent } : {}),
      ...(result?.entities.length ? { entities: result.entities.slice(0, 50) } : {}),
      ...(result?.sentiment ? { sentiment: result.sentiment } : {}),
      suggestions: suggestions.slice(0, 10),
    });
  } catch (error) {
    if (error instanceof NexusUnavailableError) {
      suggestionsTotal.inc({ provider, outcome: 'retry' });
      throw asJobFailure(error);
    }
    if (error instanceof NexusRefusedError && error.status !== 401 && error.status !== 403) {
      log.info({ status: error.status }, 'the hub refused the suggestion');
      await outcome('failed');
      suggestionsTotal.inc({ provider, outcome: 'refused' });
      return;
    }
    throw error;
  }
  await outcome('suggested');
  suggestionsTotal.inc({ provider, outcome: 'posted' });
}
