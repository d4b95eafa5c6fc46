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
} as const;

/** The socket.io Redis adapter's channel prefix, per queue prefix (tests and tenants of Redis). */
export const socketIoKey = (config: Config) => `${config.queues.prefix}:socket.io`;

/**
 * Tells every API replica about committed events (and typing notices) through the socket.io Redis
 * emitter; each replica hands them to its connected customers and agents, in order (see
 * api/realtime). Publishing never throws: an event not published is still in PostgreSQL, and
 * clients get it with the next event (gap fill) or when they reconnect (catch-up).
 */
export class RealtimePublisher {
  private readonly emitter: Emitter;

  constructor(redis: RedisConnection, config: Config, log: Logger) {
    // The emitter fires and forgets; catch here so a Redis outage is a log line, not a crash.
    const client = {
      publish: (channel: string, message: string) =>
        redis.publish(channel, message).catch((error: unknown) => {
          log.warn({ err: error }, 'could not publish realtime events');
          return 0;
        }),
    };
    this.emitter = new Emitter(client, { key: socketIoKey(config) });
  }

  events(events: readonly { interactionId: string; seq: number }[]): void {
    if (events.length > 0) this.emitter.serverSideEmit(REALTIME.events, { events });
  }

  notice(notice: Record<string, unknown>): void {
    this.emitter.serverSideEmit(REALTIME.notice, notice);
  }
}
