import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { CONVERSATION_STATES, conversationView } from '../../db/routing/bots.js';
import { BOT_HANDOFF_REASONS } from '../../domain/bots.js';
import { AppError } from '../../lib/errors.js';
import type { EnqueueContext } from '../../queues/work.js';
import { assertTenant } from '../auth/principal.js';
import { BotDesk } from '../chat/bot-desk.js';
import type { ChatServices } from '../chat/chat-services.js';
import { reply } from '../error-handler.js';
import { envelopeOf, type Api } from '../openapi.js';
import { tenantId } from '../schemas.js';

/**
 * The hub's side of bots, for the AI connector and its cluster key (docs/ai-connector.md
 * "Bots"): where a conversation is, the bot's answers to the customer, and its handoff to the
 * queue's agents. A `botFirst` queue gives new conversations to the bot (db/routing/bots.ts).
 */

const params = z.object({ ccid: tenantId, id: z.string().uuid('must be an interaction id') });

const conversationOut = z
  .object({
    id: z.string(),
    state: z.enum(CONVERSATION_STATES),
    queue: z.string().nullable(),
    endpoint: z.string().nullable(),
    media: z.string(),
    subtype: z.string(),
    bot: z
      .object({ since: z.string(), handoffAt: z.string() })
      .nullable()
      .describe('While the bot holds the conversation (`state: bot`); null otherwise'),
  })
  .openapi('AiConversation');

const botMessagesBody = z
  .object({
    replyTo: z.string().uuid('must be the id of the customer message answered'),
    connector: z.string().min(1).max(64),
    texts: z.array(z.string().min(1).max(4_000)).min(1).max(5),
  })
  .strict()
  .openapi('BotMessages');

const handoffBody = z
  .object({
    reason: z.enum(BOT_HANDOFF_REASONS),
    detail: z.string().max(500).optional(),
  })
  .strict()
  .openapi('BotHandoff');

export function aiBotRoutes(
  api: Api,
  deps: { db: DatabasePool; chat: ChatServices; enqueue: EnqueueContext; smsMaxSegments?: number },
): void {
  const desk = new BotDesk(deps);

  api.route({
    method: 'get',
    path: '/nexus/v3/ai/:ccid/interactions/:id',
    tag: 'AI connector',
    summary: 'Where a conversation is (for the AI connector)',
    description:
      '`state`: `routing` (open, not routed yet), `bot`, `queued`, `offered`, `assigned`, `parked` or `done`; `bot` while the bot holds it.',
    auth: 'nexus:cluster:*',
    params,
    responses: { 200: { description: 'The conversation', schema: envelopeOf(conversationOut) } },
    async handle({ params: p, principal, res }) {
      assertTenant(principal, p.ccid);
      const view = await conversationView(deps.db, p.ccid, p.id);
      if (!view) throw new AppError('NEXUS_ERR_NOT_FOUND', 'interaction not found', 'params.id');
      reply(res, 200, view);
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/ai/:ccid/interactions/:id/bot/messages',
    tag: 'AI connector',
    summary: "The bot's answer to a customer message",
    description:
      "Each text is a message from the bot participant, in order, delivered as an agent's message is (chat socket, SMS, threaded email). Only while the bot holds the conversation (else 409 `NEXUS_ERR_BOT_NOT_ENGAGED`). Idempotent on (interaction, `replyTo`, `connector`): a repeat answers the same message ids and stores nothing.",
    auth: 'nexus:cluster:*',
    params,
    body: botMessagesBody,
    responses: {
      200: {
        description: 'Stored and sent (or stored before)',
        schema: envelopeOf(z.object({ messageIds: z.array(z.string()) })),
      },
    },
    async handle({ params: p, body, principal, res }) {
      assertTenant(principal, p.ccid);
      reply(res, 200, await desk.answer(p.ccid, p.id, body));
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/ai/:ccid/interactions/:id/bot/handoff',
    tag: 'AI connector',
    summary: "Hand the bot's conversation to the queue's agents",
    description:
      "The bot leaves, `interaction.handoff` is appended and the conversation is routed to its queue's agents. When the bot no longer holds it, nothing changes: `{handedOff: false, state}`.",
    auth: 'nexus:cluster:*',
    params,
    body: handoffBody,
    responses: {
      200: {
        description: 'Handed off, or where the conversation already is',
        schema: envelopeOf(
          z.object({
            handedOff: z.boolean(),
            state: z.enum(CONVERSATION_STATES).optional(),
          }),
        ),
      },
    },
    async handle({ params: p, body, principal, res }) {
      assertTenant(principal, p.ccid);
      reply(res, 200, await desk.handoff(p.ccid, p.id, body));
    },
  });
}
