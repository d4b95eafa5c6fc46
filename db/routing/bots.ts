import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { BOT_PARTICIPANT_ID, DEFAULT_BOT_NAME } from '../../domain/bots.js';
import { appendEvents, type InteractionEvent } from '../conversation.js';
import { recordDecision } from './decisions.js';

/**
 * Bots, the hub's side (docs/ai-connector.md "Bots"): a `botFirst` queue gives a new
 * conversation to the AI connector's bot (routing state `bot`) instead of offering it to
 * agents, provided the tenant runs a connector. The bot answers through the hub
 * (api/chat/bot-desk.ts) until it hands the conversation to the queue's agents, or the queue's
 * deadline does (db/routing/handoff.ts). This file: which queues give conversations to a bot,
 * the engagement itself, the queue's bot settings and where a conversation is, as the connector
 * reads it.
 */

/** The guide's target the AI connector receives the tenant's events through. */
export const AI_CONNECTOR_TARGET = 'WebhookTransportTarget-ai-connector';

/** A queue's bot: its nickname and how long it may hold a conversation. */
export interface QueueBot {
  name: string;
  handoffAfterMs: number;
}

/**
 * The bot of a `botFirst` queue whose tenant runs the AI connector: an enabled
 * `WebhookTransportTarget-ai-connector` target that receives customer messages. Undefined
 * otherwise, and the queue routes to its agents as if it were not `botFirst`: a conversation is
 * never given to a bot nobody runs.
 */
export async function queueBot(
  tx: CommonQueryMethods,
  tenantId: string,
  queue: string,
): Promise<QueueBot | undefined> {
  const row = await tx.maybeOne(
    sql.type(z.object({ bot_name: z.string(), bot_handoff_after_ms: z.number() }))`
      SELECT q.bot_name, q.bot_handoff_after_ms FROM routing_queues q
      WHERE q.tenant_id = ${tenantId} AND q.name = ${queue} AND q.bot_first
        AND EXISTS (
          SELECT 1 FROM webhook_targets t
          WHERE t.tenant_id = q.tenant_id AND t.name = ${AI_CONNECTOR_TARGET} AND t.enabled
            AND (t.event_types IS NULL OR 'message.created' = ANY (t.event_types)))`,
  );
  return row ? { name: row.bot_name, handoffAfterMs: row.bot_handoff_after_ms } : undefined;
}

/** The bot as a participant of events (`participant.joined`, `from` of its messages). */
export const botParticipant = (name: string) => ({
  id: BOT_PARTICIPANT_ID,
  type: 'bot' as const,
  nickname: name,
});

/**
 * Gives a new, unrouted interaction to its queue's bot: routing state `bot` until the queue's
 * deadline, an `interaction.bot` event and the bot's `participant.joined`. Undefined when the
 * interaction was routed already. The caller times the deadline out after the commit
 * (queues/maintenance.ts `scheduleBotDeadline`).
 */
export async function engageBot(
  tx: CommonQueryMethods,
  interaction: { id: string; tenantId: string },
  queue: string,
  bot: QueueBot,
): Promise<{ events: InteractionEvent[]; handoffAt: Date } | undefined> {
  const handoffAt = await tx.maybeOneFirst(sql.type(z.object({ bot_handoff_at: z.string() }))`
    UPDATE interactions SET queue_name = ${queue}, routing_state = 'bot', bot_since = now(),
           bot_handoff_at = now() + make_interval(secs => ${bot.handoffAfterMs / 1000}),
           updated_at = now()
    WHERE id = ${interaction.id} AND routing_state IS NULL
    RETURNING bot_handoff_at`);
  if (!handoffAt) return undefined;
  await recordDecision(tx, {
    tenantId: interaction.tenantId,
    interactionId: interaction.id,
    queue,
    agentId: null,
    decision: 'bot',
    reason: `queue ${queue} is botFirst: its bot answers first`,
    waitedMs: 0,
  });
  const events = await appendEvents(tx, interaction.id, [
    { type: 'interaction.bot', payload: { queue, handoffAt } },
    { type: 'participant.joined', payload: { participant: botParticipant(bot.name) } },
  ]);
  return { events, handoffAt: new Date(handoffAt) };
}

/** Where a conversation is, as the AI connector reads it. */
export const CONVERSATION_STATES = [
  'routing',
  'bot',
  'queued',
  'offered',
  'assigned',
  'parked',
  'done',
] as const;
export type ConversationState = (typeof CONVERSATION_STATES)[number];

/** `done` once it ended; else its routing state; `routing` when it has none (not routed yet). */
export function conversationState(state: string, routingState: string | null): ConversationState {
  if (state === 'done') return 'done';
  const found = CONVERSATION_STATES.find(known => known === routingState);
  return found ?? 'routing';
}

export interface ConversationView {
  id: string;
  state: ConversationState;
  queue: string | null;
  /** The chat endpoint the conversation came in by (null for channels without one). */
  endpoint: string | null;
  media: string;
  subtype: string;
  /** While the bot holds the conversation: since when, and when the deadline hands it off. */
  bot: { since: string; handoffAt: string } | null;
}

/** The tenant's interaction as the AI connector reads it; undefined when unknown or another's. */
export async function conversationView(
  db: CommonQueryMethods,
  tenantId: string,
  interactionId: string,
): Promise<ConversationView | undefined> {
  const row = await db.maybeOne(
    sql.type(
      z.object({
        id: z.string(),
        state: z.string(),
        routing_state: z.string().nullable(),
        queue_name: z.string().nullable(),
        endpoint: z.string().nullable(),
        media: z.string(),
        subtype: z.string(),
        bot_since: z.string().nullable(),
        bot_handoff_at: z.string().nullable(),
      }),
    )`
      SELECT id, state, routing_state, queue_name, endpoint, media, subtype, bot_since,
             bot_handoff_at
      FROM interactions WHERE id = ${interactionId} AND tenant_id = ${tenantId}`,
  );
  if (!row) return undefined;
  const state = conversationState(row.state, row.routing_state);
  return {
    id: row.id,
    state,
    queue: row.queue_name,
    endpoint: row.endpoint,
    media: row.media,
    subtype: row.subtype,
    bot:
      state === 'bot' && row.bot_since && row.bot_handoff_at
        ? { since: row.bot_since, handoffAt: row.bot_handoff_at }
        : null,
  };
}

/** The nickname of the bot of the interaction's queue (the default when the queue is gone). */
export async function botNameOf(tx: CommonQueryMethods, interactionId: string): Promise<string> {
  const name = await tx.maybeOneFirst(sql.type(z.object({ bot_name: z.string() }))`
    SELECT q.bot_name FROM interactions i
    JOIN routing_queues q ON q.tenant_id = i.tenant_id AND q.name = i.queue_name
    WHERE i.id = ${interactionId}`);
  return name ?? DEFAULT_BOT_NAME;
}

/** A queue's bot settings, as the routing queues' API reads and writes them. */
export interface QueueBotSettings {
  botHandoffAfterMs: number;
  botName: string;
}

/** Stores a queue's bot settings (the queue exists: call after it is written). */
export async function setQueueBotSettings(
  tx: CommonQueryMethods,
  tenantId: string,
  queue: string,
  settings: QueueBotSettings,
): Promise<void> {
  await tx.query(sql.unsafe`
    UPDATE routing_queues SET bot_handoff_after_ms = ${settings.botHandoffAfterMs},
           bot_name = ${settings.botName}
    WHERE tenant_id = ${tenantId} AND name = ${queue}`);
}

/** The bot settings of a tenant's queues, by queue name. */
export async function queueBotSettings(
  db: CommonQueryMethods,
  tenantId: string,
): Promise<Map<string, QueueBotSettings>> {
  const rows = await db.any(
    sql.type(
      z.object({ name: z.string(), bot_handoff_after_ms: z.number(), bot_name: z.string() }),
    )`
      SELECT name, bot_handoff_after_ms, bot_name FROM routing_queues WHERE tenant_id = ${tenantId}`,
  );
  return new Map(
    rows.map(row => [
      row.name,
      { botHandoffAfterMs: row.bot_handoff_after_ms, botName: row.bot_name },
    ]),
  );
}
