import type { Server as HttpServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import type { DatabasePool } from 'slonik';
import { Server } from 'socket.io';
import type { InteractionEvent } from '../../db/conversation.js';
import type { Config } from '../../lib/config.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import type { Logger } from '../../lib/logger.js';
import { REALTIME, socketIoKey, type HeadNotice } from '../../lib/realtime-publisher.js';
import { closeRedis, createRedis, createSubscriber } from '../../lib/redis.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { ChatServices } from '../chat/chat-services.js';
import { attachAgentNamespace } from './agent-namespace.js';
import { attachCustomerNamespace } from './customer-namespace.js';
import { eventLoader, FeedHub, type Notice } from './feed.js';

/**
 * The socket layer's wiring: socket.io on the API's HTTP server with the Redis adapter, the
 * customer and agent namespaces over one feed hub, the events, typing notices and heads other
 * replicas publish, and the head checks that catch up what a lost publish left behind.
 */

export const SOCKET_PATH = '/nexus/v3/socket.io';

export interface RealtimeDeps {
  config: Config;
  db: DatabasePool;
  log: Logger;
  chat: ChatServices;
  auth: Authenticator;
  /** The replica's invalidation bus (the app's): agent and tenant changes close sockets. */
  bus: InvalidationBus;
}

export interface Realtime {
  readonly io: Server;
  close(): Promise<void>;
}

/**
 * Socket.io on the API's HTTP server, at `/nexus/v3/socket.io`:
 * - `/chat` for customers (api/realtime/customer-namespace.ts);
 * - `/agent` for agents (api/realtime/agent-namespace.ts).
 * Replicas share events through the socket.io Redis adapter.
 */
export function attachRealtime(server: HttpServer, deps: RealtimeDeps): Realtime {
  const { config, db, log, chat } = deps;
  const pub = createRedis(config.redis, 'worker', 'socketio-pub', log);
  // On a cluster, a connection to one node (see createSubscriber): the PING below must travel on
  // the subscriber's own connection.
  const sub = createSubscriber(config.redis, 'socketio-sub', log);
  const io = new Server(server, { path: SOCKET_PATH, serveClient: false, cors: { origin: true } });
  io.adapter(createAdapter(pub, sub, { key: socketIoKey(config) }));
  const hub = new FeedHub();
  const loader = eventLoader(db);

  const { bus } = deps;
  const customers = attachCustomerNamespace(io, { log, chat, hub, loader });
  const agents = attachAgentNamespace(io, {
    config,
    db,
    log,
    chat,
    auth: deps.auth,
    bus,
    hub,
    loader,
  });

  io.of('/').on(REALTIME.events, ({ events }: { events: InteractionEvent[] }) => {
    for (const event of events) {
      for (const feed of hub.of(event.interactionId)) feed.push(event);
      agents.onEvent(event);
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
      await hub.fillToHeads(db, trigger);
    } catch (error) {
      log.warn({ err: error }, 'could not check the heads of socket feeds');
    }
    try {
      await agents.checkAgents(trigger);
    } catch (error) {
      log.warn({ err: error }, 'could not check the interactions of connected agents');
    }
  };
  const headTimer =
    config.socketHeadCheckMs > 0
      ? setInterval(() => void check('head_check'), config.socketHeadCheckMs)
      : undefined;
  headTimer?.unref();

  return {
    io,
    async close() {
      agents.close();
      customers.close();
      clearInterval(headTimer);
      await io.close();
      await closeRedis(pub);
      await closeRedis(sub);
    },
  };
}
