import { io, type Socket } from 'socket.io-client';
import type { HubEvent, TypingNotice } from './events.js';

/**
 * The agent's socket (`/agent` under /nexus/v3/socket.io). Its handshake carries the current
 * token and, for each followed interaction, the last seq the page holds, so that after any
 * reconnect the hub sends exactly what was missed, in order (docs/chat.md, "Sockets").
 */

/** The socket events that carry an interaction event (everything but `typing`). */
export const EVENT_NAMES = [
  'interaction',
  'started',
  'participant',
  'message',
  'read',
  'queued',
  'offer',
  'assigned',
  'parked',
  'undelivered',
  'ended',
  'status',
  'bot',
  'handoff',
  'suggestion',
] as const;

export interface AgentSocketOptions {
  token: () => string;
  lastSeqs: () => Record<string, number>;
  onEvent: (event: HubEvent) => void;
  onTyping: (notice: TypingNotice) => void;
  onState: (connected: boolean, error?: string) => void;
}

export function connectAgentSocket(options: AgentSocketOptions): Socket {
  const socket = io('/agent', {
    path: '/nexus/v3/socket.io',
    transports: ['websocket'],
    auth: callback => callback({ token: options.token(), lastSeqs: options.lastSeqs() }),
  });
  for (const name of EVENT_NAMES) socket.on(name, (event: HubEvent) => options.onEvent(event));
  socket.on('typing', (notice: TypingNotice) => options.onTyping(notice));
  socket.on('connect', () => options.onState(true));
  socket.on('disconnect', () => options.onState(false));
  socket.on('connect_error', (error: Error & { data?: { code?: string } }) =>
    options.onState(false, error.data?.code ?? error.message),
  );
  return socket;
}

/** Emits with an ack; resolves with the ack's data, rejects with its error. */
export function request<T>(socket: Socket, event: string, payload: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    socket
      .timeout(10_000)
      .emit(
        event,
        payload,
        (
          error: Error | null,
          ack?: { status: { code: number | string; message?: string }; data?: T },
        ) => {
          if (error) reject(error);
          else if (ack?.status.code === 0) resolve(ack.data as T);
          else reject(new Error(ack?.status.message ?? 'refused'));
        },
      );
  });
}
