import type { Server } from 'socket.io';
import type { Logger } from '../../lib/logger.js';
import { socketConnections } from '../../lib/metrics.js';
import type { ChatServices } from '../chat/chat-services.js';
import type { ChatClient } from '../chat/customer-chat.js';
import { customerEvent, customerParticipant } from '../chat/customer-events.js';
import { customer } from '../presenters.js';
import { Feed, type EventLoader, type FeedHub, type FeedView } from './feed.js';
import { failure, handshakeError, ok, onRequest, refusal, type Ack } from './replies.js';
import { chatMessage, clientSeq } from './requests.js';

/**
 * The `/chat` namespace, for customers: `auth: {token: <clientToken>, lastSeq?}`; events
 * `message`, `typing`, `read`, `participant`, `ended`, `started`; the customer sends `message`
 * (with an ack), `typing` and `read`. Its socket follows its one interaction from `lastSeq` on.
 * A socket of a disabled tenant is refused (`NEXUS_ERR_TENANT_DISABLED`); the sockets of a tenant
 * disabled meanwhile are closed on every replica (the invalidation bus tells them).
 */

/** Customers see customer-facing events only (api/chat/customer-events). */
const customerView: FeedView = {
  event: customerEvent,
  typing: ({ interactionId, participant, typing }) => ({
    interactionId,
    participant: customerParticipant(participant),
    typing,
  }),
};

export interface CustomerNamespaceDeps {
  log: Logger;
  chat: ChatServices;
  hub: FeedHub;
  loader: (interactionId: string) => EventLoader;
}

export interface CustomerNamespace {
  /** Stops listening for disabled tenants. */
  close(): void;
}

/** What a customer socket keeps (`socket.data`). */
interface CustomerSocket {
  client: ChatClient;
  me: ReturnType<typeof customer>;
}

/** The room of a tenant's customer sockets on each replica. */
const tenantRoom = (tenantId: string) => `tenant:${tenantId}`;

export function attachCustomerNamespace(
  io: Server,
  deps: CustomerNamespaceDeps,
): CustomerNamespace {
  const { log, chat, hub, loader } = deps;
  const customers = io.of('/chat');
  const { tenants } = chat.customers;
  // A disabled tenant's customers lose their sockets here (a new one is refused in the handshake).
  const stopTenants = tenants.onDisabled(tenantId =>
    customers.in(tenantRoom(tenantId)).local.disconnectSockets(true),
  );
  customers.use((socket, next) => {
    const auth = socket.handshake.auth as { token?: unknown };
    const token = typeof auth.token === 'string' ? auth.token : undefined;
    chat.customers.sessionFor(token).then(
      session => {
        // Only what the socket's life needs: an open socket holds this for hours.
        const state: CustomerSocket = {
          client: {
            sessionId: session.id,
            tenantId: session.tenant_id,
            interactionId: session.interaction_id,
            participantId: session.participant_id,
          },
          me: customer(session),
        };
        socket.data = state;
        next();
      },
      (error: unknown) => next(handshakeError(error)),
    );
  });
  customers.on('connection', socket => {
    socketConnections.inc({ namespace: 'chat' });
    socket.on('disconnect', () => socketConnections.dec({ namespace: 'chat' }));
    const { client, me } = socket.data as CustomerSocket;
    const { tenantId, interactionId } = client;
    const lastSeq = clientSeq((socket.handshake.auth as { lastSeq?: unknown }).lastSeq) ?? 0;
    const feed = new Feed(
      socket,
      interactionId,
      lastSeq,
      loader(interactionId),
      log,
      me.id,
      customerView,
    );
    hub.add(feed);
    void feed.catchUp();
    socket.on('disconnect', () => hub.removeSocket(socket));
    void socket.join(tenantRoom(tenantId));
    // Disabled between the handshake's check and the join: closed here (later, by the listener).
    tenants.isDisabled(tenantId).then(
      disabled => {
        if (disabled) socket.disconnect(true);
      },
      (error: unknown) => log.warn({ err: error }, 'could not check the tenant of a socket'),
    );
    onRequest(socket, 'message', (payload: unknown, ack?: Ack) => {
      const parsed = chatMessage.safeParse(payload);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        ack?.(refusal('NEXUS_ERR_VALIDATION', issue?.message, issue?.path.join('.')));
        return;
      }
      chat.customers
        .limitSession(client.sessionId)
        .then(() =>
          chat.customers.customerMessage(
            client,
            parsed.data.text,
            parsed.data.clientMessageId ?? null,
          ),
        )
        .then(
          result => ack?.(ok({ id: result.id, duplicate: !result.created })),
          (error: unknown) => ack?.(failure(error)),
        );
    });
    socket.on('typing', (payload: unknown) => {
      const typing = (payload as { typing?: unknown } | undefined)?.typing !== false;
      chat.customers.limitSession(client.sessionId).then(
        () => chat.conversation.typing(tenantId, interactionId, me, typing),
        () => undefined,
      );
    });
    onRequest(socket, 'read', (payload: unknown, ack?: Ack) => {
      const seq = Number((payload as { seq?: unknown } | undefined)?.seq);
      if (!Number.isSafeInteger(seq) || seq < 1) {
        ack?.(refusal('NEXUS_ERR_VALIDATION', 'seq must be a positive integer', 'seq'));
        return;
      }
      chat.conversation.read(tenantId, interactionId, me, seq).then(
        () => ack?.(ok({ seq })),
        (error: unknown) => ack?.(failure(error)),
      );
    });
  });

  return { close: stopTenants };
}
