/**
 * Bots (docs/ai-connector.md "Bots"): why a conversation a bot holds goes to the agents of its
 * queue. The AI connector asks with one of {@link BOT_HANDOFF_REASONS}; the hub adds `deadline`
 * when the queue's `botHandoffAfterMs` passes first.
 */

/** The reasons the AI connector may give (`POST …/bot/handoff`). */
export const BOT_HANDOFF_REASONS = [
  'intent',
  'low-confidence',
  'provider',
  'keyword',
  'provider-unavailable',
] as const;
export type BotHandoffReason = (typeof BOT_HANDOFF_REASONS)[number];

/** Every reason an `interaction.handoff` event carries. */
export const HANDOFF_REASONS = [...BOT_HANDOFF_REASONS, 'deadline'] as const;
export type HandoffReason = (typeof HANDOFF_REASONS)[number];

/** The nickname of a queue's bot unless the queue names it (`botName`). */
export const DEFAULT_BOT_NAME = 'Bot';

/** How long a bot holds a conversation unless the queue says (`botHandoffAfterMs`): 5 minutes. */
export const DEFAULT_BOT_HANDOFF_AFTER_MS = 300_000;

/** The participant id of a queue's bot in events and messages (`from.id`). */
export const BOT_PARTICIPANT_ID = 'bot';
