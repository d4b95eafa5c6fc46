import type { CommonQueryMethods } from 'slonik';
import { sequencePendingMessages } from '../../db/conversation.js';
import { findBotTurn, insertBotTurn, isCustomerMessageOf } from '../../db/queries/bot-turns.js';
import { findChannel } from '../../db/queries/channels.js';
import { interactionState } from '../../db/queries/interaction-state.js';
import { findCustomerAddress, markSmsAccepted } from '../../db/queries/sms.js';
import {
  botNameOf,
  botParticipant,
  conversationView,
  type ConversationState,
} from '../../db/routing/bots.js';
import { handOffBot, type HandoffOutcome } from '../../db/routing/handoff.js';
import type { BotHandoffReason } from '../../domain/bots.js';
import { smsSegments } from '../../domain/sms-segments.js';
import { AppError } from '../../lib/errors.js';
import { outboundSmsQueue } from '../../queues/index.js';
import {
  dispatchWork,
  recordWork,
  type EnqueueContext,
  type WorkRecord,
} from '../../queues/work.js';
import { recordEmailReply } from '../email/reply.js';
import type { ChatServices } from './chat-services.js';

/**
 * The bot's desk, the hub's side of a bot (docs/ai-connector.md "Bots"): the AI connector's
 * answers to a customer, delivered as an agent's messages are (api/chat/agent-desk.ts: the chat
 * socket, an SMS, a threaded email), and its handoff to the queue's agents. Both only while the
 * bot holds the conversation (routing state `bot`, db/routing/bots.ts).
 */

export interface BotDeskDeps {
  /** The event log (each write published after its commit) and the routing of queues. */
  chat: ChatServices;
  /** Where an SMS or email answer's outbound work is recorded and enqueued. */
  enqueue: EnqueueContext;
  /** The most segments an outbound SMS may take (NEXUS_SMS_MAX_SEGMENTS). */
  smsMaxSegments?: number | undefined;
}

/** One answer of the bot to one customer message. */
export interface BotTurn {
  replyTo: string;
  connector: string;
  texts: readonly string[];
}

export class BotDesk {
  constructor(private readonly deps: BotDeskDeps) {}

  /**
   * Stores the bot's answer (one message per text, in order) and sends it to the customer on the
   * conversation's channel. Idempotent on (interaction, `replyTo`, connector): a repeat answers
   * the first answer's message ids and stores nothing, whatever the conversation's state now.
   * Throws 404 for an unknown interaction, 409 NEXUS_ERR_BOT_NOT_ENGAGED when the bot does not
   * hold the conversation, 400 when `replyTo` is not a customer message of it or a text is too
   * long for an SMS.
   */
  async answer(
    tenantId: string,
    interactionId: string,
    turn: BotTurn,
  ): Promise<{ messageIds: string[] }> {
    let messageIds: string[] = [];
    const works: WorkRecord[] = [];
    await this.deps.chat.conversation.write(async tx => {
      // The numbering lock first: a repeat and its original run one after the other.
      if (!(await interactionState(tx, interactionId, tenantId))) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', 'interaction not found', 'params.id');
      }
      const earlier = await findBotTurn(tx, { interactionId, ...turn });
      if (earlier) {
        messageIds = [...earlier];
        return [];
      }
      const view = await conversationView(tx, tenantId, interactionId);
      if (view?.state !== 'bot') {
        throw new AppError(
          'NEXUS_ERR_BOT_NOT_ENGAGED',
          `the bot does not hold the conversation: it is ${view?.state ?? 'unknown'}`,
        );
      }
      if (!(await isCustomerMessageOf(tx, interactionId, turn.replyTo))) {
        throw new AppError(
          'NEXUS_ERR_VALIDATION',
          'body.replyTo: not a customer message of this interaction',
          'body.replyTo',
        );
      }
      const deliver = await this.delivery(tx, tenantId, interactionId, turn.texts);
      // The customer's messages still waiting for their number come before the answer.
      const pending = await sequencePendingMessages(tx, interactionId, { locked: true });
      const stored = await insertBotTurn(tx, {
        tenantId,
        interactionId,
        replyTo: turn.replyTo,
        connector: turn.connector,
        participant: botParticipant(await botNameOf(tx, interactionId)),
        texts: turn.texts,
      });
      for (const [index, id] of stored.ids.entries()) {
        const work = await deliver(id, turn.texts[index] ?? '');
        if (work) works.push(work);
      }
      messageIds = stored.ids;
      return [...pending, ...stored.events];
    });
    if (works.length > 0) await dispatchWork(this.deps.enqueue, works);
    return { messageIds };
  }

  /**
   * Hands the bot's conversation to its queue's agents (db/routing/handoff.ts) and routes the
   * queue at once. Throws 404 for an unknown interaction.
   */
  async handoff(
    tenantId: string,
    interactionId: string,
    handoff: { reason: BotHandoffReason; detail?: string | undefined },
  ): Promise<{ handedOff: true } | { handedOff: false; state: ConversationState }> {
    let outcome = undefined as HandoffOutcome | undefined;
    await this.deps.chat.conversation.write(async tx => {
      outcome = await handOffBot(
        tx,
        { id: interactionId, tenantId },
        { reason: handoff.reason, detail: handoff.detail ?? null },
      );
      if (!outcome) throw new AppError('NEXUS_ERR_NOT_FOUND', 'interaction not found', 'params.id');
      return outcome.events;
    });
    if (!outcome) throw new AppError('NEXUS_ERR_NOT_FOUND', 'interaction not found', 'params.id');
    if (!outcome.handedOff) return { handedOff: false, state: outcome.state };
    if (outcome.queue) await this.deps.chat.desk.route(tenantId, outcome.queue);
    return { handedOff: true };
  }

  /**
   * How the conversation's channel takes each stored message, checked before anything is
   * stored: nothing more for a web chat (its socket gets the events); an SMS (each text within
   * the segment limit) for an SMS conversation; a mail threaded on the last one for an email
   * conversation.
   */
  private async delivery(
    tx: CommonQueryMethods,
    tenantId: string,
    interactionId: string,
    texts: readonly string[],
  ): Promise<(messageId: string, text: string) => Promise<WorkRecord | undefined>> {
    const thread = await findCustomerAddress(tx, interactionId);
    if (!thread) return () => Promise.resolve(undefined);
    const channel = await findChannel(tx, tenantId, thread.channel);
    if (channel?.channel_type === 'email') {
      return (messageRowId, text) =>
        recordEmailReply(tx, this.deps.enqueue, {
          tenantId,
          interactionId,
          channel,
          messageRowId,
          text,
          options: {},
        });
    }
    if (thread.address.includes('@')) {
      throw new AppError(
        'NEXUS_ERR_EMAIL_NO_THREAD',
        "the conversation's email channel no longer exists",
        'params.id',
      );
    }
    const maxSegments = this.deps.smsMaxSegments ?? 10;
    texts.forEach((text, index) => {
      const sms = smsSegments(text);
      if (sms.segments > maxSegments) {
        throw new AppError(
          'NEXUS_ERR_SMS_TOO_LONG',
          `body.texts.${index}: takes ${sms.segments} SMS segments (${sms.encoding}); at most ${maxSegments} are allowed`,
          `body.texts.${index}`,
        );
      }
    });
    return async (messageId, text) => {
      await markSmsAccepted(tx, messageId, smsSegments(text));
      return recordWork(tx, outboundSmsQueue, { tenantId, messageId }, this.deps.enqueue);
    };
  }
}
