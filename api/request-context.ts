import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import { pinoHttp } from 'pino-http';
import type { Logger } from '../lib/logger.js';
import { errorsTotal, requestDuration, requestTotal } from '../lib/metrics.js';

const TRACE_ID = /^[0-9a-f]{16}([0-9a-f]{16})?$/i;
const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The request's trace id: the caller's `X-B3-TraceId` when well-formed, else a new 128-bit one. */
export function traceIdOf(req: IncomingMessage): string {
  const incoming = req.headers['x-b3-traceid'];
  return typeof incoming === 'string' && TRACE_ID.test(incoming)
    ? incoming.toLowerCase()
    : randomBytes(16).toString('hex');
}

/**
 * Request id (`X-Request-Id`, kept when the caller sent a sane one) and trace id (`X-B3-TraceId`)
 * on every request, echoed on the response and bound to the request's child logger (`req.log`).
 */
export function requestContext(log: Logger): RequestHandler {
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
      res.locals.traceId = traceId;
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
    res.locals.traceId = traceId;
    res.setHeader('X-B3-TraceId', traceId);
    httpLogger(req, res, next);
  };
}

/** `nexus_request_total`, `nexus_errors_total` (5xx) and the duration histogram, by route. */
export const requestMetrics: RequestHandler = (req, res, next) => {
  const stop = requestDuration.startTimer();
  res.on('finish', () => {
    const route = req.route
      ? `${req.baseUrl}${String((req.route as { path: unknown }).path)}`
      : req.baseUrl || 'unmatched';
    const labels = { method: req.method, route, code: String(res.statusCode) };
    requestTotal.inc(labels);
    if (res.statusCode >= 500) errorsTotal.inc(labels);
    stop({ method: req.method, route });
  });
  next();
};
