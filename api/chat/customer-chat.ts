import { randomUUID } from 'node:crypto';
import type { DatabasePool } from 'slonik';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { findSession, insertSession, type SessionRow } from '../../db/queries/chat-sessions.js';
import { findEndpointRoute } from '../../db/queries/endpoints.js';
import {
  acceptCustomerMessages,
  IntakeConflictError,
  findCustomerMessageId,
  type CustomerMessageIntake,
  type IntakeResult,
} from '../../db/queries/intake.js';
import { interactionState } from '../../db/queries/interaction-state.js';
import { insertInteraction } from '../../db/queries/interactions.js';
import { AppError } from '../../lib/errors.js';
import { GroupCommit } from '../../lib/group-commit.js';
import { DisabledTenants } from './disabled-tenants.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import type { Logger } from '../../lib/logger.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import { inboundQueue } from '../../queues/index.js';
import {
  dispatchWork,
  recordWork,
  type EnqueueContext,
  type WorkRecord,
} from '../../queues/work.js';
import type { TokenService } from '../auth/tokens.js';
import { BUSY_RETRY_AFTER_S } from '../error-handler.js';

/**
 * The customer's side of a web chat: the session (started, found from its client token, rate
 * limited) and the intake of its messages. Customer messages are stored Postgres-first, numbered
 * when they commit where the chat allows it (else by the inbound processor); reads, typing and the
 * end are api/chat/conversation.ts.
 */

export interface CustomerChatDeps {
  db: DatabasePool;
  /** Where the inbound work of sessions and messages is recorded and enqueued. */
  enqueue: EnqueueContext;
  tokens: TokenService;
  /** Tenant changes, which keep this replica's {@link DisabledTenants}. */
  bus: InvalidationBus;
  log: Logger;
  /** Publishes the events of messages numbered at intake to the socket rooms. */
  publisher: RealtimePublisher;
  /** What one session may send per replica (messages, typing, reads); see NEXUS_CHAT_SESSION_LIMIT. */
  sessionLimit?: { points: number; seconds: number };
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

/** A customer's chat sessions and their messages' intake. */
export class CustomerChat {
  /**
   * Customer messages of concurrent requests are stored in one statement and their jobs added
   * in one Redis call (group commit); each request answers once its batch is committed. A batch
   * waits on no interaction's lock (see acceptCustomerMessages): a message whose chat is locked
   * by something stronger than numbering leaves the batch and is stored alone
   * ({@link CustomerChat.acceptAlone}), outside the flush slots, so it holds up no one else.
   */
  private readonly intake = new GroupCommit<CustomerMessageIntake, IntakeResult>(
    async intakes => {
      const results = await this.store(intakes, true);
      await this.dispatchIntakes(intakes, results);
      return results;
    },
    256,
    4,
  );

  /** The disabled tenants, whose customers are refused with NEXUS_ERR_TENANT_DISABLED. */
  readonly tenants: DisabledTenants;
  private readonly sessionLimiter: RateLimiterMemory;
  /** Messages in {@link CustomerChat.acceptAlone} now (waiting their chat's turn included). */
  private alone = 0;
  /** The last message stored alone of each chat that has one in flight: the next follows it. */
  private readonly aloneTails = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: CustomerChatDeps) {
    const limit = deps.sessionLimit ?? { points: 30, seconds: 10 };
    this.sessionLimiter = new RateLimiterMemory({ points: limit.points, duration: limit.seconds });
    this.tenants = new DisabledTenants(deps.db, deps.bus, deps.log);
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
        this.deps.enqueue,
      );
      return { session: row, work: record };
    });
    await dispatchWork(this.deps.enqueue, [work]);
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

  /**
   * The session a client token opens; AUTHENTICATION_REQUIRED for anything else, 403
   * NEXUS_ERR_TENANT_DISABLED when its tenant is disabled.
   */
  async sessionFor(token: string | undefined, sessionId?: string): Promise<SessionRow> {
    const refuse = (message: string) =>
      new AppError('AUTHENTICATION_REQUIRED', message, 'header.x-nexus-client-key');
    if (!token) throw refuse('Send the clientToken of the session in x-nexus-client-key');
    const claims = await this.deps.tokens.verifyClient(token);
    if (!claims) throw refuse('The client token is not valid');
    if (sessionId !== undefined && claims.sessionId !== sessionId) {
      throw refuse('The client token is for another session');
    }
    await this.tenants.assertEnabled(claims.tenant);
    const session = await findSession(this.deps.db, claims.sessionId);
    if (!session || session.tenant_id !== claims.tenant) throw refuse('Unknown session');
    return session;
  }

  /**
   * Who a client token speaks for, from its signed claims alone when they name the interaction
   * (the hot path of sending a message reads nothing first: the tenant is checked in the
   * replica's {@link DisabledTenants}); otherwise from the session row.
   */
  async clientFor(token: string | undefined, sessionId: string): Promise<ChatClient> {
    const claims = token ? await this.deps.tokens.verifyClient(token) : undefined;
    if (claims?.interactionId && claims.sessionId === sessionId) {
      await this.tenants.assertEnabled(claims.tenant);
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
   * Accepts a customer message: stored in one statement, only while the chat is open, and at most
   * once per client message id (a retry finds the first and does nothing more). In a running chat
   * it is numbered with its event in that statement and published at once; otherwise it is stored
   * with its inbound work row, and the inbound job starts or requeues the chat, numbers and
   * publishes it.
   * Refused (403 NEXUS_ERR_TENANT_DISABLED) when the tenant is disabled.
   */
  async customerMessage(
    client: ChatClient,
    text: string,
    clientMessageId: string | null,
  ): Promise<{ id: string; created: boolean }> {
    await this.tenants.assertEnabled(client.tenantId);
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
      work: { queue: inboundQueue.name, jobId, payload },
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
    if (!result.stored) {
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
    const results = await this.store([intake], false);
    await this.dispatchIntakes([intake], results);
    const [result] = results;
    if (!result) throw new Error('acceptCustomerMessages answered no row for a message');
    return result;
  }

  /**
   * Stores a batch (see acceptCustomerMessages) and publishes the events of the messages it
   * numbered, right after the commit. A batch rolled back because a message it numbered was a
   * retry committed meanwhile is stored again without numbering (the inbound processor numbers).
   */
  private async store(
    intakes: readonly CustomerMessageIntake[],
    skipLocked: boolean,
  ): Promise<IntakeResult[]> {
    const options = { skipLocked, settings: this.deps.enqueue };
    let results: IntakeResult[];
    try {
      results = await acceptCustomerMessages(this.deps.db, intakes, options);
    } catch (error) {
      if (!(error instanceof IntakeConflictError)) throw error;
      this.deps.log.debug({ err: error }, 'chat intake: batch stored again without numbering');
      results = await acceptCustomerMessages(this.deps.db, intakes, { ...options, number: false });
    }
    const events = results.flatMap(result => (result.event ? [result.event] : []));
    this.deps.publisher.events(events);
    return results;
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
    await dispatchWork(this.deps.enqueue, records);
  }
}
