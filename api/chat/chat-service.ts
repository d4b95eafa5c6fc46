import { randomUUID } from 'node:crypto';
import type { CommonQueryMethods, DatabasePool } from 'slonik';
import {
  appendEvents,
  insertMessage,
  listEvents,
  sequencePendingMessages,
  type EventType,
  type InteractionEvent,
} from '../../db/conversation.js';
import {
  endSessionOf,
  findSession,
  insertSession,
  type SessionRow,
} from '../../db/queries/chat-sessions.js';
import { findEndpointRoute } from '../../db/queries/endpoints.js';
import { joinInteraction } from '../../db/queries/interaction-agents.js';
import { finishInteraction, insertInteraction } from '../../db/queries/interactions.js';
import { AppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import {
  inboundQueue,
  outboundSmsQueue,
  scheduleOfferTimeout,
  type QueueSet,
} from '../../queues/index.js';
import { findCustomerAddress, markSmsAccepted } from '../../db/queries/sms.js';
import { smsSegments } from '../../domain/sms-segments.js';
import {
  dispatchWork,
  recordWork,
  type EnqueueContext,
  type WorkRecord,
} from '../../queues/work.js';
import type { TokenService } from '../auth/tokens.js';
import {
  acceptCustomerMessages,
  findCustomerMessageId,
  type CustomerMessageIntake,
  type IntakeResult,
} from '../../db/queries/intake.js';
import { GroupCommit } from '../../lib/group-commit.js';
import {
  abandonIfWaiting,
  acceptOffer,
  agentLoad,
  parkInteraction,
  queuesOfAgent,
  rejectOffer,
  routeQueue,
  transferInteraction,
} from '../../db/routing.js';
import { sql } from 'slonik';
import { z } from 'zod';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { interactionState } from '../../db/queries/interaction-state.js';
import { BUSY_RETRY_AFTER_S } from '../error-handler.js';

export interface ChatServiceDeps {
  db: DatabasePool;
  queues: QueueSet;
  log: Logger;
  sweepAfterMs: number;
  tokens: TokenService;
  publisher: RealtimePublisher;
  /** What one session may send per replica (messages, typing, reads); see NEXUS_CHAT_SESSION_LIMIT. */
  sessionLimit?: { points: number; seconds: number };
  /** The most segments an outbound SMS may take (NEXUS_SMS_MAX_SEGMENTS). */
  smsMaxSegments?: number;
  /**
   * The most customer messages to locked chats stored alone at once (each may hold a pool
   * connection for the lock timeout); default a quarter of a pool of 10. See lockedChatSlots().
   */
  aloneSlots?: number;
}

/** Messages to locked chats stored alone at once: a quarter of the pool, at least 1. */
export const lockedChatSlots = (poolSize: number) => Math.max(1, Math.floor(poolSize / 4));

export interface SessionStart {
  nickname: string;
  firstName: string | null;
  lastName: string | null;
  email: string | null;
  phone: string | null;
  endpoint: string | null;
  stream: string | null;
  userData: Record<string, string>;
}

/** Who sends as the customer of a chat session. */
export interface ChatClient {
  sessionId: string;
  tenantId: string;
  interactionId: string;
  participantId: string;
}

export interface Participant {
  type: 'customer' | 'agent';
  id: string;
  nickname: string;
}

/** Text messages are at most this long (characters). */
export const MAX_TEXT = 4_096;

/**
 * Customer chat and agent messaging over the interaction event log. Customer messages are stored
 * Postgres-first and numbered by the inbound processor; everything else (agent messages, reads,
 * joins, ends) is numbered here, in the request's transaction, and published after the commit.
 */
export class ChatService {
  private readonly enqueue: EnqueueContext;
  /**
   * Customer messages of concurrent requests are stored in one statement and their jobs added
   * in one Redis call (group commit); each request answers once its batch is committed. A batch
   * waits on no interaction's lock (see acceptCustomerMessages): a message whose chat is locked
   * by something stronger than numbering leaves the batch and is stored alone
   * ({@link ChatService.acceptAlone}), outside the flush slots, so it holds up no one else.
   */
  private readonly intake = new GroupCommit<CustomerMessageIntake, IntakeResult>(
    async intakes => {
      const results = await acceptCustomerMessages(this.deps.db, intakes, { skipLocked: true });
      await this.dispatchIntakes(intakes, results);
      return results;
    },
    256,
    4,
  );

  private readonly sessionLimiter: RateLimiterMemory;
  /** Messages in {@link ChatService.acceptAlone} now (waiting their chat's turn included). */
  private alone = 0;
  /** The last message stored alone of each chat that has one in flight: the next follows it. */
  private readonly aloneTails = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: ChatServiceDeps) {
    const limit = deps.sessionLimit ?? { points: 30, seconds: 10 };
    this.sessionLimiter = new RateLimiterMemory({ points: limit.points, duration: limit.seconds });
    this.enqueue = {
      db: deps.db,
      queues: deps.queues,
      log: deps.log,
      sweepAfterMs: deps.sweepAfterMs,
    };
  }

  async startSession(
    tenantId: string,
    start: SessionStart,
  ): Promise<{ session: SessionRow; clientToken: string }> {
    await this.assertRoutable(tenantId, start.endpoint);
    const sessionId = randomUUID();
    const interactionId = randomUUID();
    const participantId = randomUUID();
    const { session, work } = await this.deps.db.transaction(async tx => {
      await insertInteraction(tx, {
        id: interactionId,
        tenantId,
        media: 'chat',
        subtype: 'InboundNew',
        endpoint: start.endpoint,
      });
      const row = await insertSession(tx, {
        id: sessionId,
        tenantId,
        interactionId,
        participantId,
        ...start,
      });
      const record = await recordWork(
        tx,
        inboundQueue,
        {
          tenantId,
          channel: 'chat',
          kind: 'session',
          externalId: `session-${sessionId}`,
          from: sessionId,
          interactionId,
          receivedAt: new Date().toISOString(),
        },
        this.deps.sweepAfterMs,
      );
      return { session: row, work: record };
    });
    await dispatchWork(this.enqueue, [work]);
    const clientToken = await this.deps.tokens.signClient({
      sessionId,
      participantId,
      tenant: tenantId,
      interactionId,
    });
    return { session, clientToken };
  }

  /**
   * A chat must reach agents: its endpoint is required, must be one of the tenant's, and must
   * lead to a routing queue; anything else is refused with the widget's INVALID_ENDPOINT.
   */
  private async assertRoutable(tenantId: string, endpoint: string | null): Promise<void> {
    const refuse = (message: string) =>
      new AppError('INVALID_ENDPOINT', message, 'body.data.endpoint');
    if (endpoint === null) {
      throw refuse("body.data.endpoint: is required (one of the tenant's chat endpoints)");
    }
    const route = await findEndpointRoute(this.deps.db, tenantId, endpoint);
    if (!route) throw refuse(`Endpoint ${endpoint} is not one of the tenant`);
    if (route.queue === null) {
      throw refuse(`Endpoint ${endpoint} leads to no routing queue; attach it to a queue first`);
    }
  }

  /**
   * Counts one customer action of a session (the client-token routes have no API key to limit);
   * throws 429 `NEXUS_ERR_RATE_LIMITED` with the seconds to wait in `retryAfter`.
   */
  async limitSession(sessionId: string): Promise<void> {
    try {
      await this.sessionLimiter.consume(sessionId);
    } catch (thrown) {
      if (!(thrown instanceof RateLimiterRes)) throw thrown;
      const retryAfter = Math.max(1, Math.ceil(thrown.msBeforeNext / 1000));
      throw Object.assign(
        new AppError(
          'NEXUS_ERR_RATE_LIMITED',
          `Too many requests in this chat session; retry in ${retryAfter} s`,
        ),
        { retryAfter },
      );
    }
  }

  /** The session a client token opens; AUTHENTICATION_REQUIRED for anything else. */
  async sessionFor(token: string | undefined, sessionId?: string): Promise<SessionRow> {
    const refuse = (message: string) =>
      new AppError('AUTHENTICATION_REQUIRED', message, 'header.x-nexus-client-key');
    if (!token) throw refuse('Send the clientToken of the session in x-nexus-client-key');
    const claims = await this.deps.tokens.verifyClient(token);
    if (!claims) throw refuse('The client token is not valid');
    if (sessionId !== undefined && claims.sessionId !== sessionId) {
      throw refuse('The client token is for another session');
    }
    const session = await findSession(this.deps.db, claims.sessionId);
    if (!session || session.tenant_id !== claims.tenant) throw refuse('Unknown session');
    return session;
  }

  /**
   * Who a client token speaks for, from its signed claims alone when they name the interaction
   * (the hot path of sending a message reads nothing first); otherwise from the session row.
   */
  async clientFor(token: string | undefined, sessionId: string): Promise<ChatClient> {
    const claims = token ? await this.deps.tokens.verifyClient(token) : undefined;
    if (claims?.interactionId && claims.sessionId === sessionId) {
      return {
        sessionId,
        tenantId: claims.tenant,
        interactionId: claims.interactionId,
        participantId: claims.participantId,
      };
    }
    const session = await this.sessionFor(token, sessionId);
    return {
      sessionId: session.id,
      tenantId: session.tenant_id,
      interactionId: session.interaction_id,
      participantId: session.participant_id,
    };
  }

  /**
   * Accepts a customer message: the message and its inbound work row are stored in one
   * statement, only while the chat is open, and at most once per client message id (a retry
   * finds the first and does nothing more); then the inbound job numbers and publishes it.
   */
  async customerMessage(
    client: ChatClient,
    text: string,
    clientMessageId: string | null,
  ): Promise<{ id: string; created: boolean }> {
    const id = randomUUID();
    const payload = {
      tenantId: client.tenantId,
      channel: 'chat' as const,
      kind: 'message' as const,
      externalId: id,
      from: client.sessionId,
      interactionId: client.interactionId,
      messageId: id,
      receivedAt: new Date().toISOString(),
    };
    const jobId = inboundQueue.jobId(payload);
    const intake: CustomerMessageIntake = {
      messageId: id,
      tenantId: client.tenantId,
      interactionId: client.interactionId,
      participantId: client.participantId,
      text,
      clientMessageId,
      work: { queue: inboundQueue.name, jobId, payload, sweepAfterMs: this.deps.sweepAfterMs },
    };
    // A chat with a message stored alone in flight: this one follows it, in order.
    let result = this.aloneTails.has(client.interactionId)
      ? await this.acceptAlone(intake)
      : await this.intake.submit(intake);
    if (result.skipped) result = await this.acceptAlone(intake);
    if (!result.open) {
      const exists = await interactionState(this.deps.db, client.interactionId, client.tenantId);
      throw exists
        ? new AppError('NEXUS_ERR_CHAT_ENDED')
        : new AppError('NEXUS_ERR_NOT_FOUND', 'interaction not found');
    }
    if (!result.stored || result.workId === null) {
      const existing = clientMessageId
        ? await findCustomerMessageId(
            this.deps.db,
            client.interactionId,
            client.participantId,
            clientMessageId,
          )
        : undefined;
      return { id: existing ?? id, created: false };
    }
    return { id, created: true };
  }

  /**
   * Stores one customer message whose chat a batch skipped (locked `FOR UPDATE` or being
   * deleted): it waits for the lock, at most the session's `lock_timeout` (DB_LOCK_TIMEOUT_MS),
   * then fails with 55P03, which the API answers 503 `NEXUS_ERR_DB_BUSY` with nothing stored.
   * Each such wait holds a pool connection, so at most `aloneSlots` messages are here at once
   * (the rest of the pool keeps every tenant's batches going); beyond that the answer is 503
   * `NEXUS_ERR_DB_BUSY` at once, nothing stored. Messages to one chat are stored here one after
   * the other, in the order they came, as a batch keeps them.
   */
  private async acceptAlone(intake: CustomerMessageIntake): Promise<IntakeResult> {
    if (this.alone >= (this.deps.aloneSlots ?? lockedChatSlots(10))) {
      throw Object.assign(
        new AppError(
          'NEXUS_ERR_DB_BUSY',
          'The chat is locked by another transaction and too many messages wait for such chats; nothing was stored, retry',
        ),
        { retryAfter: BUSY_RETRY_AFTER_S },
      );
    }
    this.alone++;
    const id = intake.interactionId;
    const before = this.aloneTails.get(id);
    const mine = (before ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => this.storeAlone(intake));
    this.aloneTails.set(id, mine);
    try {
      return await mine;
    } finally {
      this.alone--;
      if (this.aloneTails.get(id) === mine) this.aloneTails.delete(id);
    }
  }

  private async storeAlone(intake: CustomerMessageIntake): Promise<IntakeResult> {
    const results = await acceptCustomerMessages(this.deps.db, [intake], { skipLocked: false });
    await this.dispatchIntakes([intake], results);
    const [result] = results;
    if (!result) throw new Error('acceptCustomerMessages answered no row for a message');
    return result;
  }

  /** Adds the jobs of the customer messages just stored (one Redis call). */
  private async dispatchIntakes(
    intakes: readonly CustomerMessageIntake[],
    results: readonly IntakeResult[],
  ): Promise<void> {
    const records: WorkRecord[] = [];
    results.forEach((result, index) => {
      const intake = intakes[index];
      if (intake && result.workId !== null) {
        records.push({
          id: result.workId,
          queue: intake.work.queue,
          jobId: intake.work.jobId,
          payload: intake.work.payload,
          state: 'pending',
          created: true,
        });
      }
    });
    await dispatchWork(this.enqueue, records);
  }

  /** An agent's message: numbered at once (after any customer message still waiting). */
  async agentMessage(
    tenantId: string,
    interactionId: string,
    agent: { id: string; name: string },
    text: string,
    clientMessageId: string | null,
  ): Promise<{ id: string; created: boolean }> {
    let result = { id: '', created: false };
    let work: WorkRecord | undefined;
    await this.write(async tx => {
      await this.assertOpen(tx, interactionId, tenantId);
      // A reply in an SMS conversation goes to the customer's phone: checked for length here,
      // sent by the outbound-sms worker.
      const phone = await findCustomerAddress(tx, interactionId);
      const sms = phone ? smsSegments(text) : undefined;
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
      result = { id: stored.id, created: stored.created };
      if (sms && stored.created) {
        await markSmsAccepted(tx, stored.id, sms);
        work = await recordWork(
          tx,
          outboundSmsQueue,
          { tenantId, messageId: stored.id },
          this.deps.sweepAfterMs,
        );
      }
      return [...joined, ...(await sequencePendingMessages(tx, interactionId))];
    });
    if (work) await dispatchWork(this.enqueue, [work]);
    return result;
  }

  async agentJoin(
    tenantId: string,
    interactionId: string,
    agent: { id: string; name: string },
  ): Promise<void> {
    await this.write(async tx => {
      await this.assertOpen(tx, interactionId, tenantId);
      return this.joinEvents(tx, interactionId, agent);
    });
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
        const works = await tx.exists(sql.unsafe`
          SELECT 1 FROM interactions i
          WHERE i.id = ${interactionId}
            AND (i.assigned_agent_id = ${by.id} OR EXISTS (
              SELECT 1 FROM interaction_agents ia
              WHERE ia.interaction_id = i.id AND ia.agent_id = ${by.id} AND ia.left_at IS NULL))`);
        if (!works) {
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
    const routed = await this.deps.db.maybeOne(
      sql.type(z.object({ queue_name: z.string() }))`
        SELECT queue_name FROM interactions
        WHERE id = ${interactionId} AND tenant_id = ${tenantId} AND queue_name IS NOT NULL`,
    );
    if (routed) await this.route(tenantId, routed.queue_name);
  }

  /** Assigns what waits in a queue; routing errors are logged (the maintenance sweep retries). */
  async route(tenantId: string, queue: string): Promise<void> {
    await routeQueue(
      this.deps.db,
      tenantId,
      queue,
      events => this.deps.publisher.events(events),
      offer => scheduleOfferTimeout(this.deps.queues, offer, this.deps.log),
    ).catch((error: unknown) =>
      this.deps.log.warn({ err: error, queue }, 'routing failed; the sweep retries'),
    );
  }

  /** The agent accepts the interaction offered to it: assigned, joined. */
  async acceptOffer(
    tenantId: string,
    interactionId: string,
    agent: { id: string; name: string },
  ): Promise<void> {
    await this.write(tx => acceptOffer(tx, { id: interactionId, tenantId }, agent));
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

  /** The agent hands the chat to another queue or agent (see db/routing.ts). */
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
    for (const served of await queuesOfAgent(this.deps.db, agent.id)) {
      if (served.queue !== queue) await this.route(served.tenantId, served.queue);
    }
  }

  /** An agent becomes ready or not, or changes capacity; a ready agent gets waiting work. */
  async presence(
    tenantId: string,
    agentId: string,
    change: { ready?: boolean | undefined; capacity?: number | undefined },
  ): Promise<{ ready: boolean; capacity: number; load: number }> {
    const row = await this.deps.db.one(sql.type(
      z.object({ ready: z.boolean(), capacity: z.number() }),
    )`
      UPDATE agents SET
        ready = coalesce(${change.ready ?? null}::boolean, ready),
        capacity = coalesce(${change.capacity ?? null}::int, capacity),
        idle_since = CASE WHEN ${change.ready ?? null}::boolean AND NOT ready THEN now() ELSE idle_since END,
        updated_at = now()
      WHERE id = ${agentId} AND tenant_id = ${tenantId}
      RETURNING ready, capacity`);
    if (row.ready) {
      for (const { tenantId: tenant, queue } of await queuesOfAgent(this.deps.db, agentId)) {
        await this.route(tenant, queue);
      }
    }
    return { ...row, load: await agentLoad(this.deps.db, agentId) };
  }

  /** Events after `afterSeq` (the transcript), in order. */
  events(interactionId: string, afterSeq: number, limit: number): Promise<InteractionEvent[]> {
    return listEvents(this.deps.db, interactionId, afterSeq, limit);
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

  /** Runs `within` in a transaction and publishes the events it wrote after the commit. */
  private async write(
    within: (tx: CommonQueryMethods) => Promise<InteractionEvent[]>,
  ): Promise<void> {
    const events = await this.deps.db.transaction(within);
    this.deps.publisher.events(events);
  }
}
