/**
 * The error catalogue. Every error the API answers with (over HTTP and on the sockets), and every
 * error a start-up can fail with, is one entry of `ERRORS`: a stable code, an HTTP status and a
 * message. Every failure that ends work for good (an undelivered record, an SMS's `failed`
 * status) carries a code of `FAILURE_CODES`: the work-only entries of `WORK_FAILURES`, or one of
 * `ERRORS` whose meaning is the same in a worker. `docs/errors.md` lists them all;
 * lib/errors.test.ts keeps the two in step, both ways. Codes MUST NOT be reused for another
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
  NEXUS_ERR_INVALID_CREDENTIALS: define(
    'NEXUS_ERR_INVALID_CREDENTIALS',
    401,
    'The tenant, username or password is wrong, or the agent may not sign in',
  ),
  NEXUS_ERR_TOKEN_EXPIRED: define(
    'NEXUS_ERR_TOKEN_EXPIRED',
    401,
    'The agent token has expired; renew it or sign in again',
  ),
  NEXUS_ERR_SIGNIN_THROTTLED: define(
    'NEXUS_ERR_SIGNIN_THROTTLED',
    429,
    'Too many failed sign-ins for this account or from this address; retry after the time in Retry-After',
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
  NEXUS_ERR_SMS_OPTED_OUT: define(
    'NEXUS_ERR_SMS_OPTED_OUT',
    409,
    'The customer opted out of texts from this number',
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
  NEXUS_ERR_BOT_NOT_ENGAGED: define(
    'NEXUS_ERR_BOT_NOT_ENGAGED',
    409,
    'The conversation is not with the bot (handed off to agents, never given to it, or done); nothing was stored',
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
  // Email
  NEXUS_ERR_EMAIL_UNKNOWN_DOMAIN: define(
    'NEXUS_ERR_EMAIL_UNKNOWN_DOMAIN',
    400,
    'No email channel of the tenant has this domain (channelId)',
  ),
  NEXUS_ERR_EMAIL_TOO_LARGE: define(
    'NEXUS_ERR_EMAIL_TOO_LARGE',
    400,
    'The email is larger than NEXUS_EMAIL_MAX_BYTES allows',
  ),
  NEXUS_ERR_EMAIL_NO_THREAD: define(
    'NEXUS_ERR_EMAIL_NO_THREAD',
    409,
    'The email conversation has no mail to answer, or its channel is gone',
  ),
  NEXUS_ERR_EMAIL_SUPPRESSED: define(
    'NEXUS_ERR_EMAIL_SUPPRESSED',
    409,
    "The address is on the tenant's email suppression list",
  ),
  NEXUS_ERR_EMAIL_FEEDBACK_UNAUTHORIZED: define(
    'NEXUS_ERR_EMAIL_FEEDBACK_UNAUTHORIZED',
    401,
    "The provider's feedback call does not carry the credentials or signature configured for it",
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
  NEXUS_ERR_HUB_UNAVAILABLE: define(
    'NEXUS_ERR_HUB_UNAVAILABLE',
    503,
    'The AI connector cannot reach the hub (or the hub refused its API key); nothing was stored, deliver again later',
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

const failure = <const C extends string>(code: C, message: string) => ({ code, message }) as const;

/**
 * Why work failed for good, for failures no HTTP error names: the `code` of undelivered records
 * (the human `reason` keeps the detail) and of an SMS's `failed` status.
 */
export const WORK_FAILURES = {
  // Any queue
  NEXUS_ERR_WORK_FAILED: failure(
    'NEXUS_ERR_WORK_FAILED',
    'The work failed for good for a reason without a code of its own',
  ),
  NEXUS_ERR_WORK_INVALID_PAYLOAD: failure(
    'NEXUS_ERR_WORK_INVALID_PAYLOAD',
    "The job's payload does not match its queue's schema",
  ),
  NEXUS_ERR_WORK_STALLED: failure(
    'NEXUS_ERR_WORK_STALLED',
    'The job stalled out too often (its worker lost its lock): it may crash or block its worker',
  ),
  NEXUS_ERR_WORK_NOT_BUILT: failure(
    'NEXUS_ERR_WORK_NOT_BUILT',
    'The queue has no processor in this process (or version); replay the work where one runs',
  ),
  // Outbound SMS
  NEXUS_ERR_SMS_NOT_SENDABLE: failure(
    'NEXUS_ERR_SMS_NOT_SENDABLE',
    'The message or campaign record is gone, or has no customer number or channel',
  ),
  NEXUS_ERR_SMS_PROVIDER_UNSUPPORTED: failure(
    'NEXUS_ERR_SMS_PROVIDER_UNSUPPORTED',
    'The SMS provider is not supported in this version',
  ),
  NEXUS_ERR_SMS_PROVIDER_NOT_CONFIGURED: failure(
    'NEXUS_ERR_SMS_PROVIDER_NOT_CONFIGURED',
    "The tenant lacks the provider's service, or its entry for the channel",
  ),
  NEXUS_ERR_SMS_PROVIDER_REFUSED: failure(
    'NEXUS_ERR_SMS_PROVIDER_REFUSED',
    'The SMS provider refused the message',
  ),
  NEXUS_ERR_SMS_PROVIDER_UNAVAILABLE: failure(
    'NEXUS_ERR_SMS_PROVIDER_UNAVAILABLE',
    'The SMS provider did not take the message in any attempt',
  ),
  NEXUS_ERR_SMS_PROVIDER_BAD_ANSWER: failure(
    'NEXUS_ERR_SMS_PROVIDER_BAD_ANSWER',
    'The SMS provider answered success without what the hub needs from it',
  ),
  NEXUS_ERR_SMS_REPORTED_FAILED: failure(
    'NEXUS_ERR_SMS_REPORTED_FAILED',
    "The provider's delivery report says the message failed",
  ),
  // Outbound email
  NEXUS_ERR_EMAIL_INVALID: failure(
    'NEXUS_ERR_EMAIL_INVALID',
    'The email cannot be built: a header value holds a line break, or an address is invalid',
  ),
  NEXUS_ERR_EMAIL_NOT_SENDABLE: failure(
    'NEXUS_ERR_EMAIL_NOT_SENDABLE',
    'The email is gone, or its domain has no email channel any more',
  ),
  NEXUS_ERR_EMAIL_PROVIDER_UNSUPPORTED: failure(
    'NEXUS_ERR_EMAIL_PROVIDER_UNSUPPORTED',
    'The email provider is not supported in this version',
  ),
  NEXUS_ERR_EMAIL_PROVIDER_NOT_CONFIGURED: failure(
    'NEXUS_ERR_EMAIL_PROVIDER_NOT_CONFIGURED',
    "The tenant lacks the email provider's service, or its entry for the domain",
  ),
  NEXUS_ERR_EMAIL_PROVIDER_REFUSED: failure(
    'NEXUS_ERR_EMAIL_PROVIDER_REFUSED',
    'The email provider or relay refused the email',
  ),
  NEXUS_ERR_EMAIL_PROVIDER_UNAVAILABLE: failure(
    'NEXUS_ERR_EMAIL_PROVIDER_UNAVAILABLE',
    'The email provider or relay did not take the email in any attempt',
  ),
  NEXUS_ERR_EMAIL_PROVIDER_BAD_ANSWER: failure(
    'NEXUS_ERR_EMAIL_PROVIDER_BAD_ANSWER',
    'The email provider answered success without what the hub needs from it',
  ),
  NEXUS_ERR_EMAIL_DKIM_FAILED: failure(
    'NEXUS_ERR_EMAIL_DKIM_FAILED',
    "The domain's DKIM key did not sign the email; it was not sent unsigned",
  ),
  // Delivery reports
  NEXUS_ERR_RECEIPT_UNKNOWN_STATUS: failure(
    'NEXUS_ERR_RECEIPT_UNKNOWN_STATUS',
    'The delivery report carries a status the hub does not know',
  ),
  NEXUS_ERR_RECEIPT_NO_MESSAGE: failure(
    'NEXUS_ERR_RECEIPT_NO_MESSAGE',
    "No outbound SMS has the report's provider message id",
  ),
  // AI connector (athena)
  NEXUS_ERR_NLU_PROVIDER_UNAVAILABLE: failure(
    'NEXUS_ERR_NLU_PROVIDER_UNAVAILABLE',
    'The NLU provider did not answer in time, or answered 408, 429 or 5xx, in every attempt',
  ),
  NEXUS_ERR_NLU_PROVIDER_REFUSED: failure(
    'NEXUS_ERR_NLU_PROVIDER_REFUSED',
    'The NLU provider refused the request (bad credentials, an unknown agent or bot, bad input)',
  ),
  NEXUS_ERR_NLU_PROVIDER_BAD_ANSWER: failure(
    'NEXUS_ERR_NLU_PROVIDER_BAD_ANSWER',
    'The NLU provider answered success with a body the connector cannot read',
  ),
  NEXUS_ERR_NLU_NOT_CONFIGURED: failure(
    'NEXUS_ERR_NLU_NOT_CONFIGURED',
    'The tenant has no NLU provider for the conversation, or its settings are incomplete',
  ),
  // Webhooks
  NEXUS_ERR_WEBHOOK_TARGET_MISSING: failure(
    'NEXUS_ERR_WEBHOOK_TARGET_MISSING',
    'The webhook target no longer exists; the delivery was not sent',
  ),
  NEXUS_ERR_WEBHOOK_GONE: failure(
    'NEXUS_ERR_WEBHOOK_GONE',
    'The receiver answered 410 Gone; the target is disabled',
  ),
  NEXUS_ERR_WEBHOOK_REFUSED: failure(
    'NEXUS_ERR_WEBHOOK_REFUSED',
    'The receiver answered a status that is not retried',
  ),
  NEXUS_ERR_WEBHOOK_EXHAUSTED: failure(
    'NEXUS_ERR_WEBHOOK_EXHAUSTED',
    "No 2xx in any attempt of the target's retry schedule",
  ),
} as const;

/** Codes of `ERRORS` that also end work, with the same meaning there. */
const SHARED_FAILURE_CODES = [
  'NEXUS_ERR_EGRESS_BLOCKED',
  'NEXUS_ERR_SECRET_UNREADABLE',
  'NEXUS_ERR_WEBHOOK_TARGET_DISABLED',
  'NEXUS_ERR_HUB_UNAVAILABLE',
  'NEXUS_ERR_SMS_OPTED_OUT',
] as const satisfies readonly ErrorCode[];

export type FailureCode = keyof typeof WORK_FAILURES | (typeof SHARED_FAILURE_CODES)[number];

/** Every code an undelivered record or a failed SMS can carry. */
export const FAILURE_CODES: readonly FailureCode[] = [
  ...(Object.keys(WORK_FAILURES) as (keyof typeof WORK_FAILURES)[]),
  ...SHARED_FAILURE_CODES,
];

/** The code of a failure that has none of its own (and of records from before codes). */
export const GENERIC_FAILURE_CODE = 'NEXUS_ERR_WORK_FAILED' satisfies FailureCode;

const failureCodes = new Set<string>(FAILURE_CODES);
export const isFailureCode = (code: unknown): code is FailureCode =>
  typeof code === 'string' && failureCodes.has(code);

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

  /**
   * What an answer (HTTP or socket) shows: the message, except for a server error (5xx), whose
   * detail (key ids, hosts, SQL) is for the log only; the answer gives the catalogue's text.
   */
  get publicMessage(): string {
    return this.status >= 500 ? ERRORS[this.code].message : this.message;
  }
}

export const isAppError = (error: unknown): error is AppError => error instanceof AppError;

/**
 * A coded failure of a job's work. Permanent unless `retry` is set: its name is then BullMQ's
 * `UnrecoverableError` (BullMQ and the runner recognise it by name), so no attempt follows.
 * `attempts` is for processors that count their own attempts (the undelivered record's count).
 */
export class WorkFailure extends Error {
  readonly attempts: number | undefined;

  constructor(
    readonly code: FailureCode,
    message: string,
    options: { retry?: boolean; attempts?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = options.retry ? 'WorkFailure' : 'UnrecoverableError';
    this.attempts = options.attempts;
  }
}

/**
 * The code a failure is recorded with: its own (a {@link WorkFailure}'s, or a catalogue error's
 * that {@link FAILURE_CODES} lists), else {@link GENERIC_FAILURE_CODE}. Other `code`s (a
 * socket's `ECONNRESET`, a SQLSTATE) are not catalogue codes and stay in the reason's detail.
 */
export function failureCodeOf(error: unknown): FailureCode {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return isFailureCode(code) ? code : GENERIC_FAILURE_CODE;
}

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
