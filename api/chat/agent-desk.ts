import { randomUUID } from 'node:crypto';
import type { CommonQueryMethods, DatabasePool } from 'slonik';
import {
  appendEvents,
  insertMessage,
  sequencePendingMessages,
  type InteractionEvent,
} from '../../db/conversation.js';
import { setAgentPresence } from '../../db/queries/agents.js';
import { findChannel, type ChannelRow } from '../../db/queries/channels.js';
import { contactByIdentifier } from '../../db/queries/contacts.js';
import { suppressionsAmong } from '../../db/queries/email-consent.js';
import { openAgentThread } from '../../db/queries/customer-threads.js';
import { findAgentEmailByClientId } from '../../db/queries/email-threads.js';
import { insertEmails, type StoredAddress } from '../../db/queries/email.js';
import { joinInteraction } from '../../db/queries/interaction-agents.js';
import { interactionState } from '../../db/queries/interaction-state.js';
import {
  consentFor,
  findAgentSmsByClientId,
  findCustomerAddress,
  markSmsAccepted,
  smsThreadKind,
  type SmsConsentState,
} from '../../db/queries/sms.js';
import { parkInteraction, transferInteraction } from '../../db/routing/handover.js';
import { acceptOffer, rejectOffer } from '../../db/routing/offers.js';
import { agentLoad, queuesOfAgent } from '../../db/routing/queueing.js';
import { smsSegments } from '../../domain/sms-segments.js';
import { AppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import { outboundSmsQueue, type QueueSet } from '../../queues/index.js';
import { outboundEmailQueue } from '../../queues/outbound-email.js';
import { routeQueues } from '../../queues/routing.js';
import {
  dispatchWork,
  recordWork,
  type EnqueueContext,
  type WorkRecord,
} from '../../queues/work.js';
import { recordEmailReply, type EmailReplyOptions } from '../email/reply.js';
import type { Conversation } from './conversation.js';

/**
 * The agent's desk: messages (an SMS conversation's reply goes out as a text, an email
 * conversation's as a mail), joining a chat,
 * answering an offer, parking and transferring a chat, and presence (ready, capacity), with the
 * routing each change calls for. Reads, typing and Done are api/chat/conversation.ts.
 */

export interface AgentDeskDeps {
  db: DatabasePool;
  /** Producers and the logger, to time out the offers routing makes. */
  queues: QueueSet;
  log: Logger;
  /** Where an SMS reply's outbound work is recorded and enqueued. */
  enqueue: EnqueueContext;
  publisher: RealtimePublisher;
  /** The most segments an outbound SMS may take (NEXUS_SMS_MAX_SEGMENTS). */
  smsMaxSegments?: number;
}

/**
 * An agent's SMS to a number that opted out of texts from the sender (the opt-out ledger, as the
 * outbound-sms worker reads it): nothing was stored.
 */
export class SmsOptedOutError extends Error {
  override readonly name = 'SmsOptedOutError';

  constructor(
    readonly sender: string,
    readonly address: string,
    readonly consent: SmsConsentState,
  ) {
    super(`${address} opted out of texts from ${sender}`);
  }
}

/**
 * An agent's new mail to an address on the tenant's suppression list (hard bounce, complaint,
 * unsubscribe, an operator's entry): nothing was stored. `field` names the recipient.
 */
export class EmailSuppressedError extends Error {
  override readonly name = 'EmailSuppressedError';

  constructor(
    readonly address: string,
    readonly reason: string,
    readonly since: string,
    readonly field: string,
  ) {
    super(`${address} is on the tenant's suppression list (${reason} since ${since})`);
  }
}

/** The first mail of a thread an agent starts: its recipients, sender and subject. */
export interface NewEmailThread {
  readonly from: StoredAddress;
  readonly to: StoredAddress;
  readonly cc: readonly StoredAddress[];
  readonly bcc: readonly StoredAddress[];
  readonly subject: string;
}

/** What an agent does to the chats offered or assigned to it, and to its own presence. */
export class AgentDesk {
  constructor(
    private readonly deps: AgentDeskDeps,
    private readonly conversation: Conversation,
  ) {}

  /**
   * An agent's message: numbered at once (after any customer message still waiting). In an SMS
   * conversation it also goes to the customer's phone (checked for length here, sent by the
   * outbound-sms worker); in an email conversation it is also a mail threaded on the
   * conversation's last one (api/email/reply.ts), sent by the outbound-email worker.
   */
  async agentMessage(
    tenantId: string,
    interactionId: string,
    agent: { id: string; name: string },
    text: string,
    clientMessageId: string | null,
    email?: EmailReplyOptions,
  ): Promise<{ id: string; created: boolean }> {
    let result = { id: '', created: false };
    let work: WorkRecord | undefined;
    await this.conversation.write(async tx => {
      await this.assertOpen(tx, interactionId, tenantId);
      const written = await this.writeAgentMessage(
        tx,
        tenantId,
        interactionId,
        agent,
        text,
        clientMessageId,
        email,
      );
      result = written.message;
      work = written.work;
      return written.events;
    });
    if (work) await dispatchWork(this.deps.enqueue, [work]);
    return result;
  }

  /**
   * An agent starts an SMS conversation with `to` from `channel` (an SMS sender of the tenant),
   * in one transaction: the number's contact found or created by its phone identifier, an
   * interaction as inbound texts open (started, the agent joined and assigned; the customer's
   * replies thread into it), and the agent's message with its `outbound-sms` work, as
   * {@link agentMessage} writes it. A number that opted out of texts from the sender is refused
   * with {@link SmsOptedOutError} before anything is stored. A conversation with the number on
   * the channel that is open already takes the message instead. A retry with the same
   * `clientMessageId` answers the first message and stores nothing.
   */
  async startSmsConversation(
    tenantId: string,
    agent: { id: string; name: string },
    start: { channel: ChannelRow; to: string; text: string; clientMessageId: string | null },
  ): Promise<{ interactionId: string; messageId: string; created: boolean }> {
    const { channel, to } = start;
    let result = { interactionId: '', messageId: '', created: false };
    let work: WorkRecord | undefined;
    await this.conversation.write(async tx => {
      if (start.clientMessageId !== null) {
        const earlier = await findAgentSmsByClientId(tx, {
          tenantId,
          channel: channel.name,
          address: to,
          agentId: agent.id,
          clientMessageId: start.clientMessageId,
        });
        if (earlier) {
          result = { ...earlier, created: false };
          return [];
        }
      }
      // The worker checks again when it sends: a STOP may arrive in between.
      const consent = await consentFor(tx, tenantId, channel.channel_id, to);
      if (consent?.opted_out) throw new SmsOptedOutError(channel.channel_id, to, consent);
      const { contactId, returning } = await contactByIdentifier(tx, tenantId, 'phone', to);
      const kind = smsThreadKind(channel);
      const opened = await openAgentThread(tx, {
        tenantId,
        channel,
        address: to,
        contactId,
        agentId: agent.id,
        kind,
      });
      const events: InteractionEvent[] = [];
      if (opened.created) {
        events.push(
          ...(await this.agentStartEvents(tx, opened, agent, {
            mediaType: kind.media,
            interactionSubtype: kind.subtype,
            endpoint: channel.endpoint,
            contactId,
            returningContact: returning,
            customer: to,
          })),
        );
      }
      const written = await this.writeAgentMessage(
        tx,
        tenantId,
        opened.id,
        agent,
        start.text,
        start.clientMessageId,
      );
      result = {
        interactionId: opened.id,
        messageId: written.message.id,
        created: written.message.created,
      };
      work = written.work;
      return [...events, ...written.events];
    });
    if (work) await dispatchWork(this.deps.enqueue, [work]);
    return result;
  }

  /**
   * An agent starts an email conversation with `thread.to` from `channel` (an email channel of
   * the tenant), in one transaction, as {@link startSmsConversation} does for SMS: the address's
   * contact found or created by its email identifier, an interaction started and assigned to the
   * agent (the customer's open conversation on the channel takes the mail instead), the agent's
   * message, and its mail as a new thread (no `In-Reply-To`, the hub's `Message-ID`) with its
   * `outbound-email` work; the customer's reply threads into the conversation by `In-Reply-To`.
   * A recipient on the tenant's suppression list is refused with {@link EmailSuppressedError}
   * before anything is stored. A retry with the same `clientMessageId` answers the first
   * message and stores nothing.
   */
  async startEmailConversation(
    tenantId: string,
    agent: { id: string; name: string },
    start: {
      channel: ChannelRow;
      thread: NewEmailThread;
      text: string;
      clientMessageId: string | null;
    },
  ): Promise<{ interactionId: string; messageId: string; created: boolean }> {
    const { channel, thread } = start;
    const address = thread.to.address.toLowerCase();
    let result = { interactionId: '', messageId: '', created: false };
    let work: WorkRecord | undefined;
    await this.conversation.write(async tx => {
      if (start.clientMessageId !== null) {
        const earlier = await findAgentEmailByClientId(tx, {
          tenantId,
          channel: channel.name,
          address,
          agentId: agent.id,
          clientMessageId: start.clientMessageId,
        });
        if (earlier) {
          result = { ...earlier, created: false };
          return [];
        }
      }
      const recipients = [
        { field: 'body.to', address: thread.to.address },
        ...thread.cc.map((entry, index) => ({ field: `body.cc.${index}`, address: entry.address })),
        ...thread.bcc.map((entry, index) => ({
          field: `body.bcc.${index}`,
          address: entry.address,
        })),
      ];
      const suppressed = await suppressionsAmong(
        tx,
        tenantId,
        recipients.map(entry => entry.address),
      );
      for (const recipient of recipients) {
        const entry = suppressed.get(recipient.address.toLowerCase());
        if (entry) {
          throw new EmailSuppressedError(
            recipient.address,
            entry.reason,
            entry.updated_at,
            recipient.field,
          );
        }
      }
      const { contactId, returning } = await contactByIdentifier(tx, tenantId, 'email', address);
      const kind = { media: channel.media ?? 'email', subtype: 'OutboundNew' };
      const opened = await openAgentThread(tx, {
        tenantId,
        channel,
        address,
        contactId,
        agentId: agent.id,
        kind,
      });
      const events: InteractionEvent[] = [];
      if (opened.created) {
        events.push(
          ...(await this.agentStartEvents(tx, opened, agent, {
            mediaType: kind.media,
            interactionSubtype: kind.subtype,
            endpoint: channel.endpoint,
            contactId,
            returningContact: returning,
            customer: address,
          })),
        );
      }
      const written = await this.writeAgentMessage(
        tx,
        tenantId,
        opened.id,
        agent,
        start.text,
        start.clientMessageId,
        undefined,
        thread,
      );
      result = {
        interactionId: opened.id,
        messageId: written.message.id,
        created: written.message.created,
      };
      work = written.work;
      return [...events, ...written.events];
    });
    if (work) await dispatchWork(this.deps.enqueue, [work]);
    return result;
  }

  /**
   * Writes an agent's message into an open interaction the caller has locked: the join, the
   * message (measured and given its `outbound-sms` work in an SMS conversation, its mail in an
   * email one: an answer threaded on the last mail, or the first mail of `newThread`) and the events
   * numbering it. Dispatch the work after the commit.
   */
  private async writeAgentMessage(
    tx: CommonQueryMethods,
    tenantId: string,
    interactionId: string,
    agent: { id: string; name: string },
    text: string,
    clientMessageId: string | null,
    email?: EmailReplyOptions,
    newThread?: NewEmailThread,
  ): Promise<{
    message: { id: string; created: boolean };
    work: WorkRecord | undefined;
    events: InteractionEvent[];
  }> {
    let work: WorkRecord | undefined;
    const thread = await findCustomerAddress(tx, interactionId);
    const channel = thread ? await findChannel(tx, tenantId, thread.channel) : undefined;
    const emailChannel = channel?.channel_type === 'email' ? channel : undefined;
    // An email conversation whose channel is gone: its answer could not go anywhere.
    if (thread?.address.includes('@') && !emailChannel) {
      throw new AppError(
        'NEXUS_ERR_EMAIL_NO_THREAD',
        "the conversation's email channel no longer exists",
        'params.id',
      );
    }
    if (email && !emailChannel && (email.cc?.length || email.bcc?.length)) {
      throw new AppError(
        'NEXUS_ERR_VALIDATION',
        'body.cc: Cc and Bcc apply to email conversations only',
        email.cc?.length ? 'body.cc' : 'body.bcc',
      );
    }
    const sms = thread && !emailChannel ? smsSegments(text) : undefined;
    const maxSegments = this.deps.smsMaxSegments ?? 10;
    if (sms && sms.segments > maxSegments) {
      throw new AppError(
        'NEXUS_ERR_SMS_TOO_LONG',
        `body.text: takes ${sms.segments} SMS segments (${sms.encoding}); at most ${maxSegments} are allowed`,
        'body.text',
      );
    }
    const joined = await this.joinEvents(tx, interactionId, agent);
    const stored = await insertMessage(tx, {
      id: randomUUID(),
      tenantId,
      interactionId,
      direction: 'outbound',
      senderType: 'agent',
      senderId: agent.id,
      text,
      clientMessageId,
    });
    if (sms && stored.created) {
      await markSmsAccepted(tx, stored.id, sms);
      work = await recordWork(
        tx,
        outboundSmsQueue,
        { tenantId, messageId: stored.id },
        this.deps.enqueue,
      );
    }
    if (emailChannel && stored.created) {
      work = newThread
        ? await recordNewEmailThread(tx, this.deps.enqueue, {
            tenantId,
            interactionId,
            channel: emailChannel,
            messageRowId: stored.id,
            text,
            thread: newThread,
          })
        : await recordEmailReply(tx, this.deps.enqueue, {
            tenantId,
            interactionId,
            channel: emailChannel,
            messageRowId: stored.id,
            text,
            options: email ?? {},
          });
    }
    return {
      message: { id: stored.id, created: stored.created },
      work,
      events: [...joined, ...(await sequencePendingMessages(tx, interactionId))],
    };
  }

  async agentJoin(
    tenantId: string,
    interactionId: string,
    agent: { id: string; name: string },
  ): Promise<void> {
    await this.conversation.write(async tx => {
      await this.assertOpen(tx, interactionId, tenantId);
      return this.joinEvents(tx, interactionId, agent);
    });
  }

  /** Assigns what waits in a queue; routing errors are logged (the maintenance sweep retries). */
  async route(tenantId: string, queue: string): Promise<void> {
    await routeQueues(this.deps, [{ tenantId, queue }]);
  }

  /** The agent accepts the interaction offered to it: assigned, joined. */
  async acceptOffer(
    tenantId: string,
    interactionId: string,
    agent: { id: string; name: string },
  ): Promise<void> {
    await this.conversation.write(tx => acceptOffer(tx, { id: interactionId, tenantId }, agent));
  }

  /** The agent rejects its offer: the interaction waits again and goes to someone else. */
  async rejectOffer(tenantId: string, interactionId: string, agentId: string): Promise<void> {
    const { queue, events } = await this.deps.db.transaction(tx =>
      rejectOffer(tx, { id: interactionId, tenantId }, agentId),
    );
    this.deps.publisher.events(events);
    if (queue) await this.route(tenantId, queue);
  }

  /** The agent parks its chat (`asynchold`) until the customer writes; its capacity frees up. */
  async park(
    tenantId: string,
    interactionId: string,
    agent: { id: string; name: string },
  ): Promise<void> {
    const { queue, events } = await this.deps.db.transaction(tx =>
      parkInteraction(tx, { id: interactionId, tenantId }, agent),
    );
    this.deps.publisher.events(events);
    if (queue) await this.route(tenantId, queue);
  }

  /** The agent hands the chat to another queue or agent (see db/routing/handover.ts). */
  async transfer(
    tenantId: string,
    interactionId: string,
    agent: { id: string; name: string },
    to: { queue: string } | { agentId: string },
  ): Promise<void> {
    const { queue, events } = await this.deps.db.transaction(tx =>
      transferInteraction(tx, { id: interactionId, tenantId }, agent, to),
    );
    this.deps.publisher.events(events);
    await this.route(tenantId, queue);
    // The agent has room again: its own queues may have someone waiting.
    const served = await queuesOfAgent(this.deps.db, agent.id);
    await routeQueues(
      this.deps,
      served.filter(other => other.queue !== queue),
    );
  }

  /** An agent becomes ready or not, or changes capacity; a ready agent gets waiting work. */
  async presence(
    tenantId: string,
    agentId: string,
    change: { ready?: boolean | undefined; capacity?: number | undefined },
  ): Promise<{ ready: boolean; capacity: number; load: number }> {
    const row = await setAgentPresence(this.deps.db, tenantId, agentId, change);
    if (row.ready) await routeQueues(this.deps, await queuesOfAgent(this.deps.db, agentId));
    return { ...row, load: await agentLoad(this.deps.db, agentId) };
  }

  /**
   * The events of a conversation an agent starts (an SMS or an email to a customer): started,
   * the customer's participant, the agent joined and assigned at once.
   */
  private async agentStartEvents(
    tx: CommonQueryMethods,
    opened: { id: string; queue: string | null },
    agent: { id: string; name: string },
    start: {
      mediaType: string;
      interactionSubtype: string;
      endpoint: string | null;
      contactId: string;
      returningContact: boolean;
      customer: string;
    },
  ): Promise<InteractionEvent[]> {
    const { customer, ...interaction } = start;
    return [
      ...(await appendEvents(tx, opened.id, [
        {
          type: 'interaction.started',
          payload: { interaction: { id: opened.id, ...interaction } },
        },
        {
          type: 'participant.joined',
          payload: { participant: { id: customer, nickname: null, type: 'customer' } },
        },
      ])),
      ...(await this.joinEvents(tx, opened.id, agent)),
      ...(await appendEvents(tx, opened.id, [
        {
          type: 'interaction.assigned',
          payload: {
            agent: { id: agent.id, nickname: agent.name },
            queue: opened.queue,
            waitedMs: 0,
          },
        },
      ])),
    ];
  }

  private async joinEvents(
    tx: CommonQueryMethods,
    interactionId: string,
    agent: { id: string; name: string },
  ): Promise<InteractionEvent[]> {
    if (!(await joinInteraction(tx, interactionId, agent.id))) return [];
    return appendEvents(tx, interactionId, [
      {
        type: 'participant.joined',
        payload: { participant: { id: agent.id, type: 'agent', nickname: agent.name } },
      },
    ]);
  }

  private async assertOpen(
    tx: CommonQueryMethods,
    interactionId: string,
    tenantId?: string,
  ): Promise<void> {
    const state = await interactionState(tx, interactionId, tenantId);
    if (!state) throw new AppError('NEXUS_ERR_NOT_FOUND', 'interaction not found');
    if (state.state !== 'open') throw new AppError('NEXUS_ERR_CHAT_ENDED');
  }
}

/**
 * Stores the first mail of a thread an agent starts, and its `outbound-email` work (in the
 * caller's transaction, which stores the agent's message `messageRowId`): no `In-Reply-To` nor
 * `References`, the hub's `Message-ID` at the channel's domain, as an answer's (api/email/reply.ts).
 */
async function recordNewEmailThread(
  tx: CommonQueryMethods,
  enqueue: EnqueueContext,
  mail: {
    tenantId: string;
    interactionId: string;
    channel: ChannelRow;
    messageRowId: string;
    text: string;
    thread: NewEmailThread;
  },
): Promise<WorkRecord> {
  const id = randomUUID();
  await insertEmails(tx, [
    {
      id,
      tenantId: mail.tenantId,
      interactionId: mail.interactionId,
      chatMessageId: mail.messageRowId,
      campaign: null,
      recordId: null,
      domain: mail.channel.channel_id,
      from: mail.thread.from,
      to: [mail.thread.to],
      cc: mail.thread.cc,
      bcc: mail.thread.bcc,
      replyTo: null,
      subject: mail.thread.subject,
      text: mail.text,
      html: null,
      messageId: `<${id}@${mail.channel.channel_id.toLowerCase()}>`,
      inReplyTo: null,
      references: [],
    },
  ]);
  return recordWork(tx, outboundEmailQueue, { tenantId: mail.tenantId, recordId: id }, enqueue);
}
