import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import {
  BackendTerminatedError,
  BackendTerminatedUnexpectedlyError,
  ConnectionError,
  IdleTransactionTimeoutError,
  StatementTimeoutError,
} from 'slonik';
import { AppError, isAppError, type ErrorCode } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';

/** The guide's response envelope: `{status: {code, message}}`; `code` is 0 on success. */
export interface ErrorEnvelope {
  status: { code: string; message: string; field?: string };
}

export const envelope = <T>(data: T) => ({ status: { code: 0 }, data });

/**
 * Answers `{status: {code: 0}, data, operationId}`. The operation id is the request id
 * (`X-Request-Id`), so a caller can quote it and an operator find the request's log lines.
 */
export function reply(res: Response, status: number, data: unknown): void {
  const operationId = res.getHeader('X-Request-Id');
  res.status(status).json({
    status: { code: 0 },
    data,
    ...(typeof operationId === 'string' ? { operationId } : {}),
  });
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EPIPE',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
]);

/**
 * Connection-level failures of PostgreSQL (slonik's connection errors, or a socket / server
 * shutdown code anywhere in the cause chain) that mean "try again later".
 */
function isDbUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    if (
      current instanceof ConnectionError ||
      current instanceof BackendTerminatedError ||
      current instanceof BackendTerminatedUnexpectedlyError
    ) {
      return true;
    }
    const { code, message, cause } = current as {
      code?: unknown;
      message?: unknown;
      cause?: unknown;
    };
    if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
    if (
      typeof message === 'string' &&
      /connection terminated|timeout exceeded when trying to connect/i.test(message)
    ) {
      return true;
    }
    current = cause;
  }
  return false;
}

const BUSY_CODES = new Set([
  '55P03', // lock_not_available: lock_timeout (DB_LOCK_TIMEOUT_MS)
  '57014', // query_canceled: statement_timeout
  '40P01', // deadlock_detected
  '25P03', // idle_in_transaction_session_timeout
]);

/**
 * A statement that gave up waiting (lock or statement timeout, deadlock): PostgreSQL is up but
 * the rows are busy, so the request answers 503 `NEXUS_ERR_DB_BUSY` (retry), never 500.
 */
function isDbBusy(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    if (
      current instanceof StatementTimeoutError ||
      current instanceof IdleTransactionTimeoutError
    ) {
      return true;
    }
    const { code, cause } = current as { code?: unknown; cause?: unknown };
    if (typeof code === 'string' && BUSY_CODES.has(code)) return true;
    current = cause;
  }
  return false;
}

/** Seconds a client waits before retrying on a busy database. */
export const BUSY_RETRY_AFTER_S = 2;

/**
 * Body-parser errors carry `type` (and an http-errors `status`); each maps to a catalogue code
 * and the part of the request at fault, so no hostile body answers 500.
 */
const BODY_PARSER_ERRORS: Record<string, [ErrorCode, string]> = {
  'entity.parse.failed': ['NEXUS_ERR_BAD_JSON', 'body'],
  'entity.too.large': ['NEXUS_ERR_BODY_TOO_LARGE', 'body'],
  'charset.unsupported': ['NEXUS_ERR_UNSUPPORTED_CHARSET', 'header.content-type'],
  // body-parser's own `encoding.unsupported` is the Content-Encoding (raw-body's, the charset,
  // reaches us as `charset.unsupported`).
  'encoding.unsupported': ['NEXUS_ERR_UNSUPPORTED_ENCODING', 'header.content-encoding'],
  'parameters.too.many': ['NEXUS_ERR_TOO_MANY_PARAMETERS', 'body'],
  'querystring.parse.rangeError': ['NEXUS_ERR_VALIDATION', 'body'],
  'request.aborted': ['NEXUS_ERR_BODY_INCOMPLETE', 'body'],
  'request.size.invalid': ['NEXUS_ERR_BODY_INCOMPLETE', 'header.content-length'],
};

function fromBodyParser(error: unknown): AppError | undefined {
  const { type, status, expose, code, message } = (error ?? {}) as {
    type?: unknown;
    status?: unknown;
    expose?: unknown;
    code?: unknown;
    message?: unknown;
  };
  const known = typeof type === 'string' ? BODY_PARSER_ERRORS[type] : undefined;
  if (known) return new AppError(known[0], undefined, known[1], { cause: error });
  // A body that does not inflate with its Content-Encoding: zlib's error, given status 400.
  if (typeof code === 'string' && /^Z_|^ERR_BROTLI|^ERR_ZLIB/.test(code)) {
    return new AppError('NEXUS_ERR_BAD_ENCODING', undefined, 'header.content-encoding', {
      cause: error,
    });
  }
  // Any other client error the parsers or static files raise (http-errors with a 4xx status;
  // their message is shown only when marked `expose`: a missing file's names a path).
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 404) {
      return new AppError('NEXUS_ERR_NOT_FOUND', undefined, undefined, { cause: error });
    }
    return new AppError(
      'NEXUS_ERR_BAD_REQUEST',
      expose === true && typeof message === 'string' ? message : undefined,
      'body',
      { cause: error },
    );
  }
  return undefined;
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new AppError('NEXUS_ERR_NOT_FOUND', `no route for ${req.method} ${req.path}`));
};

/**
 * What anything thrown answers, over HTTP and the sockets alike: a catalogue error as it is, a
 * parser's client error coded, PostgreSQL unreachable 503 `NEXUS_ERR_DB_UNAVAILABLE`, a lock or
 * statement timeout 503 `NEXUS_ERR_DB_BUSY` (with `retryAfter`), anything else 500.
 */
export function toAppError(thrown: unknown): AppError {
  if (isAppError(thrown)) return thrown;
  const parserError = fromBodyParser(thrown);
  if (parserError) return parserError;
  if (isDbUnavailable(thrown)) {
    return new AppError('NEXUS_ERR_DB_UNAVAILABLE', undefined, undefined, { cause: thrown });
  }
  if (isDbBusy(thrown)) {
    return Object.assign(
      new AppError('NEXUS_ERR_DB_BUSY', undefined, undefined, { cause: thrown }),
      { retryAfter: BUSY_RETRY_AFTER_S },
    );
  }
  return new AppError('NEXUS_ERR_INTERNAL', undefined, undefined, { cause: thrown });
}

/**
 * Writes a JSON body on a plain Node response, as Express's `res.json` does (same content type
 * and length), without its ETag: what the hot path and the error answers use.
 */
export function writeJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/** {@link reply} on a plain Node response (the hot path's). */
export function replyRaw(res: ServerResponse, status: number, data: unknown): void {
  const operationId = res.getHeader('X-Request-Id');
  writeJson(res, status, {
    status: { code: 0 },
    data,
    ...(typeof operationId === 'string' ? { operationId } : {}),
  });
}

/**
 * Answers what was thrown: catalogue errors with their status and code; anything else a 500 (or
 * a 503 when PostgreSQL is unreachable) whose message is not leaked. Logged on the request's
 * logger: 5xx at error, the rest at info.
 */
export function sendError(
  thrown: unknown,
  req: IncomingMessage,
  res: ServerResponse,
  log: Logger,
): void {
  const error = toAppError(thrown);
  const requestLog = (req as { log?: Logger }).log ?? log;
  if (error.status >= 500) requestLog.error({ err: thrown }, error.message);
  else requestLog.info({ code: error.code, field: error.field }, error.message);

  if (res.headersSent) return;
  const retryAfter = (error as { retryAfter?: unknown }).retryAfter;
  if (typeof retryAfter === 'number') res.setHeader('Retry-After', String(retryAfter));
  const body: ErrorEnvelope = { status: { code: error.code, message: error.publicMessage } };
  if (error.field) body.status.field = error.field;
  writeJson(res, error.status, body);
}

/** The one error handler of the Express app: {@link sendError}. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (thrown: unknown, req, res, _next) => sendError(thrown, req, res, log);
}
