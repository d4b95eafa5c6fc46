import type { DatabasePool } from 'slonik';
import type { Server, Socket } from 'socket.io';
import { z } from 'zod';
import type { InteractionEvent } from '../../db/conversation.js';
import { findAgent } from '../../db/queries/agents.js';
import {
  listAgentInteractionIds,
  listAgentsInteractionIds,
} from '../../db/queries/interaction-agents.js';
import { findInteraction, listPendingOffers } from '../../db/queries/interactions.js';
import type { Config } from '../../lib/config.js';
import { ERRORS, type ErrorCode } from '../../lib/errors.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import type { Logger } from '../../lib/logger.js';
import { socketConnections } from '../../lib/metrics.js';
import type { Authenticator } from '../auth/authenticator.js';
import { agentOf } from '../auth/principal.js';
import type { ChatServices } from '../chat/chat-services.js';
import type { Participant } from '../chat/conversation.js';
import { presentEvent } from '../presenters.js';
import { Feed, type EventLoader, type FeedHub, type FillTrigger } from './feed.js';
import { failure, handshakeError, ok, onRequest, refusal, type Ack } from './replies.js';
import { chatMessage, clientSeq } from './requests.js';

/**
 * The `/agent` namespace, for agents: `auth: {token: <agent token>, lastSeqs?}`; `interaction`
 * for every new interaction of the tenant, `offer` for the agent's offers (each once), and every
 * event of the interactions the agent joined; the agent sends `subscribe`
 * `{interactionId, lastSeq}` (catches one up), `message` and `presence`. An agent whose last
 * socket is gone past the grace becomes not ready. A socket signed in with a hub agent token is
 * told `expired` `{code: 'NEXUS_ERR_TOKEN_EXPIRED'}` and disconnected when its token expires,
 * unless the agent sends a fresh token of its own before (`token` `{token}`), which moves the
 * deadline to that token's expiry. An agent disabled, or of a tenant disabled, meanwhile is told
 * `expired` (`NEXUS_ERR_UNAUTHORIZED`, `NEXUS_ERR_TENANT_DISABLED`) and disconnected at once, on
 * every replica (the invalidation bus tells them).
 */

/** What an agent socket carries. */
interface AgentSocketData {
  agentId: string;
  agent: ReturnType<typeof agentOf>;
  /** The handshake's `lastSeqs`, valid ones only: where a feed of that interaction starts. */
  lastSeqs: ReadonlyMap<string, number>;
  /** The last offer's seq shown, by interaction (the most recent 256): each offer once. */
  offers: Map<string, number>;
  /** When the hub agent token the socket holds expires (ISO); undefined for an operator JWT. */
  tokenExpiresAt: string | undefined;
}
const OFFERS_REMEMBERED = 256;

const presenceChange = z
  .object({ ready: z.boolean().optional(), capacity: z.number().int().min(0).max(100).optional() })
  .strict();

export interface AgentNamespaceDeps {
  config: Config;
  db: DatabasePool;
  log: Logger;
  chat: ChatServices;
  auth: Authenticator;
  /** Agent changes: a disabled agent's sockets are closed. */
  bus: InvalidationBus;
  hub: FeedHub;
  loader: (interactionId: string) => EventLoader;
}

export interface AgentNamespace {
  /** Shows a live event to the agents it concerns (the feeds have had it already). */
  onEvent(event: InteractionEvent): void;
  /**
   * Reads the connected agents' interactions and open offers (one query each per 1,000 agents):
   * an agent joined or assigned, or offered a chat, while its publish was lost follows that chat
   * (from seq 0, as on connecting) and is shown the offer (once per socket).
   */
  checkAgents(trigger: 'head_check' | 'adapter_reconnect'): Promise<void>;
  /** Stops the not-ready timers and listening for agent and tenant changes. */
  close(): void;
}

export function attachAgentNamespace(io: Server, deps: AgentNamespaceDeps): AgentNamespace {
  const { config, db, log, chat, hub, loader } = deps;
  /** This replica's agent sockets, by tenant. */
  const byTenant = new Map<string, Set<Socket>>();
  const notReadyTimers = new Map<string, NodeJS.Timeout>();

  /** The local sockets of each connected agent. */
  const agentSockets = (): Map<string, Socket[]> => {
    const byAgent = new Map<string, Socket[]>();
    for (const sockets of byTenant.values()) {
      for (const socket of sockets) {
        const { agentId } = socket.data as AgentSocketData;
        const list = byAgent.get(agentId);
        if (list) list.push(socket);
        else byAgent.set(agentId, [socket]);
      }
    }
    return byAgent;
  };
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

  const agents = io.of('/agent');
  const { tenants } = chat.customers;

  /** Tells sockets why they are closed (the agent pages sign out on `expired`), then closes them. */
  const revoke = (socket: Socket, code: ErrorCode, message: string) => {
    socket.emit('expired', { code, message });
    socket.disconnect(true);
  };
  /** The agents whose change is being read: their sockets' requests wait for the answer. */
  const checking = new Map<string, Promise<void>>();
  // A changed agent with sockets here is read once: disabled (or gone), its sockets are closed.
  const stopAgents = deps.bus.onInvalidate(change => {
    if (change.kind !== 'agent') return;
    const room = `agent:${change.id}`;
    if (!agents.adapter.rooms.has(room)) return;
    const check = findAgent(db, change.tenant, change.id).then(
      row => {
        if (row?.enabled) return;
        const local = agents.in(room).local;
        local.emit('expired', { code: 'NEXUS_ERR_UNAUTHORIZED', message: 'The agent is disabled' });
        local.disconnectSockets(true);
        log.info({ agentId: change.id }, 'agent disabled: its sockets are closed');
      },
      (error: unknown) =>
        log.warn({ err: error, agentId: change.id }, 'could not read a changed agent'),
    );
    const pending = check.finally(() => {
      if (checking.get(change.id) === pending) checking.delete(change.id);
    });
    checking.set(change.id, pending);
  });
  // A disabled tenant's agents lose their sockets (a new one is refused in the handshake).
  const stopTenants = tenants.onDisabled(tenantId => {
    const sockets = [...(byTenant.get(tenantId) ?? [])];
    for (const socket of sockets) {
      revoke(socket, 'NEXUS_ERR_TENANT_DISABLED', ERRORS.NEXUS_ERR_TENANT_DISABLED.message);
    }
    if (sockets.length > 0) {
      log.info({ tenantId }, "tenant disabled: its agents' sockets are closed");
    }
  });

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
          const data: AgentSocketData = {
            agentId: agent.id,
            agent,
            lastSeqs,
            offers: new Map(),
            tokenExpiresAt: principal.tokenExpiresAt,
          };
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
    // The socket lives as long as its token: told `expired` and disconnected at the deadline.
    let expiry: NodeJS.Timeout | undefined;
    const expireAt = (expiresAt: string | undefined) => {
      clearTimeout(expiry);
      expiry = undefined;
      if (expiresAt === undefined) return;
      // setTimeout holds at most 2^31-1 ms (24.8 days); tokens live 7 days at most.
      const delay = Math.min(Math.max(0, Date.parse(expiresAt) - Date.now()), 2 ** 31 - 1);
      expiry = setTimeout(() => {
        expiry = undefined;
        const { code, message } = ERRORS.NEXUS_ERR_TOKEN_EXPIRED;
        socket.emit('expired', { code, message });
        socket.disconnect(true);
      }, delay);
      expiry.unref();
    };
    expireAt((socket.data as AgentSocketData).tokenExpiresAt);
    socket.on('disconnect', () => clearTimeout(expiry));
    onRequest(socket, 'token', (payload: unknown, ack?: Ack) => {
      const { token } = (payload ?? {}) as { token?: unknown };
      if (typeof token !== 'string' || token.length === 0) {
        ack?.(refusal('NEXUS_ERR_VALIDATION', 'send {token}: a fresh agent token', 'token'));
        return;
      }
      deps.auth.authenticateToken(token).then(
        principal => {
          if (principal.agent?.id !== agent.id) {
            ack?.(
              refusal(
                'NEXUS_ERR_FORBIDDEN',
                "The token is not this agent's; nothing changed",
                'token',
              ),
            );
            return;
          }
          if (!socket.connected) return;
          (socket.data as AgentSocketData).tokenExpiresAt = principal.tokenExpiresAt;
          expireAt(principal.tokenExpiresAt);
          ack?.(ok({ expiresAt: principal.tokenExpiresAt ?? null }));
        },
        (error: unknown) => ack?.(failure(error)),
      );
    });
    let set = byTenant.get(agent.tenant);
    if (!set) byTenant.set(agent.tenant, (set = new Set()));
    set.add(socket);
    // Disabled between the handshake's check and now: closed here (later, by the listener).
    tenants.isDisabled(agent.tenant).then(
      disabled => {
        if (disabled && socket.connected) {
          revoke(socket, 'NEXUS_ERR_TENANT_DISABLED', ERRORS.NEXUS_ERR_TENANT_DISABLED.message);
        }
      },
      (error: unknown) => log.warn({ err: error }, 'could not check the tenant of a socket'),
    );
    // While a change of the agent or its tenant is being read, a request waits for the answer:
    // a disabled agent's request goes nowhere.
    socket.use((_packet, next) => {
      const waits = [checking.get(agent.id), tenants.pendingRead(agent.tenant)].filter(
        wait => wait !== undefined,
      );
      if (waits.length === 0) {
        next();
        return;
      }
      void Promise.all(waits).then(() => {
        if (socket.connected) next();
      });
    });
    // Every socket of the agent, on any replica, is in its room: presence follows the last one.
    const room = `agent:${agent.id}`;
    void socket.join(room);
    clearTimeout(notReadyTimers.get(agent.id));
    socket.on('disconnect', () => {
      byTenant.get(agent.tenant)?.delete(socket);
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
            await chat.desk.presence(agent.tenant, agent.id, { ready: false });
            log.info({ agentId: agent.id }, 'agent disconnected past the grace: not ready');
          })
          .catch((error: unknown) => log.warn({ err: error }, 'could not check agent presence'));
      }, config.agentDisconnectGraceMs);
      timer.unref();
      notReadyTimers.set(agent.id, timer);
    });
    onRequest(socket, 'presence', (payload: unknown, ack?: Ack) => {
      const parsed = presenceChange.safeParse(payload ?? {});
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        ack?.(
          refusal(
            'NEXUS_ERR_VALIDATION',
            `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
            issue?.path.join('.'),
          ),
        );
        return;
      }
      chat.desk.presence(agent.tenant, agent.id, parsed.data).then(
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
    onRequest(socket, 'subscribe', (payload: unknown, ack?: Ack) => {
      const { interactionId, lastSeq } = (payload ?? {}) as {
        interactionId?: unknown;
        lastSeq?: unknown;
      };
      if (
        typeof interactionId !== 'string' ||
        !z.string().uuid().safeParse(interactionId).success
      ) {
        ack?.(
          refusal(
            'NEXUS_ERR_VALIDATION',
            'interactionId must be an interaction id',
            'interactionId',
          ),
        );
        return;
      }
      const from = lastSeq === undefined || lastSeq === null ? 0 : clientSeq(lastSeq);
      if (from === undefined) {
        ack?.(
          refusal(
            'NEXUS_ERR_VALIDATION',
            'lastSeq must be an integer of 0 or more (the last seq read)',
            'lastSeq',
          ),
        );
        return;
      }
      findInteraction(db, agent.tenant, interactionId).then(
        row => {
          if (!row) {
            ack?.(refusal('NEXUS_ERR_NOT_FOUND', 'interaction not found'));
            return;
          }
          // A seq past the head counts as the head: later events are still shown.
          follow(socket, interactionId, Math.min(from, row.last_seq));
          ack?.(ok({ interactionId }));
        },
        (error: unknown) => ack?.(failure(error)),
      );
    });
    onRequest(socket, 'message', (payload: unknown, ack?: Ack) => {
      const { interactionId, ...rest } = (payload ?? {}) as { interactionId?: unknown };
      const parsed = chatMessage.safeParse(rest);
      const validId = z.string().uuid().safeParse(interactionId);
      if (!validId.success || !parsed.success) {
        ack?.(
          refusal(
            'NEXUS_ERR_VALIDATION',
            'send {interactionId, text, clientMessageId?}',
            validId.success ? (parsed.error?.issues[0]?.path.join('.') ?? 'text') : 'interactionId',
          ),
        );
        return;
      }
      chat.desk
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
    onEvent(event) {
      if (event.type === 'interaction.offered') {
        // The agent has not joined: its sockets hear the offer directly.
        const offeredTo = (event.data.agent as { id?: string } | undefined)?.id;
        for (const socket of byTenant.get(event.tenantId) ?? []) {
          if ((socket.data as AgentSocketData).agentId === offeredTo) showOffer(socket, event);
        }
      }
      if (event.type === 'interaction.started') {
        for (const socket of byTenant.get(event.tenantId) ?? []) {
          socket.emit('interaction', presentEvent(event));
        }
      }
      const participant = event.data.participant as Participant | undefined;
      if (event.type === 'participant.joined' && participant?.type === 'agent') {
        // The agent's sockets on this replica follow the interaction from its join on.
        for (const socket of byTenant.get(event.tenantId) ?? []) {
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
    },
    async checkAgents(trigger) {
      const byAgent = agentSockets();
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
    },
    close() {
      for (const timer of notReadyTimers.values()) clearTimeout(timer);
      stopAgents();
      stopTenants();
    },
  };
}
