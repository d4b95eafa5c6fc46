import { Emitter } from '@socket.io/redis-emitter';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import type { RedisConnection } from './redis.js';

/** Server-side events every API replica listens to (api/realtime). */
export const REALTIME = {
  /** Committed interaction events, in seq order: `{events: InteractionEvent[]}`. */
  events: 'nexus:events',
  /** Ephemeral notices (typing): `{tenantId, interactionId, participant, typing}`. */
  notice: 'nexus:notice',
  /** Heads of interactions whose events may not have reached the replicas: `{heads: HeadNotice[]}`. */
  heads: 'nexus:heads',
} as const;

/** An interaction's last seq: sockets following it and behind it catch up from PostgreSQL. */
export interface HeadNotice {
  interactionId: string;
  seq: number;
}

/** The most interactions a publisher remembers while Redis is away (the oldest are dropped). */
const MAX_UNSENT = 10_000;
/** Heads per notice. */
const HEADS_PER_NOTICE = 500;

/** The socket.io Redis adapter's channel prefix, per queue prefix (tests and tenants of Redis). */
export const socketIoKey = (config: Config) => `${config.queues.prefix}:socket.io`;

/**
 * Tells every API replica about committed events (and typing notices) through the socket.io Redis
 * emitter; each replica hands them to its connected customers and agents, in order (see
 * api/realtime). Publishing never throws: an event not published is still in PostgreSQL. The
 * publisher remembers the head of every interaction whose events it could not publish (or
 * published while its connection was not ready) and, once the connection is ready again or a
 * publish succeeds, publishes those heads (`REALTIME.heads`): sockets behind them catch up from
 * PostgreSQL.
 */
export class RealtimePublisher {
  private readonly emitter: Emitter;
  /** Interaction id → the highest seq not surely published. */
  private readonly unsent = new Map<string, number>();
  /** Called when the publish under way fails (set around each synchronous emit). */
  private onFailure: (() => void) | undefined;

  constructor(
    private readonly redis: RedisConnection,
    config: Config,
    log: Logger,
  ) {
    // The emitter fires and forgets; catch here so a Redis outage is a log line, not a crash.
    const client = {
      publish: (channel: string, message: string) => {
        const failed = this.onFailure;
        return redis.publish(channel, message).then(
          count => {
            // Redis answers again. A cluster client stays `ready` through its nodes' outages and
            // never emits `ready` again, so a publish that succeeds sends the waiting heads too.
            if (this.unsent.size > 0) setImmediate(() => this.publishUnsent());
            return count;
          },
          (error: unknown) => {
            log.warn({ err: error }, 'could not publish realtime events');
            failed?.();
            return 0;
          },
        );
      },
    };
    this.emitter = new Emitter(client, { key: socketIoKey(config) });
    redis.on('ready', () => this.publishUnsent());
  }

  events(events: readonly { interactionId: string; seq: number }[]): void {
    if (events.length === 0) return;
    // Not ready: the publish fails (or waits in the offline queue, maybe for replicas that are
    // not subscribed yet); either way its heads go out again once the connection is ready.
    if (this.redis.status !== 'ready') this.remember(events);
    this.emit(REALTIME.events, { events }, () => this.remember(events));
  }

  notice(notice: Record<string, unknown>): void {
    this.emitter.serverSideEmit(REALTIME.notice, notice);
  }

  /** Interactions whose heads wait to be published (for tests and diagnostics). */
  get unsentCount(): number {
    return this.unsent.size;
  }

  private emit(event: string, payload: unknown, onFailure: () => void): void {
    this.onFailure = onFailure;
    try {
      this.emitter.serverSideEmit(event, payload);
    } finally {
      this.onFailure = undefined;
    }
  }

  private remember(events: readonly { interactionId: string; seq: number }[]): void {
    for (const { interactionId, seq } of events) {
      const known = this.unsent.get(interactionId);
      if (known !== undefined && known >= seq) continue;
      this.unsent.delete(interactionId);
      this.unsent.set(interactionId, seq);
      if (this.unsent.size > MAX_UNSENT) {
        // The API replicas' periodic head check (NEXUS_SOCKET_HEAD_CHECK_MS) covers the dropped.
        const oldest = this.unsent.keys().next().value;
        if (oldest !== undefined) this.unsent.delete(oldest);
      }
    }
  }

  private publishUnsent(): void {
    if (this.unsent.size === 0) return;
    const heads: HeadNotice[] = [...this.unsent].map(([interactionId, seq]) => ({
      interactionId,
      seq,
    }));
    this.unsent.clear();
    for (let i = 0; i < heads.length; i += HEADS_PER_NOTICE) {
      const batch = heads.slice(i, i + HEADS_PER_NOTICE);
      this.emit(REALTIME.heads, { heads: batch }, () =>
        this.remember(batch.map(head => ({ interactionId: head.interactionId, seq: head.seq }))),
      );
    }
  }
}
