import type { DatabasePool } from 'slonik';
import {
  countBotTurn,
  recordOutcome,
  type ProviderRow,
  type StoredMessage,
} from '../../db/queries/athena.js';
import { WorkFailure } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { botTurnsTotal } from '../../lib/metrics.js';
import { asJobFailure, type HandoffReason, type NexusClient } from '../nexus-client.js';
import type { NluResult } from '../nlu/provider.js';
import { retryable, understand, type UnderstandDeps } from './understand.js';

/** Words that ask for a person, in any message to the bot (the settings' `handoffKeywords`). */
export const DEFAULT_HANDOFF_KEYWORDS = ['agent', 'human', 'person', 'operator', 'representative'];
/** Messages in a row the bot may not understand before a person takes over (`maxMisses`). */
export const DEFAULT_MAX_MISSES = 2;
export const DEFAULT_FALLBACK_TEXT = "Sorry, I didn't get that. Could you say it another way?";

export interface BotDeps extends UnderstandDeps {
  db: DatabasePool;
  nexus: NexusClient;
}

interface BotSettings {
  keywords: readonly string[];
  maxMisses: number;
  fallbackText: string;
  minConfidence: number;
}

function botSettings(data: Readonly<Record<string, unknown>>): BotSettings {
  const keywords = Array.isArray(data.handoffKeywords)
    ? data.handoffKeywords.filter((word): word is string => typeof word === 'string' && !!word)
    : DEFAULT_HANDOFF_KEYWORDS;
  const number = (value: unknown, fallback: number) =>
    typeof value === 'number' && Number.isFinite(value) ? value : fallback;
  return {
    keywords,
    maxMisses: Math.max(1, Math.floor(number(data.maxMisses, DEFAULT_MAX_MISSES))),
    fallbackText:
      typeof data.fallbackText === 'string' && data.fallbackText.trim()
        ? data.fallbackText
        : DEFAULT_FALLBACK_TEXT,
    minConfidence: number(data.minConfidence, 0.5),
  };
}

const escape = (word: string) => word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Whether the customer asks for a person in so many words. */
export function asksForPerson(text: string, keywords: readonly string[]): boolean {
  if (keywords.length === 0) return false;
  const pattern = new RegExp(
    `(^|[^\\p{L}\\p{N}])(${keywords.map(escape).join('|')})s?($|[^\\p{L}\\p{N}])`,
    'iu',
  );
  return pattern.test(text);
}

/**
 * One bot turn: the customer wrote to a conversation the bot holds (a `botFirst` queue). The
 * bot answers with the provider's replies until a handoff, which routes the conversation to the
 * queue's agents (the hub's side, docs/ai-connector.md "Bots"):
 *
 * - `keyword`: the customer asks for a person (`handoffKeywords`);
 * - `intent`: the built-in NLU matched one of the model's handoff intents;
 * - `provider`: the provider's own signal (Dialogflow CX `liveAgentHandoff`, Lex's fallback);
 * - `low-confidence`: `maxMisses` messages in a row without a confident answer (the ones
 *   before get the `fallbackText`);
 * - `provider-unavailable`: no provider configured, or the provider failed or was slow past its
 *   time limit: handed off at once, and the job then fails for good, so the failure is an
 *   undelivered record (a retry could only answer a conversation an agent now holds).
 *
 * The hub keeps the deadline (`botHandoffAfterMs`). Answers the outcome for the message's row.
 */
export async function botTurn(
  deps: BotDeps,
  message: StoredMessage,
  settings: ProviderRow | null,
  log: Logger,
): Promise<'bot-reply' | 'bot-fallback' | 'handoff' | 'skipped'> {
  const tenant = message.tenant_id;
  const interaction = message.interaction_id;
  const provider = settings?.provider ?? 'none';
  const handoff = async (reason: HandoffReason, detail: string) => {
    botTurnsTotal.inc({ provider, outcome: `handoff-${reason}` });
    try {
      await deps.nexus.handoff(tenant, interaction, { reason, detail });
    } catch (error) {
      // The hub unreachable is retried: the customer must reach an agent (the hub's deadline is
      // the last resort).
      throw asJobFailure(error);
    }
    log.info({ reason, detail }, 'bot handed the conversation to an agent');
    await recordOutcome(
      deps.db,
      { tenantId: tenant, messageId: message.message_id, connector: message.connector },
      { outcome: 'handoff', provider: settings?.provider ?? null, intent: null, confidence: null },
    );
    return 'handoff' as const;
  };

  if (!settings) return handoff('provider-unavailable', 'the tenant has no NLU provider');
  const bot = botSettings(settings.data);
  if (asksForPerson(message.text, bot.keywords)) {
    return handoff('keyword', 'the customer asked for a person');
  }
  let result: NluResult;
  try {
    result = await understand(
      deps,
      settings,
      { tenantId: tenant, interactionId: interaction, text: message.text },
      log,
    );
  } catch (error) {
    await handoff('provider-unavailable', (error as Error).message.slice(0, 500));
    // Handed off: the failure is recorded as undelivered now, not retried.
    if (retryable(error)) {
      throw new WorkFailure(
        'NEXUS_ERR_NLU_PROVIDER_UNAVAILABLE',
        `${(error as Error).message} (handed off to an agent)`,
        { cause: error },
      );
    }
    throw error;
  }
  if (result.handoff) {
    return handoff(settings.provider === 'builtin' ? 'intent' : 'provider', result.handoff.detail);
  }
  const understood =
    result.intent !== undefined &&
    result.intent.confidence >= bot.minConfidence &&
    result.replies.length > 0;
  const misses = await countBotTurn(deps.db, tenant, interaction, !understood);
  if (!understood && misses >= bot.maxMisses) {
    return handoff('low-confidence', `${misses} messages in a row not understood`);
  }
  const texts = understood ? result.replies.slice(0, 5) : [bot.fallbackText];
  let posted: boolean;
  try {
    posted = await deps.nexus.postBotMessages(tenant, interaction, {
      replyTo: message.message_id,
      connector: message.connector,
      texts: texts.map(text => text.slice(0, 4_000)),
    });
  } catch (error) {
    throw asJobFailure(error);
  }
  const outcome = !posted ? 'skipped' : understood ? 'bot-reply' : 'bot-fallback';
  botTurnsTotal.inc({ provider, outcome });
  await recordOutcome(
    deps.db,
    { tenantId: tenant, messageId: message.message_id, connector: message.connector },
    {
      outcome,
      provider,
      intent: result.intent?.name ?? null,
      confidence: result.intent?.confidence ?? null,
    },
  );
  return outcome;
}
