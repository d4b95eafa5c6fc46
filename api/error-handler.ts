import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import {
  BackendTerminatedError,
  BackendTerminatedUnexpectedlyError,
  ConnectionError,
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

/** Body-parser errors carry `type`; these map to catalogue codes. */
const BODY_PARSER_ERRORS: Record<string, ErrorCode> = {
  'entity.parse.failed': 'NEXUS_ERR_BAD_JSON',
  'entity.too.large': 'NEXUS_ERR_BODY_TOO_LARGE',
  'charset.unsupported': 'NEXUS_ERR_UNSUPPORTED_CHARSET',
  'encoding.unsupported': 'NEXUS_ERR_UNSUPPORTED_CHARSET',
};

function fromBodyParser(error: unknown): AppError | undefined {
  const type = (error as { type?: unknown } | null)?.type;
  const code = typeof type === 'string' ? BODY_PARSER_ERRORS[type] : undefined;
  return code ? new AppError(code) : undefined;
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new AppError('NEXUS_ERR_NOT_FOUND', `no route for ${req.method} ${req.path}`));
};

/**
 * The one error handler: catalogue errors answer with their status and code; anything else is
 * a 500 (or a 503 when PostgreSQL is unreachable) whose message is not leaked.
 */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (thrown: unknown, req, res, _next) => {
    let error: AppError;
    const parserError = fromBodyParser(thrown);
    if (isAppError(thrown)) error = thrown;
    else if (parserError) error = parserError;
    else if (isDbUnavailable(thrown)) {
      error = new AppError('NEXUS_ERR_DB_UNAVAILABLE', undefined, undefined, { cause: thrown });
    } else error = new AppError('NEXUS_ERR_INTERNAL', undefined, undefined, { cause: thrown });

    const requestLog = (req as { log?: Logger }).log ?? log;
    if (error.status >= 500) requestLog.error({ err: thrown }, error.message);
    else requestLog.info({ code: error.code, field: error.field }, error.message);

    if (res.headersSent) return;
    const retryAfter = (error as { retryAfter?: unknown }).retryAfter;
    if (typeof retryAfter === 'number') res.setHeader('Retry-After', String(retryAfter));
    const body: ErrorEnvelope = { status: { code: error.code, message: error.message } };
    if (error.field) body.status.field = error.field;
    res.status(error.status).json(body);
  };
}
