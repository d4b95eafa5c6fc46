import { AppError, coerceError, isAppError, type ErrorCode } from '../../lib/errors.js';
import { toAppError } from '../error-handler.js';

/**
 * How both socket namespaces answer: an ack's success or coded failure (`status.code`, as the
 * HTTP routes answer), and a handshake refusal.
 */

/** The acknowledgement callback a client passes with a request. */
export type Ack = (answer: unknown) => void;

/**
 * Listens for a client request, whatever the client sent with it: socket.io hands a listener
 * every argument the client emitted and puts the acknowledgement last, only when the client asked
 * for one. `handler` gets the first argument as the payload and the acknowledgement only when the
 * last argument is a function, so `emit('read', {seq: 1}, {})` is a payload with no ack rather
 * than an object called as a function (a TypeError outside any request, which ends the process).
 */
export function onRequest(
  socket: { on(event: string, listener: (...args: unknown[]) => void): unknown },
  event: string,
  handler: (payload: unknown, ack: Ack | undefined) => void,
): void {
  socket.on(event, (...args: unknown[]) => {
    const last = args.at(-1);
    const ack = typeof last === 'function' ? (last as Ack) : undefined;
    handler(ack && args.length === 1 ? undefined : args[0], ack);
  });
}

export const ok = (data: unknown) => ({ status: { code: 0 }, data });

/**
 * An ack's error, coded as the HTTP routes answer it (a lock timeout is 503 NEXUS_ERR_DB_BUSY
 * with `retryAfter`, PostgreSQL down NEXUS_ERR_DB_UNAVAILABLE), never an internal error for those.
 */
export const failure = (thrown: unknown) => {
  const error = toAppError(thrown);
  const retryAfter = (error as { retryAfter?: unknown }).retryAfter;
  return {
    status: {
      code: error.code,
      message: error.publicMessage,
      // A root-level issue (an unknown key) names the field '', as the sockets always have.
      ...(error.field !== undefined ? { field: error.field } : {}),
      ...(typeof retryAfter === 'number' ? { retryAfter } : {}),
    },
  };
};

/**
 * A refusal the handler decides itself (invalid input, nothing found): a catalogue code, shaped
 * as {@link failure} shapes any error.
 */
export const refusal = (code: ErrorCode, message: string | undefined, field?: string) =>
  failure(new AppError(code, message, field));

/** A handshake refusal the client sees as `connect_error` with `data.code`. */
export function handshakeError(thrown: unknown): Error {
  const error = toAppError(thrown);
  const refused = new Error(error.publicMessage) as Error & { data?: unknown };
  refused.data = { code: error.code };
  if (!isAppError(thrown)) refused.cause = coerceError(thrown);
  return refused;
}
