/**
 * The error catalogue. Every error the API answers with, and every error a start-up can fail
 * with, is one entry here: a stable code, an HTTP status and a message. `docs/errors.md` lists
 * them; test/unit/errors.test.ts keeps the two in step. Codes MUST NOT be reused for another
 * meaning.
 */

export interface ErrorDefinition {
  readonly code: string;
  readonly status: number;
  readonly message: string;
}

const define = <const C extends string>(code: C, status: number, message: string) =>
  ({ code, status, message }) as const satisfies ErrorDefinition;

export const ERRORS = {
  // Requests
  NEXUS_ERR_VALIDATION: define('NEXUS_ERR_VALIDATION', 400, 'The request is invalid'),
  NEXUS_ERR_BAD_JSON: define('NEXUS_ERR_BAD_JSON', 400, 'The request body is not valid JSON'),
  NEXUS_ERR_BODY_TOO_LARGE: define(
    'NEXUS_ERR_BODY_TOO_LARGE',
    413,
    'The request body is too large',
  ),
  NEXUS_ERR_UNSUPPORTED_CHARSET: define(
    'NEXUS_ERR_UNSUPPORTED_CHARSET',
    415,
    'The request body charset is not supported',
  ),
  NEXUS_ERR_UNSUPPORTED_ENCODING: define(
    'NEXUS_ERR_UNSUPPORTED_ENCODING',
    415,
    'The request body Content-Encoding is not supported (gzip, deflate, br or none)',
  ),
  NEXUS_ERR_BAD_ENCODING: define(
    'NEXUS_ERR_BAD_ENCODING',
    400,
    'The request body does not decode with its Content-Encoding',
  ),
  NEXUS_ERR_TOO_MANY_PARAMETERS: define(
    'NEXUS_ERR_TOO_MANY_PARAMETERS',
    413,
    'The form body has more than 1,000 parameters',
  ),
  NEXUS_ERR_BODY_INCOMPLETE: define(
    'NEXUS_ERR_BODY_INCOMPLETE',
    400,
    'The request body was cut short or does not match its Content-Length',
  ),
  NEXUS_ERR_BAD_REQUEST: define('NEXUS_ERR_BAD_REQUEST', 400, 'The request cannot be read'),
  NEXUS_ERR_EGRESS_BLOCKED: define(
    'NEXUS_ERR_EGRESS_BLOCKED',
    400,
    'The URL is not a public address and NEXUS_EGRESS_ALLOW does not list it; the hub could never reach it',
  ),
  NEXUS_ERR_NOT_FOUND: define('NEXUS_ERR_NOT_FOUND', 404, 'Not found'),
  // Authentication and authorization
  NEXUS_ERR_UNAUTHORIZED: define('NEXUS_ERR_UNAUTHORIZED', 401, 'Missing or invalid credentials'),
  NEXUS_ERR_FORBIDDEN: define(
    'NEXUS_ERR_FORBIDDEN',
    403,
    'The credentials do not allow this operation',
  ),
  NEXUS_ERR_RATE_LIMITED: define(
    'NEXUS_ERR_RATE_LIMITED',
    429,
    'Too many requests for this API key; retry after the time in Retry-After',
  ),
  // Tenancy and provisioning
  NEXUS_ERR_TENANT_DISABLED: define('NEXUS_ERR_TENANT_DISABLED', 403, 'The tenant is disabled'),
  NEXUS_ERR_TENANT_EXISTS: define(
    'NEXUS_ERR_TENANT_EXISTS',
    409,
    'A tenant with this id already exists',
  ),
  NEXUS_ERR_CHANNEL_ID_TAKEN: define(
    'NEXUS_ERR_CHANNEL_ID_TAKEN',
    409,
    'Another channel of the tenant has this channelId',
  ),
  NEXUS_ERR_SENDER_TAKEN: define(
    'NEXUS_ERR_SENDER_TAKEN',
    409,
    'This number, short code or domain is another tenant’s sender id',
  ),
  NEXUS_ERR_ENDPOINT_TAKEN: define(
    'NEXUS_ERR_ENDPOINT_TAKEN',
    409,
    'An endpoint already leads to another routing queue of the tenant',
  ),
  NEXUS_ERR_OFFER_INVALID: define(
    'NEXUS_ERR_OFFER_INVALID',
    409,
    'The interaction is not offered to this agent (any more)',
  ),
  NEXUS_ERR_NOT_ASSIGNED: define(
    'NEXUS_ERR_NOT_ASSIGNED',
    409,
    'The interaction is not assigned to this agent, or the agent does not work on it',
  ),
  NEXUS_ERR_SECRET_UNREADABLE: define(
    'NEXUS_ERR_SECRET_UNREADABLE',
    500,
    'A stored secret cannot be decrypted with the configured keys',
  ),
  // Customer chat: the widget transport's own codes (pureengage-v3-rest) keep their names.
  INVALID_CONTACT_CENTER: define(
    'INVALID_CONTACT_CENTER',
    401,
    'The x-api-key does not open chats for a contact center',
  ),
  INVALID_ENDPOINT: define(
    'INVALID_ENDPOINT',
    400,
    'The endpoint is missing, not one of the tenant, or leads to no routing queue',
  ),
  INVALID_NICKNAME: define(
    'INVALID_NICKNAME',
    400,
    'A nickname (or a first or last name) is required',
  ),
  AUTHENTICATION_REQUIRED: define(
    'AUTHENTICATION_REQUIRED',
    401,
    'A valid client token (x-nexus-client-key) of this session is required',
  ),
  NEXUS_ERR_CHAT_ENDED: define('NEXUS_ERR_CHAT_ENDED', 409, 'The chat has ended'),
  NEXUS_ERR_AGENT_EXISTS: define(
    'NEXUS_ERR_AGENT_EXISTS',
    409,
    'An agent with this username exists in the tenant',
  ),
  NEXUS_ERR_AGENT_REQUIRED: define(
    'NEXUS_ERR_AGENT_REQUIRED',
    403,
    'This operation needs agent credentials (an agent token)',
  ),
  // Undelivered work
  NEXUS_ERR_UNDELIVERED_NOT_REPLAYABLE: define(
    'NEXUS_ERR_UNDELIVERED_NOT_REPLAYABLE',
    409,
    'The work is not in a failed state, so there is nothing to replay',
  ),
  // SMS
  NEXUS_ERR_SMS_UNKNOWN_CHANNEL: define(
    'NEXUS_ERR_SMS_UNKNOWN_CHANNEL',
    404,
    'No chat channel of the tenant has this number (channelId)',
  ),
  NEXUS_ERR_SMS_TOO_LONG: define(
    'NEXUS_ERR_SMS_TOO_LONG',
    400,
    'The text takes more SMS segments than allowed',
  ),
  // Webhooks
  NEXUS_ERR_WEBHOOK_TARGET_DISABLED: define(
    'NEXUS_ERR_WEBHOOK_TARGET_DISABLED',
    409,
    'The webhook target is disabled; enable it before replaying its deliveries',
  ),
  // Dependencies
  NEXUS_ERR_DB_UNAVAILABLE: define(
    'NEXUS_ERR_DB_UNAVAILABLE',
    503,
    'The database is unavailable; nothing was stored',
  ),
  NEXUS_ERR_DB_BUSY: define(
    'NEXUS_ERR_DB_BUSY',
    503,
    'The database is busy (a lock or statement timed out); nothing was stored, retry',
  ),
  NEXUS_ERR_INTERNAL: define('NEXUS_ERR_INTERNAL', 500, 'Internal error'),
  // Start-up
  NEXUS_ERR_CONFIG_INVALID: define(
    'NEXUS_ERR_CONFIG_INVALID',
    500,
    'Invalid environment variables',
  ),
  NEXUS_ERR_WORKER_NO_PROCESSOR: define(
    'NEXUS_ERR_WORKER_NO_PROCESSOR',
    500,
    'A selected queue has no processor',
  ),
  NEXUS_ERR_WORKER_UNKNOWN_QUEUE: define(
    'NEXUS_ERR_WORKER_UNKNOWN_QUEUE',
    500,
    'An unknown queue was selected',
  ),
  NEXUS_ERR_MIGRATION_FAILED: define(
    'NEXUS_ERR_MIGRATION_FAILED',
    500,
    'A database migration failed',
  ),
  NEXUS_ERR_MIGRATION_CHANGED: define(
    'NEXUS_ERR_MIGRATION_CHANGED',
    500,
    'An applied migration file was edited; add a new migration instead',
  ),
  NEXUS_ERR_QUEUE_PREFIX_TAKEN: define(
    'NEXUS_ERR_QUEUE_PREFIX_TAKEN',
    500,
    'Another deployment uses this queue prefix on this Redis; set NEXUS_QUEUE_PREFIX',
  ),
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** An error with a catalogue code. `field` names the offending input for validation errors. */
export class AppError extends Error {
  override readonly name = 'AppError';
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message ?? ERRORS[code].message, options);
    this.status = ERRORS[code].status;
  }
}

export const isAppError = (error: unknown): error is AppError => error instanceof AppError;

/** Turns anything thrown into an Error, keeping the original as `cause`. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  const message =
    typeof thrown === 'string' ? thrown : `Non-error thrown: ${safeStringify(thrown)}`;
  return new Error(message, { cause: thrown });
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
