import { LRUCache } from 'lru-cache';
import type { DatabasePool } from 'slonik';
import {
  findReceivedMessages,
  hasArticles,
  listProviders,
  recordOutcome,
  recordOutcomes,
  type OutcomeFields,
  type ProviderRow,
  type StoredMessage,
} from '../../db/queries/athena.js';
import { GroupCommit } from '../../lib/group-commit.js';
import { WorkFailure } from '../../lib/errors.js';
import type { SecretBox } from '../../lib/secrets.js';
import type { EgressGuard } from '../../lib/egress.js';
import type { aiConnectorQueue } from '../../queues/ai-connector.js';
import type { Processor } from '../../workers/run-processor.js';
import { later } from '../../workers/send-rate.js';
import {
  asJobFailure,
  type Conversation,
  type InteractionState,
  type NexusClient,
} from '../nexus-client.js';
import type { NluResult } from '../nlu/provider.js';
import { suggest } from './assist.js';
import { botTurn } from './bot.js';
import { chooseProvider, understand } from './understand.js';

/** How long a message waits for the hub to route a new conversation before it is assisted. */
const ROUTING_WAIT_MS = 60_000;
/**
 * The states of a conversation agents handle. The bot only ever holds a new conversation, so once
 * one of these, a conversation stays an agent's (or ends, which the hub's answer to the
 * suggestion tells): the state is not asked again for each message, only every
 * {@link AGENT_SIDE_TTL_MS} (a transfer changes its queue, and so maybe its provider).
 */
const AGENT_SIDE: ReadonlySet<InteractionState> = new Set([
  'queued',
  'offered',
  'assigned',
  'parked',
]);
const AGENT_SIDE_TTL_MS = 60_000;
/** How long a worker uses a tenant's provider settings before it reads them again. */
const SETTINGS_TTL_MS = 5_000;

export interface ConnectorDeps {
  db: DatabasePool;
  nexus: NexusClient;
  secrets: SecretBox;
  guard: EgressGuard;
  /** How long an NLU provider may take to answer. */
  timeoutMs: number;
}

/**
 * The `ai-connector` processor: one customer message the hub delivered, handled by where its
 * conversation is, as the hub answers it:
 *
 * - `bot` (a `botFirst` queue's conversation the bot holds): a bot turn (athena/worker/bot.ts);
 * - `queued`, `offered`, `assigned`, `parked`: agent assist (athena/worker/assist.ts), the NLU
 *   provider's answer and the tenant's articles as one suggestion;
 * - `routing` (the hub has not routed the new conversation yet): the job waits, without using
 *   an attempt, up to a minute, then assists;
 * - `done`, or a conversation the hub does not know: nothing to do (`skipped`).
 *
 * The hub unreachable: retried, then undelivered. A provider's failures go by their kind
 * (athena/nlu/provider.ts): retried when it is down or slow, failed at once when it refuses.
 */
export function createConnectorProcessor(deps: ConnectorDeps): Processor<typeof aiConnectorQueue> {
  const agentSide = new LRUCache<string, Conversation>({ max: 100_000, ttl: AGENT_SIDE_TTL_MS });
  const tenants = new LRUCache<string, { providers: readonly ProviderRow[]; articles: boolean }>({
    max: 10_000,
    ttl: SETTINGS_TTL_MS,
    fetchMethod: async tenantId => {
      const [providers, articles] = await Promise.all([
        listProviders(deps.db, tenantId),
        hasArticles(deps.db, tenantId),
      ]);
      return { providers, articles };
    },
  });
  // Concurrent jobs read their messages, and record their outcomes, in one statement each.
  type Key = { tenantId: string; messageId: string; connector: string };
  const loads = new GroupCommit<Key, StoredMessage | null>(
    keys => findReceivedMessages(deps.db, keys),
    256,
    2,
  );
  const outcomes = new GroupCommit<Key & OutcomeFields, undefined>(
    async items => {
      await recordOutcomes(deps.db, items);
      return items.map(() => undefined);
    },
    256,
    2,
  );
  const conversationOf = async (tenantId: string, interactionId: string) => {
    const key = `${tenantId}\u0000${interactionId}`;
    const known = agentSide.get(key);
    if (known) return known;
    const conversation = await deps.nexus.conversation(tenantId, interactionId);
    if (AGENT_SIDE.has(conversation.state)) agentSide.set(key, conversation);
    return conversation;
  };
  return async (payload, ctx) => {
    const key = {
      tenantId: payload.tenantId,
      messageId: payload.messageId,
      connector: payload.connector,
    };
    const message = await loads.submit(key);
    if (!message) throw new WorkFailure('NEXUS_ERR_WORK_FAILED', 'the message is not stored');
    let conversation;
    try {
      conversation = await conversationOf(message.tenant_id, message.interaction_id);
    } catch (error) {
      throw asJobFailure(error);
    }
    const { state } = conversation;
    const log = ctx.log.child({ interactionId: message.interaction_id, state });
    if (state === 'routing' && Date.now() - ctx.job.timestamp < ROUTING_WAIT_MS) {
      const waited = Date.now() - ctx.job.timestamp;
      return later(ctx, Math.min(250 + waited, 5_000), 'the conversation is being routed');
    }
    if (state === 'done' || state === 'unknown') {
      await recordOutcome(deps.db, key, {
        outcome: 'skipped',
        provider: null,
        intent: null,
        confidence: null,
      });
      return;
    }
    const tenant = await tenants.fetch(message.tenant_id);
    const settings = chooseProvider(tenant?.providers ?? [], conversation);
    if (state === 'bot') {
      await botTurn(deps, message, settings, log);
      return;
    }
    let result: NluResult | undefined;
    if (settings) {
      result = await understand(
        deps,
        settings,
        { tenantId: message.tenant_id, interactionId: message.interaction_id, text: message.text },
        log,
      );
    }
    await suggest(
      deps,
      {
        message,
        result,
        provider: settings?.provider ?? 'articles',
        withArticles: tenant?.articles ?? true,
        // Then the runner completes the work row (grouped too).
        record: outcome => outcomes.submit({ ...key, ...outcome }),
      },
      log,
    );
  };
}
