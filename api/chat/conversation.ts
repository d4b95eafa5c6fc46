import type { CommonQueryMethods, DatabasePool } from 'slonik';
import {
  appendEvents,
  listEvents,
  sequencePendingMessages,
  type EventType,
  type InteractionEvent,
} from '../../db/conversation.js';
import { endSessionOf } from '../../db/queries/chat-sessions.js';
import { agentWorksOn } from '../../db/queries/interaction-agents.js';
import { interactionState } from '../../db/queries/interaction-state.js';
import { finishInteraction } from '../../db/queries/interactions.js';
import { abandonIfWaiting } from '../../db/routing/handover.js';
import { queueOfInteraction } from '../../db/routing/queueing.js';
import { AppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import type { QueueSet } from '../../queues/index.js';
import { routeQueues } from '../../queues/routing.js';

/**
 * What the customer and the agents do alike to a chat's event log: write events and publish them
 * after the commit, mark what they have read, type, end the chat, read the transcript. The
 * customer's session and intake are in api/chat/customer-chat.ts, the agent's desk in
 * api/chat/agent-desk.ts; api/chat/chat-services.ts builds the three.
 */

/** Text messages are at most this long (characters). */
export const MAX_TEXT = 4_096;

export interface Participant {
  type: 'customer' | 'agent';
  id: string;
  nickname: string;
}

export interface ConversationDeps {
  db: DatabasePool;
  publisher: RealtimePublisher;
  /** Producers and the logger, to time out the offers routing makes. */
  queues: QueueSet;
  log: Logger;
}

/**
 * A chat's event log, as both sides write it: everything but customer messages is numbered here,
 * in the request's transaction, and published after the commit.
 */
export class Conversation {
  constructor(private readonly deps: ConversationDeps) {}

  /** Runs `within` in a transaction and publishes the events it wrote after the commit. */
  async write(within: (tx: CommonQueryMethods) => Promise<InteractionEvent[]>): Promise<void> {
    const events = await this.deps.db.transaction(within);
    this.deps.publisher.events(events);
  }

  /** A read receipt: the participant has read up to `seq`. */
  async read(
    tenantId: string,
    interactionId: string,
    participant: Participant,
    seq: number,
    field = 'body.seq',
  ): Promise<void> {
    await this.write(async tx => {
      const state = await interactionState(tx, interactionId, tenantId);
      if (!state) throw new AppError('NEXUS_ERR_NOT_FOUND', 'interaction not found');
      if (seq > state.lastSeq) {
        throw new AppError(
          'NEXUS_ERR_VALIDATION',
          `${field}: must be at most ${state.lastSeq}, the last event of the chat`,
          field,
        );
      }
      return appendEvents(tx, interactionId, [{ type: 'read', payload: { participant, seq } }]);
    });
  }

  typing(tenantId: string, interactionId: string, participant: Participant, typing: boolean) {
    this.deps.publisher.notice({ tenantId, interactionId, participant, typing });
  }

  /** Ends the chat: the customer leaves, or an agent marks it Done. Idempotent. */
  async finish(
    tenantId: string,
    interactionId: string,
    by: Participant,
    sessionId?: string,
  ): Promise<void> {
    await this.write(async tx => {
      const state = await interactionState(tx, interactionId, tenantId);
      if (!state) throw new AppError('NEXUS_ERR_NOT_FOUND', 'interaction not found');
      // An agent marks Done only a chat it works on (joined, or assigned to it).
      if (by.type === 'agent' && state.state === 'open') {
        if (!(await agentWorksOn(tx, interactionId, by.id))) {
          throw new AppError(
            'NEXUS_ERR_NOT_ASSIGNED',
            'The agent does not work on this interaction',
          );
        }
      }
      // The customer's session ends with the chat, whoever ends it.
      await endSessionOf(tx, interactionId, sessionId);
      await abandonIfWaiting(tx, interactionId);
      if (!(await finishInteraction(tx, interactionId))) return [];
      const pending = await sequencePendingMessages(tx, interactionId);
      const events: { type: EventType; payload: Record<string, unknown> }[] = [];
      if (by.type === 'customer') {
        events.push({ type: 'participant.left', payload: { participant: by } });
      }
      events.push({ type: 'interaction.finished', payload: { by } });
      return [...pending, ...(await appendEvents(tx, interactionId, events))];
    });
    // The agent it was assigned to has room again: its queue may have someone waiting.
    const queue = await queueOfInteraction(this.deps.db, tenantId, interactionId);
    if (queue !== undefined) await routeQueues(this.deps, [{ tenantId, queue }]);
  }

  /** Events after `afterSeq` (the transcript), in order. */
  events(interactionId: string, afterSeq: number, limit: number): Promise<InteractionEvent[]> {
    return listEvents(this.deps.db, interactionId, afterSeq, limit);
  }
}
