import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { pinoHttp } from 'pino-http';
import type { Logger } from '../lib/logger.js';
import { errorsTotal, requestDuration, requestTotal } from '../lib/metrics.js';

const TRACE_ID = /^[0-9a-f]{16}([0-9a-f]{16})?$/i;
const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * The request's trace id: the caller's `X-B3-TraceId` when well-formed, else a new 128-bit one
 * (a random UUID's hex digits: drawn from the pool `randomUUID` keeps, not a system call each).
 */
export function traceIdOf(req: IncomingMessage): string {
  const incoming = req.headers['x-b3-traceid'];
  return typeof incoming === 'string' && TRACE_ID.test(incoming)
    ? incoming.toLowerCase()
    : randomUUID().replaceAll('-', '');
}

/** Binds a request's context on plain Node objects (the Express app and the hot path share it). */
export type ContextBinder = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;

/**
 * Request id (`X-Request-Id`, kept when the caller sent a sane one) and trace id (`X-B3-TraceId`)
 * on every request, echoed on the response and bound to the request's child logger (`req.log`);
 * at `info` and below, the access log line when the response ends.
 */
export function requestContextBinder(log: Logger): ContextBinder {
  const traces = new WeakMap<IncomingMessage, string>();
  const httpLogger = pinoHttp({
    logger: log,
    genReqId: (req, res) => {
      const id = requestId(req);
      res.setHeader('X-Request-Id', id);
      return id;
    },
    // Called when the request starts and again when it ends: read-only here.
    customProps: req => ({ traceId: traces.get(req) }),
    customAttributeKeys: { reqId: 'reqId' },
    autoLogging: { ignore: req => (req.url ?? '').startsWith('/health/') },
    customLogLevel: (_req, res, error) => (error || res.statusCode >= 500 ? 'error' : 'info'),
    wrapSerializers: true,
  });
  const requestId = (req: IncomingMessage) => {
    const incoming = req.headers['x-request-id'];
    return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  };
  // Access logs are written at info. Below that level pino-http would build a logger and
  // serializers per request for nothing: bind a child logger only when something logs.
  if (!log.isLevelEnabled('info')) {
    return (req, res, next) => {
      const traceId = traceIdOf(req);
      const reqId = requestId(req);
      res.setHeader('X-B3-TraceId', traceId);
      res.setHeader('X-Request-Id', reqId);
      let child: Logger | undefined;
      Object.defineProperty(req, 'log', {
        configurable: true,
        get: () => (child ??= log.child({ reqId, traceId })),
      });
      next();
    };
  }
  return (req, res, next) => {
    const traceId = traceIdOf(req);
    traces.set(req, traceId);
    res.setHeader('X-B3-TraceId', traceId);
    httpLogger(req, res, next);
  };
}

/** A context binder as Express middleware. */
export const contextMiddleware =
  (bind: ContextBinder): RequestHandler =>
  (req, res, next) =>
    bind(req, res, () => next());

/** {@link requestContextBinder} as Express middleware. */
export const requestContext = (log: Logger): RequestHandler =>
  contextMiddleware(requestContextBinder(log));

/**
 * Counts the request in `nexus_request_total` (and `nexus_errors_total` when it answers 5xx) and
 * times it in the duration histogram when its response ends; `route` names the declared route.
 */
export function observeRequest(
  req: IncomingMessage,
  res: ServerResponse,
  route: () => string,
): void {
  const stop = requestDuration.startTimer();
  res.on('finish', () => {
    const method = req.method ?? 'GET';
    const labels = { method, route: route(), code: String(res.statusCode) };
    requestTotal.inc(labels);
    if (res.statusCode >= 500) errorsTotal.inc(labels);
    stop({ method, route: labels.route });
  });
}

/** `nexus_request_total`, `nexus_errors_total` (5xx) and the duration histogram, by route. */
export const requestMetrics: RequestHandler = (req, res, next) => {
  observeRequest(req, res, () =>
    req.route
      ? `${req.baseUrl}${String((req.route as { path: unknown }).path)}`
      : req.baseUrl || 'unmatched',
  );
  next();
};
