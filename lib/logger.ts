import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths pino replaces with "[redacted]": credentials never reach the logs. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["x-nexus-client-key"]',
  'req.headers["x-hub-signature"]',
  'req.headers["x-hub-signature-256"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.password',
  '*.secret',
  '*.token',
  '*.apiKey',
  '*.clientToken',
  'config.adminToken',
  'config.secretKey',
];

/**
 * The process's root logger: JSON lines on stdout. Per-request and per-job loggers are children
 * of it (`{reqId, traceId}` and `{queue, jobId, attempt}`).
 */
export function createLogger(
  level: string,
  destination?: pino.DestinationStream,
  bindings: Record<string, unknown> = {},
): Logger {
  return pino(
    {
      level,
      base: { service: 'nexus', pid: process.pid, ...bindings },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: label => ({ level: label }) },
    },
    destination,
  );
}
