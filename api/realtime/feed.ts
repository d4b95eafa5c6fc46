import type { DatabasePool } from 'slonik';
import type { Socket } from 'socket.io';
import { listEvents, type InteractionEvent } from '../../db/conversation.js';
import { interactionHeads } from '../../db/queries/interactions.js';
import type { Logger } from '../../lib/logger.js';
import { socketEventsDelivered, socketFills } from '../../lib/metrics.js';
import type { Participant } from '../chat/conversation.js';
import { presentEvent } from '../presenters.js';

/**
 * The ordered feed both socket namespaces deliver through: each socket gets each event of an
 * interaction it follows exactly once and in seq order, with gaps filled from PostgreSQL, and
 * this replica's feeds are caught up to the heads other replicas report or PostgreSQL holds.
 */

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
  'interaction.bot': 'bot',
  'interaction.handoff': 'handoff',
  'assist.suggestion': 'suggestion',
};

/** A typing notice, as published to every replica. */
export interface Notice {
  tenantId: string;
  interactionId: string;
  participant: Participant;
  typing: boolean;
}

/** What a socket is shown of an event (undefined: nothing), and of a typing notice. */
export interface FeedView {
  event(event: InteractionEvent): object | undefined;
  typing(notice: Notice): object;
}

/** Agents see every event as the HTTP routes present it. */
const agentView: FeedView = { event: presentEvent, typing: notice => notice };

/** Why a feed read events from PostgreSQL (`nexus_socket_fills_total{trigger}`). */
export type FillTrigger = 'connect' | 'gap' | 'adapter_reconnect' | 'head_notice' | 'head_check';

/** Reads an interaction's events after a seq (and before one, when given). */
export type EventLoader = (after: number, before?: number) => Promise<InteractionEvent[]>;

/** The loader of each interaction's events: 500 at a time, or exactly a gap's. */
export const eventLoader =
  (db: DatabasePool) =>
  (interactionId: string): EventLoader =>
  (after, before) =>
    listEvents(db, interactionId, after, before === undefined ? 500 : before - after - 1, before);

/**
 * One socket's view of one interaction: delivers events exactly once and in seq order. Live
 * events come from any replica through the socket.io Redis adapter; when one arrives ahead of the
 * last seq read, the gap is read from PostgreSQL first; a head (the interaction's last seq, from
 * a notice or PostgreSQL) ahead of it is caught up the same way. Deliveries are chained, so a
 * catch-up and live events never interleave. `lastSeq` counts every event read, shown or not
 * (a customer is not shown routing events), so skipped events never look like a gap.
 */
export class Feed {
  private chain: Promise<void> = Promise.resolve();
  private typingTimers = new Map<string, NodeJS.Timeout>();

  constructor(
    readonly socket: Socket,
    readonly interactionId: string,
    private lastSeq: number,
    private readonly load: EventLoader,
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

/** This replica's feeds, by interaction and by socket. */
export class FeedHub {
  private readonly feeds = new Map<string, Set<Feed>>();
  private readonly bySocket = new Map<Socket, Set<Feed>>();

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

  /**
   * Reads the committed heads of the followed interactions from PostgreSQL, in one query per
   * 1,000, and catches up every feed behind its head (only those read their events).
   */
  async fillToHeads(db: DatabasePool, trigger: 'head_check' | 'adapter_reconnect'): Promise<void> {
    const ids = this.interactions();
    for (let i = 0; i < ids.length; i += 1_000) {
      for (const head of await interactionHeads(db, ids.slice(i, i + 1_000))) {
        this.fill(head.id, trigger, head.last_seq);
      }
    }
  }
}
