import type { Server as HttpServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import type { DatabasePool } from 'slonik';
import { Server, type Namespace, type Socket } from 'socket.io';
import { z } from 'zod';
import { listEvents, type InteractionEvent } from '../db/conversation.js';
import {
  findInteraction,
  interactionHeads,
  listAgentInteractionIds,
  listAgentsInteractionIds,
  listPendingOffers,
} from '../db/queries/chat.js';
import type { Config } from '../lib/config.js';
import { coerceError, isAppError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { socketConnections, socketEventsDelivered, socketFills } from '../lib/metrics.js';
import { REALTIME, socketIoKey, type HeadNotice } from '../lib/realtime-publisher.js';
import { closeRedis, createRedis } from '../lib/redis.js';
import type { Authenticator } from './auth/authenticator.js';
import { agentOf } from './auth/principal.js';
import { MAX_TEXT, type ChatService, type Participant } from './chat/chat-service.js';
import { customerEvent, customerParticipant } from './chat/customer-events.js';
import { toAppError } from './error-handler.js';
import { customer, presentEvent } from './presenters.js';

export const SOCKET_PATH = '/nexus/v3/socket.io';
/** A typing indicator not repeated within this time turns off by itself. */
export const TYPING_EXPIRES_MS = 5_000;

const SOCKET_EVENT: Record<InteractionEvent['type'], string> = {
  'interaction.started': 'started',
  'participant.joined': 'participant',
  'participant.left': 'participant',
  'message.created': 'message',
  read: 'read',
  'interaction.queued': 'queued',
  'interaction.offered': 'offer',
  'interaction.assigned': 'assigned',
  'interaction.parked': 'parked',
  'interaction.undelivered': 'undelivered',
  'interaction.finished': 'ended',
  'message.status': 'status',
};

interface Notice {
  tenantId: string;
  interactionId: string;
  participant: Participant;
  typing: boolean;
}

/** What a socket is shown of an event (undefined: nothing), and of a typing notice. */
interface FeedView {
  event(event: InteractionEvent): object | undefined;
  typing(notice: Notice): object;
}

const agentView: FeedView = { event: presentEvent, typing: notice => notice };
/** Customers see customer-facing events only (api/chat/customer-events). */
const customerView: FeedView = {
  event: customerEvent,
  typing: ({ interactionId, participant, typing }) => ({
    interactionId,
    participant: customerParticipant(participant),
    typing,
  }),
};

/** Why a feed read events from PostgreSQL (`nexus_socket_fills_total{trigger}`). */
type FillTrigger = 'connect' | 'gap' | 'adapter_reconnect' | 'head_notice' | 'head_check';

/**
 * One socket's view of one interaction: delivers events exactly once and in seq order. Live
 * events come from any replica through the socket.io Redis adapter; when one arrives ahead of the
 * last seq read, the gap is read from PostgreSQL first; a head (the interaction's last seq, from
 * a notice or PostgreSQL) ahead of it is caught up the same way. Deliveries are chained, so a
 * catch-up and live events never interleave. `lastSeq` counts every event read, shown or not
 * (a customer is not shown routing events), so skipped events never look like a gap.
 */
class Feed {
  private chain: Promise<void> = Promise.resolve();
  private typingTimers = new Map<string, NodeJS.Timeout>();

  constructor(
    readonly socket: Socket,
    readonly interactionId: string,
    private lastSeq: number,
    private readonly load: (after: number, before?: number) => Promise<InteractionEvent[]>,
    private readonly log: Logger,
    private readonly self?: string,
    private readonly view: FeedView = agentView,
  ) {}

  /** Reads everything after the last seq read (up to `head` when known) from PostgreSQL. */
  catchUp(trigger: FillTrigger = 'connect', head?: number): Promise<void> {
    if (head !== undefined && head <= this.lastSeq) return Promise.resolve();
    return this.enqueue(async () => {
      if (head !== undefined && head <= this.lastSeq) return;
      const from = this.lastSeq;
      for (;;) {
        const batch = await this.load(this.lastSeq);
        for (const event of batch) this.send(event, 'stored');
        if (batch.length < 500) break;
      }
      if (this.lastSeq > from) socketFills.inc({ trigger });
    });
  }

  push(event: InteractionEvent): void {
    void this.enqueue(async () => {
      if (event.seq <= this.lastSeq) return;
      if (event.seq > this.lastSeq + 1) {
        for (const missing of await this.load(this.lastSeq, event.seq)) {
          this.send(missing, 'stored');
        }
        socketFills.inc({ trigger: 'gap' });
      }
      this.send(event, 'live');
    });
  }

  typing(notice: Notice): void {
    if (notice.participant.id === this.self) return;
    const key = notice.participant.id;
    clearTimeout(this.typingTimers.get(key));
    const shown = this.view.typing(notice);
    this.socket.emit('typing', { ...shown, expiresInMs: notice.typing ? TYPING_EXPIRES_MS : 0 });
    if (notice.typing) {
      const timer = setTimeout(() => {
        this.typingTimers.delete(key);
        this.socket.emit('typing', { ...shown, typing: false, expired: true, expiresInMs: 0 });
      }, TYPING_EXPIRES_MS);
      timer.unref();
      this.typingTimers.set(key, timer);
    }
  }

  close(): void {
    for (const timer of this.typingTimers.values()) clearTimeout(timer);
  }

  /** The last seq read: what a head is compared with. */
  get seq(): number {
    return this.lastSeq;
  }

  private send(event: InteractionEvent, source: 'live' | 'stored'): void {
    if (event.seq <= this.lastSeq) return;
    this.lastSeq = event.seq;
    const shown = this.view.event(event);
    if (!shown) return;
    this.socket.emit(SOCKET_EVENT[event.type], shown);
    socketEventsDelivered.inc({ namespace: this.socket.nsp.name.slice(1), source });
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(step).catch((error: unknown) => {
      // Nothing was advanced past what was sent: the next event (or a reconnect) fills the gap.
      this.log.warn({ err: error, interactionId: this.interactionId }, 'socket delivery failed');
    });
    return this.chain;
  }
}

/** What an agent socket carries. */
interface AgentSocketData {
  agentId: string;
  agent: ReturnType<typeof agentOf>;
  /** The handshake's `lastSeqs`, valid ones only: where a feed of that interaction starts. */
  lastSeqs: ReadonlyMap<string, number>;
  /** The last offer's seq shown, by interaction (the most recent 256): each offer once. */
  offers: Map<string, number>;
}
const OFFERS_REMEMBERED = 256;

/**
 * A seq a client says it has read: a safe integer of 0 or more, else undefined. A huge or
 * fractional one would count every later event as already seen and silence the socket for good.
 */
export function clientSeq(value: unknown): number | undefined {
  const seq = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
  return Number.isSafeInteger(seq) && seq >= 0 ? seq : undefined;
}

/** Local feeds by interaction, and agent sockets by tenant. */
class FeedHub {
  private readonly feeds = new Map<string, Set<Feed>>();
  private readonly bySocket = new Map<Socket, Set<Feed>>();
  readonly agents = new Map<string, Set<Socket>>();

  add(feed: Feed): boolean {
    let set = this.feeds.get(feed.interactionId);
    if (!set) this.feeds.set(feed.interactionId, (set = new Set()));
    for (const existing of set) if (existing.socket === feed.socket) return false;
    set.add(feed);
    let mine = this.bySocket.get(feed.socket);
    if (!mine) this.bySocket.set(feed.socket, (mine = new Set()));
    mine.add(feed);
    return true;
  }

  removeSocket(socket: Socket): void {
    for (const feed of this.bySocket.get(socket) ?? []) {
      feed.close();
      const set = this.feeds.get(feed.interactionId);
      set?.delete(feed);
      if (set?.size === 0) this.feeds.delete(feed.interactionId);
    }
    this.bySocket.delete(socket);
  }

  /** Whether the socket follows the interaction already. */
  follows(socket: Socket, interactionId: string): boolean {
    for (const feed of this.bySocket.get(socket) ?? []) {
      if (feed.interactionId === interactionId) return true;
    }
    return false;
  }

  /** The local sockets of each connected agent. */
  agentSockets(): Map<string, Socket[]> {
    const byAgent = new Map<string, Socket[]>();
    for (const sockets of this.agents.values()) {
      for (const socket of sockets) {
        const { agentId } = socket.data as AgentSocketData;
        const list = byAgent.get(agentId);
        if (list) list.push(socket);
        else byAgent.set(agentId, [socket]);
      }
    }
    return byAgent;
  }

  of(interactionId: string): ReadonlySet<Feed> {
    return this.feeds.get(interactionId) ?? new Set();
  }

  /** The interactions some local socket follows. */
  interactions(): string[] {
    return [...this.feeds.keys()];
  }

  /** Catches up every local feed of the interaction that is behind `head` (every one: no head). */
  fill(interactionId: string, trigger: FillTrigger, head?: number): void {
    for (const feed of this.of(interactionId)) void feed.catchUp(trigger, head);
  }
}

export interface RealtimeDeps {
  config: Config;
  db: DatabasePool;
  log: Logger;
  chat: ChatService;
  auth: Authenticator;
}

export interface Realtime {
  readonly io: Server;
  close(): Promise<void>;
}

/** PostgreSQL cannot store a NUL character: refused as the HTTP routes refuse it. */
const NO_NUL = 'must not contain a NUL character (\\u0000)';
const customerMessage = z
  .object({
    text: z
      .string()
      .max(MAX_TEXT)
      .refine(value => value.trim().length > 0, 'must not be empty')
      .refine(value => !value.includes('\u0000'), NO_NUL),
    clientMessageId: z
      .string()
      .trim()
      .min(1)
      .max(128)
      .refine(value => !value.includes('\u0000'), NO_NUL)
      .optional(),
  })
  .strict();

type Ack = (answer: unknown) => void;
const presenceChange = z
  .object({ ready: z.boolean().optional(), capacity: z.number().int().min(0).max(100).optional() })
  .strict();
const ok = (data: unknown) => ({ status: { code: 0 }, data });
/**
 * An ack's error, coded as the HTTP routes answer it (a lock timeout is 503 NEXUS_ERR_DB_BUSY
 * with `retryAfter`, PostgreSQL down NEXUS_ERR_DB_UNAVAILABLE), never an internal error for those.
 */
const failure = (thrown: unknown) => {
  const error = toAppError(thrown);
  const retryAfter = (error as { retryAfter?: unknown }).retryAfter;
  return {
    status: {
      code: error.code,
      message: error.message,
      ...(error.field ? { field: error.field } : {}),
      ...(typeof retryAfter === 'number' ? { retryAfter } : {}),
    },
  };
};

/**
 * Socket.io on the API's HTTP server, at `/nexus/v3/socket.io`:
 * - `/chat` for customers: `auth: {token: <clientToken>, lastSeq?}`; events `message`, `typing`,
 *   `read`, `participant`, `ended`, `started`; the customer sends `message` (with an ack),
 *   `typing` and `read`.
 * - `/agent` for agents: `auth: {token: <agent token>}`; `interaction` for every new interaction
 *   of the tenant, and every event of the interactions the agent joined; `subscribe`
 *   `{interactionId, lastSeq}` catches one up.
 * Replicas share events through the socket.io Redis adapter.
 */
export function attachRealtime(server: HttpServer, deps: RealtimeDeps): Realtime {
  const { config, db, log, chat } = deps;
  const pub = createRedis(config.redis, 'worker', 'socketio-pub', log);
  const sub = createRedis(config.redis, 'worker', 'socketio-sub', log);
  const io = new Server(server, { path: SOCKET_PATH, serveClient: false, cors: { origin: true } });
  io.adapter(createAdapter(pub, sub, { key: socketIoKey(config) }));
  const hub = new FeedHub();
  const notReadyTimers = new Map<string, NodeJS.Timeout>();
  const loader = (interactionId: string) => (after: number, before?: number) =>
    listEvents(db, interactionId, after, before === undefined ? 500 : before - after - 1, before);

  /** An agent socket follows the interaction from `lastSeq` on (nothing if it does already). */
  const follow = (
    socket: Socket,
    interactionId: string,
    lastSeq: number,
    trigger: FillTrigger = 'connect',
  ) => {
    if (!socket.connected) return;
    const { agentId } = socket.data as AgentSocketData;
    const feed = new Feed(socket, interactionId, lastSeq, loader(interactionId), log, agentId);
    if (hub.add(feed)) void feed.catchUp(trigger);
  };
  /** Shows an agent socket an offer once, whether it comes live or from PostgreSQL. */
  const showOffer = (socket: Socket, event: InteractionEvent) => {
    const { offers } = socket.data as AgentSocketData;
    if ((offers.get(event.interactionId) ?? 0) >= event.seq) return;
    offers.delete(event.interactionId);
    offers.set(event.interactionId, event.seq);
    if (offers.size > OFFERS_REMEMBERED) offers.delete(offers.keys().next().value as string);
    socket.emit('offer', presentEvent(event));
  };

  io.of('/').on(REALTIME.events, ({ events }: { events: InteractionEvent[] }) => {
    for (const event of events) {
      for (const feed of hub.of(event.interactionId)) feed.push(event);
      if (event.type === 'interaction.offered') {
        // The agent has not joined: its sockets hear the offer directly.
        const offeredTo = (event.data.agent as { id?: string } | undefined)?.id;
        for (const socket of hub.agents.get(event.tenantId) ?? []) {
          if ((socket.data as AgentSocketData).agentId === offeredTo) showOffer(socket, event);
        }
      }
      if (event.type === 'interaction.started') {
        for (const socket of hub.agents.get(event.tenantId) ?? []) {
          socket.emit('interaction', presentEvent(event));
        }
      }
      const participant = event.data.participant as Participant | undefined;
      if (event.type === 'participant.joined' && participant?.type === 'agent') {
        // The agent's sockets on this replica follow the interaction from its join on.
        for (const socket of hub.agents.get(event.tenantId) ?? []) {
          if ((socket.data as AgentSocketData).agentId !== participant.id) continue;
          const feed = new Feed(
            socket,
            event.interactionId,
            event.seq - 1,
            loader(event.interactionId),
            log,
            participant.id,
          );
          if (hub.add(feed)) feed.push(event);
        }
      }
    }
  });
  io.of('/').on(REALTIME.notice, (notice: Notice) => {
    for (const feed of hub.of(notice.interactionId)) feed.typing(notice);
  });
  // A publisher that could not publish tells, once it can, how far those interactions went.
  io.of('/').on(REALTIME.heads, ({ heads }: { heads: HeadNotice[] }) => {
    for (const head of heads) hub.fill(head.interactionId, 'head_notice', head.seq);
  });
  // What was published while this replica's subscriber was away never reaches it: once it is
  // subscribed again, the heads are checked (below) and every feed behind its head catches up.
  // In ioredis 5.11 'ready' fires before the resubscribe commands are queued, so this PING goes
  // out first; it works because the SUBSCRIBE follows in the same pipeline, before the
  // PostgreSQL read begins: whatever is committed after that read arrives live.
  sub.on('ready', () => {
    void sub
      .ping()
      .catch(() => undefined)
      .then(() => check('adapter_reconnect'));
  });
  // Anything else (a worker that died between its commit and its publish, a lost message): every
  // NEXUS_SOCKET_HEAD_CHECK_MS the followed interactions' heads are read from PostgreSQL, in one
  // query per 1,000, and only a feed behind its head reads its events. The connected agents'
  // interactions and open offers are read too (one query each per 1,000 agents): an agent joined
  // or assigned, or offered a chat, while its publish was lost follows that chat (from seq 0, as
  // on connecting) and is shown the offer (once per socket). A check asked for while one runs
  // runs after it.
  let running: Promise<void> | undefined;
  let queued: 'head_check' | 'adapter_reconnect' | undefined;
  const check = (trigger: 'head_check' | 'adapter_reconnect'): Promise<void> => {
    if (running) {
      if (queued !== 'adapter_reconnect') queued = trigger;
      return running;
    }
    running = checkHeads(trigger).finally(() => {
      running = undefined;
      const next = queued;
      queued = undefined;
      if (next) void check(next);
    });
    return running;
  };
  const checkHeads = async (trigger: 'head_check' | 'adapter_reconnect') => {
    try {
      const ids = hub.interactions();
      for (let i = 0; i < ids.length; i += 1_000) {
        for (const head of await interactionHeads(db, ids.slice(i, i + 1_000))) {
          hub.fill(head.id, trigger, head.last_seq);
        }
      }
    } catch (error) {
      log.warn({ err: error }, 'could not check the heads of socket feeds');
    }
    try {
      const byAgent = hub.agentSockets();
      const agentIds = [...byAgent.keys()];
      for (let i = 0; i < agentIds.length; i += 1_000) {
        const chunk = agentIds.slice(i, i + 1_000);
        for (const row of await listAgentsInteractionIds(db, chunk)) {
          for (const socket of byAgent.get(row.agent_id) ?? []) {
            if (hub.follows(socket, row.interaction_id)) continue;
            const { lastSeqs } = socket.data as AgentSocketData;
            follow(socket, row.interaction_id, lastSeqs.get(row.interaction_id) ?? 0, trigger);
          }
        }
        for (const { agentId, event } of await listPendingOffers(db, chunk)) {
          for (const socket of byAgent.get(agentId) ?? []) {
            if (socket.connected) showOffer(socket, event);
          }
        }
      }
    } catch (error) {
      log.warn({ err: error }, 'could not check the interactions of connected agents');
    }
  };
  const headTimer =
    config.socketHeadCheckMs > 0
      ? setInterval(() => void check('head_check'), config.socketHeadCheckMs)
      : undefined;
  headTimer?.unref();

  const customers: Namespace = io.of('/chat');
  customers.use((socket, next) => {
    const auth = socket.handshake.auth as { token?: unknown };
    const token = typeof auth.token === 'string' ? auth.token : undefined;
    chat.sessionFor(token).then(
      session => {
        socket.data = { session };
        next();
      },
      (error: unknown) => next(handshakeError(error)),
    );
  });
  customers.on('connection', socket => {
    socketConnections.inc({ namespace: 'chat' });
    socket.on('disconnect', () => socketConnections.dec({ namespace: 'chat' }));
    const { session } = socket.data as { session: Awaited<ReturnType<ChatService['sessionFor']>> };
    const me = customer(session);
    const lastSeq = clientSeq((socket.handshake.auth as { lastSeq?: unknown }).lastSeq) ?? 0;
    const feed = new Feed(
      socket,
      session.interaction_id,
      lastSeq,
      loader(session.interaction_id),
      log,
      me.id,
      customerView,
    );
    hub.add(feed);
    void feed.catchUp();
    socket.on('disconnect', () => hub.removeSocket(socket));
    socket.on('message', (payload: unknown, ack?: Ack) => {
      const parsed = customerMessage.safeParse(payload);
      if (!parsed.success) {
        ack?.({
          status: {
            code: 'NEXUS_ERR_VALIDATION',
            message: parsed.error.issues[0]?.message,
            field: parsed.error.issues[0]?.path.join('.'),
          },
        });
        return;
      }
      const client = {
        sessionId: session.id,
        tenantId: session.tenant_id,
        interactionId: session.interaction_id,
        participantId: session.participant_id,
      };
      chat
        .limitSession(session.id)
        .then(() =>
          chat.customerMessage(client, parsed.data.text, parsed.data.clientMessageId ?? null),
        )
        .then(
          result => ack?.(ok({ id: result.id, duplicate: !result.created })),
          (error: unknown) => ack?.(failure(error)),
        );
    });
    socket.on('typing', (payload: unknown) => {
      const typing = (payload as { typing?: unknown } | undefined)?.typing !== false;
      chat.limitSession(session.id).then(
        () => chat.typing(session.tenant_id, session.interaction_id, me, typing),
        () => undefined,
      );
    });
    socket.on('read', (payload: unknown, ack?: Ack) => {
      const seq = Number((payload as { seq?: unknown } | undefined)?.seq);
      if (!Number.isSafeInteger(seq) || seq < 1) {
        ack?.({
          status: {
            code: 'NEXUS_ERR_VALIDATION',
            message: 'seq must be a positive integer',
            field: 'seq',
          },
        });
        return;
      }
      chat.read(session.tenant_id, session.interaction_id, me, seq).then(
        () => ack?.(ok({ seq })),
        (error: unknown) => ack?.(failure(error)),
      );
    });
  });

  const agents: Namespace = io.of('/agent');
  agents.use((socket, next) => {
    const auth = socket.handshake.auth as { token?: unknown };
    const token = typeof auth.token === 'string' ? auth.token : '';
    deps.auth.authenticateToken(token).then(
      principal => {
        try {
          const agent = agentOf(principal);
          const given = (socket.handshake.auth as { lastSeqs?: unknown }).lastSeqs;
          const lastSeqs = new Map<string, number>();
          if (given && typeof given === 'object') {
            for (const [id, value] of Object.entries(given as Record<string, unknown>)) {
              const seq = clientSeq(value);
              if (seq !== undefined) lastSeqs.set(id, seq);
            }
          }
          const data: AgentSocketData = { agentId: agent.id, agent, lastSeqs, offers: new Map() };
          socket.data = data;
          next();
        } catch (error) {
          next(handshakeError(error));
        }
      },
      (error: unknown) => next(handshakeError(error)),
    );
  });
  agents.on('connection', socket => {
    socketConnections.inc({ namespace: 'agent' });
    socket.on('disconnect', () => socketConnections.dec({ namespace: 'agent' }));
    const { agent, lastSeqs } = socket.data as AgentSocketData;
    let set = hub.agents.get(agent.tenant);
    if (!set) hub.agents.set(agent.tenant, (set = new Set()));
    set.add(socket);
    // Every socket of the agent, on any replica, is in its room: presence follows the last one.
    const room = `agent:${agent.id}`;
    void socket.join(room);
    clearTimeout(notReadyTimers.get(agent.id));
    socket.on('disconnect', () => {
      hub.agents.get(agent.tenant)?.delete(socket);
      hub.removeSocket(socket);
      // The agent keeps its interactions; if no socket of it comes back within the grace, it
      // becomes not ready (no new offers).
      clearTimeout(notReadyTimers.get(agent.id));
      const timer = setTimeout(() => {
        notReadyTimers.delete(agent.id);
        agents
          .in(room)
          .fetchSockets()
          .then(async sockets => {
            if (sockets.length > 0) return;
            await chat.presence(agent.tenant, agent.id, { ready: false });
            log.info({ agentId: agent.id }, 'agent disconnected past the grace: not ready');
          })
          .catch((error: unknown) => log.warn({ err: error }, 'could not check agent presence'));
      }, config.agentDisconnectGraceMs);
      timer.unref();
      notReadyTimers.set(agent.id, timer);
    });
    socket.on('presence', (payload: unknown, ack?: Ack) => {
      const parsed = presenceChange.safeParse(payload ?? {});
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        ack?.({
          status: {
            code: 'NEXUS_ERR_VALIDATION',
            message: `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
            field: issue?.path.join('.'),
          },
        });
        return;
      }
      chat.presence(agent.tenant, agent.id, parsed.data).then(
        presence => ack?.(ok(presence)),
        (error: unknown) => ack?.(failure(error)),
      );
    });
    void listAgentInteractionIds(db, agent.id).then(
      ids => {
        for (const id of ids) follow(socket, id, lastSeqs.get(id) ?? 0);
      },
      (error: unknown) => log.warn({ err: error }, 'could not list the agent interactions'),
    );
    socket.on('subscribe', (payload: unknown, ack?: Ack) => {
      const { interactionId, lastSeq } = (payload ?? {}) as {
        interactionId?: unknown;
        lastSeq?: unknown;
      };
      if (
        typeof interactionId !== 'string' ||
        !z.string().uuid().safeParse(interactionId).success
      ) {
        ack?.({
          status: {
            code: 'NEXUS_ERR_VALIDATION',
            message: 'interactionId must be an interaction id',
            field: 'interactionId',
          },
        });
        return;
      }
      const from = lastSeq === undefined || lastSeq === null ? 0 : clientSeq(lastSeq);
      if (from === undefined) {
        ack?.({
          status: {
            code: 'NEXUS_ERR_VALIDATION',
            message: 'lastSeq must be an integer of 0 or more (the last seq read)',
            field: 'lastSeq',
          },
        });
        return;
      }
      findInteraction(db, agent.tenant, interactionId).then(
        row => {
          if (!row) {
            ack?.({ status: { code: 'NEXUS_ERR_NOT_FOUND', message: 'interaction not found' } });
            return;
          }
          // A seq past the head counts as the head: later events are still shown.
          follow(socket, interactionId, Math.min(from, row.last_seq));
          ack?.(ok({ interactionId }));
        },
        (error: unknown) => ack?.(failure(error)),
      );
    });
    socket.on('message', (payload: unknown, ack?: Ack) => {
      const { interactionId, ...rest } = (payload ?? {}) as { interactionId?: unknown };
      const parsed = customerMessage.safeParse(rest);
      const validId = z.string().uuid().safeParse(interactionId);
      if (!validId.success || !parsed.success) {
        ack?.({
          status: {
            code: 'NEXUS_ERR_VALIDATION',
            message: 'send {interactionId, text, clientMessageId?}',
            field: validId.success
              ? (parsed.error?.issues[0]?.path.join('.') ?? 'text')
              : 'interactionId',
          },
        });
        return;
      }
      chat
        .agentMessage(
          agent.tenant,
          validId.data,
          agent,
          parsed.data.text,
          parsed.data.clientMessageId ?? null,
        )
        .then(
          result => ack?.(ok({ id: result.id, duplicate: !result.created })),
          (error: unknown) => ack?.(failure(error)),
        );
    });
  });

  return {
    io,
    async close() {
      for (const timer of notReadyTimers.values()) clearTimeout(timer);
      clearInterval(headTimer);
      await io.close();
      await closeRedis(pub);
      await closeRedis(sub);
    },
  };
}

/** A handshake refusal the client sees as `connect_error` with `data.code`. */
function handshakeError(thrown: unknown): Error {
  const error = toAppError(thrown);
  const refused = new Error(error.message) as Error & { data?: unknown };
  refused.data = { code: error.code };
  if (!isAppError(thrown)) refused.cause = coerceError(thrown);
  return refused;
}
