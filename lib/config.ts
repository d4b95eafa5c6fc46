import ipaddr from 'ipaddr.js';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * The only module that reads `process.env`. Every variable is documented in the README's
 * configuration table; keep the two in step (lib/config.test.ts checks it). One file on purpose,
 * though long: the schema of every variable, the typed view built from it and the cross-field
 * checks must be read together, as the README's table is.
 */

/**
 * The default webhook retry schedule (domain/delivery-policy.ts applies it): immediately, 5 s,
 * 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (seconds).
 */
export const DEFAULT_RETRY_SCHEDULE: readonly number[] = [
  0, 5, 300, 1_800, 7_200, 18_000, 36_000, 36_000,
];

const booleanString = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], {
    errorMap: () => ({ message: 'must be one of true, false, 1, 0, yes, no' }),
  })
  .transform(value => value === 'true' || value === '1' || value === 'yes');

const port = z.coerce
  .number({ invalid_type_error: 'must be a port number' })
  .int('must be an integer')
  .min(0, 'must be between 0 and 65535')
  .max(65535, 'must be between 0 and 65535');

const positiveInt = z.coerce
  .number({ invalid_type_error: 'must be a number' })
  .int('must be an integer')
  .positive('must be greater than 0');

const redisNode = z
  .string()
  .trim()
  .refine(value => {
    try {
      const url = new URL(value);
      return url.protocol === 'redis:' || url.protocol === 'rediss:';
    } catch {
      return false;
    }
  }, 'each node must be a redis:// or rediss:// URL');

/** A PEM file's path, read at start: a file that cannot be read, or holds no PEM block, is an error. */
const pemFile = z
  .string()
  .trim()
  .transform((path, ctx) => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? String(error);
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `cannot be read (${path}: ${reason})` });
      return z.NEVER;
    }
    if (!text.includes('-----BEGIN ')) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `is not a PEM file (${path})` });
      return z.NEVER;
    }
    return text;
  });

/** A hostname, an IPv4/IPv6 address, or a CIDR range (checked again by the egress guard). */
const HOST_OR_CIDR = /^(\[?[0-9a-fA-F:.]+\]?(\/\d{1,3})?|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$/;

const KNOWN_QUEUES_PATTERN = /^[a-z][a-z0-9-]*$/;

/** A trusted proxy as Express's `trust proxy` takes it: a name, an address or a CIDR range. */
function isProxyEntry(entry: string): boolean {
  const value = entry.trim();
  if (['loopback', 'linklocal', 'uniquelocal'].includes(value)) return true;
  try {
    if (value.includes('/')) ipaddr.parseCIDR(value);
    else ipaddr.parse(value);
    return true;
  } catch {
    return false;
  }
}

/** An origin as a browser sends it: scheme://host[:port], nothing after. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value;
  } catch {
    return false;
  }
}

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  PORT: port.default(4000),
  HOST: z.string().min(1).default('0.0.0.0'),
  NEXUS_PUBLIC_URL: z
    .string()
    .url('must be a URL such as https://nexus.example.com')
    .transform(value => value.replace(/\/+$/, ''))
    .optional(),
  METRICS_PORT: port.default(4004),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATABASE_URL: z
    .string()
    .default('postgres://postgres@127.0.0.1:5432/nexus')
    .refine(value => /^postgres(ql)?:\/\//.test(value), 'must be a postgres:// URL'),
  DB_POOL_SIZE: positiveInt.default(10),
  DB_SSL: booleanString.default('false'),
  DB_LOCK_TIMEOUT_MS: positiveInt
    .max(600_000, 'must be at most 600000 (10 minutes)')
    .default(5_000),
  DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: positiveInt.default(60_000),
  REDIS_URL: z
    .string()
    .default('redis://127.0.0.1:6379')
    .transform(value =>
      value
        .split(',')
        .map(node => node.trim())
        .filter(Boolean),
    )
    .pipe(z.array(redisNode).min(1, 'must name at least one node')),
  REDIS_CLUSTER: booleanString.default('false'),
  REDIS_TLS: booleanString.default('false'),
  REDIS_PASSWORD: z.string().optional(),
  REDIS_TLS_CA_FILE: pemFile.optional(),
  REDIS_TLS_CERT_FILE: pemFile.optional(),
  REDIS_TLS_KEY_FILE: pemFile.optional(),
  REDIS_TLS_SERVERNAME: z.string().trim().min(1).optional(),
  NEXUS_QUEUE_PREFIX: z
    .string()
    .min(1, 'must not be empty')
    .refine(value => !value.includes(':'), 'must not contain ":"')
    .default('{nexus}'),
  NEXUS_SECRET_KEY: z
    .string()
    .refine(
      value => decodeKey(value) !== undefined,
      'must be 32 bytes, as 64 hex characters or base64',
    )
    .optional(),
  NEXUS_SECRET_KEYS_PREVIOUS: z
    .string()
    .optional()
    .transform(value =>
      value
        ? value
            .split(',')
            .map(key => key.trim())
            .filter(Boolean)
        : [],
    )
    .refine(
      keys => keys.every(key => decodeKey(key) !== undefined),
      'each key must be 32 bytes, as 64 hex characters or base64',
    ),
  NEXUS_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  NEXUS_JWT_ISSUER: z.string().min(1).optional(),
  NEXUS_JWT_JWKS_URL: z.string().url('must be an http(s) URL').optional(),
  NEXUS_JWT_AUDIENCE: z.string().min(1).optional(),
  NEXUS_JWT_TENANT_CLAIM: z.string().min(1).default('ccid'),
  NEXUS_JWT_ROLE_CLAIM: z.string().min(1).default('role'),
  NEXUS_AUTH_CACHE_TTL_MS: positiveInt.default(60_000),
  NEXUS_AGENT_DISCONNECT_GRACE_MS: positiveInt.default(60_000),
  NEXUS_AGENT_TOKEN_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60, 'must be at least 60 seconds')
    .max(7 * 24 * 3600, 'must be at most 7 days (604800 seconds)')
    .default(12 * 3600),
  NEXUS_TRUST_PROXY: z
    .string()
    .optional()
    .transform(value => value?.trim() ?? '')
    .refine(
      value => value === '' || /^\d+$/.test(value) || value.split(',').every(isProxyEntry),
      'must be a number of proxy hops, or addresses, CIDR ranges and loopback, linklocal, uniquelocal, separated by commas',
    ),
  NEXUS_UX_ALLOWED_ORIGINS: z
    .string()
    .optional()
    .transform(value =>
      value
        ? value
            .split(/[\s,]+/)
            .map(origin => origin.trim())
            .filter(Boolean)
        : [],
    )
    .refine(
      origins => origins.every(isOrigin),
      'each entry must be an origin: a scheme, a host and an optional port (https://desktop.example.com)',
    ),
  NEXUS_SOCKET_HEAD_CHECK_MS: z.coerce.number().int().min(0).default(10_000),
  NEXUS_CHAT_SESSION_LIMIT: z
    .string()
    .regex(/^\d+\/\d+$/, 'must look like 30/10 (requests per seconds)')
    .default('30/10')
    .transform(value => {
      const [points, seconds] = value.split('/').map(Number) as [number, number];
      return { points, seconds };
    })
    .refine(limit => limit.points > 0 && limit.seconds > 0, 'both numbers must be positive'),
  NEXUS_BODY_LIMIT: z
    .string()
    .regex(/^\d+(b|kb|mb)$/i, 'must look like 100kb or 1mb')
    .default('1mb'),
  NEXUS_MIGRATE_ON_START: booleanString.default('true'),
  NEXUS_WORKER_QUEUES: z
    .string()
    .optional()
    .transform(value =>
      value
        ? value
            .split(',')
            .map(name => name.trim())
            .filter(Boolean)
        : undefined,
    )
    .pipe(
      z
        .array(
          z.string().regex(KNOWN_QUEUES_PATTERN, 'must be a comma-separated list of queue names'),
        )
        .optional(),
    ),
  NEXUS_WORKER_CONCURRENCY: positiveInt.default(10),
  NEXUS_SHUTDOWN_GRACE_MS: positiveInt.default(25_000),
  NEXUS_WORKER_LOCK_MS: positiveInt.default(30_000),
  NEXUS_SWEEP_INTERVAL_MS: positiveInt.default(30_000),
  NEXUS_SWEEP_AFTER_MS: positiveInt.default(120_000),
  NEXUS_SWEEP_BATCH: positiveInt.default(500),
  NEXUS_WORKER_DEFER_MAX_MS: positiveInt.default(30_000),
  NEXUS_WORKER_FETCH_STALL_MS: positiveInt.default(20_000),
  NEXUS_EGRESS_ALLOW: z
    .string()
    .optional()
    .transform(value =>
      value
        ? value
            .split(',')
            .map(entry => entry.trim())
            .filter(Boolean)
        : [],
    )
    .refine(
      entries => entries.every(entry => HOST_OR_CIDR.test(entry)),
      'must be a comma-separated list of hostnames, IP addresses or CIDR ranges',
    ),
  NEXUS_WEBHOOK_TIMEOUT_MS: positiveInt.default(10_000),
  NEXUS_WEBHOOK_RETRY_SCHEDULE: z
    .string()
    .regex(/^\d+(,\d+){0,19}$/, 'must be 1 to 20 comma-separated delays in seconds')
    .refine(
      value => value.split(',').every(delay => Number(delay) <= 86_400),
      'each delay must be at most 86400 seconds',
    )
    .optional()
    .transform(value => (value ? value.split(',').map(Number) : undefined)),
  NEXUS_WEBHOOK_DISABLE_AFTER_MS: positiveInt.default(5 * 24 * 3600 * 1000),
  NEXUS_WEBHOOK_SECRET_GRACE_MS: positiveInt.default(24 * 3600 * 1000),
  NEXUS_WEBHOOK_CONCURRENCY: positiveInt.default(50),
  NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS: positiveInt.default(100),
  NEXUS_WEBHOOK_BATCH_SIZE: positiveInt.max(1_000, 'must be at most 1000').default(50),
  NEXUS_WEBHOOK_TARGET_CONCURRENCY: positiveInt.optional(),
  NEXUS_WEBHOOK_TARGET_BATCHES: positiveInt.optional(),
  NEXUS_SMS_MAX_SEGMENTS: positiveInt.max(255, 'must be at most 255').default(10),
  NEXUS_SMS_RATE_PER_SECOND: positiveInt.default(10),
  NEXUS_EMAIL_RATE_PER_SECOND: positiveInt.default(50),
  NEXUS_EMAIL_MAX_BYTES: positiveInt
    .max(25 * 1024 * 1024, 'must be at most 25 MiB')
    .default(1024 * 1024),
  NEXUS_EMAIL_BOUNCE_DOMAIN: z
    .string()
    .regex(
      /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/,
      'must be a domain name',
    )
    .optional(),
  NEXUS_EMAIL_SMTP_PORT: z.coerce.number().int().min(1).max(65_535).optional(),
  NEXUS_EMAIL_ATTACHMENT_MAX_BYTES: positiveInt
    .max(25 * 1024 * 1024, 'must be at most 25 MiB')
    .default(10 * 1024 * 1024),
  NEXUS_BUILD_CHANGESET: z.string().default('development'),
  NEXUS_BUILD_TIMESTAMP: z.string().optional(),
});

export type Env = z.input<typeof envSchema>;

/** Frozen, typed configuration. Build it once per process with {@link loadConfig}. */
export interface Config {
  readonly env: 'development' | 'test' | 'production';
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly bodyLimit: string;
    /** The public base URL of the API (for `selfUri`); taken from the request when unset. */
    readonly publicUrl: string | undefined;
  };
  readonly metrics: { readonly port: number };
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly db: {
    readonly url: string;
    readonly poolSize: number;
    readonly ssl: boolean;
    readonly migrateOnStart: boolean;
    /** `lock_timeout` of every session: a statement waits this long for a lock, then fails (55P03). */
    readonly lockTimeoutMs: number;
    /** `idle_in_transaction_session_timeout`: a session idle this long inside a transaction ends. */
    readonly idleInTransactionTimeoutMs: number;
  };
  readonly redis: {
    readonly nodes: readonly string[];
    readonly cluster: boolean;
    /** TLS to every node: `REDIS_TLS`, or a `rediss://` URL. */
    readonly tls: boolean;
    /**
     * What TLS connections verify and present (PEM text, read from the files at start): the CA
     * that signed the servers' certificates (the system's CAs when unset), the client certificate
     * and key (servers with `tls-auth-clients`), the name the certificates must carry.
     */
    readonly tlsOptions: {
      readonly ca: string | undefined;
      readonly cert: string | undefined;
      readonly key: string | undefined;
      readonly servername: string | undefined;
    };
    readonly password: string | undefined;
  };
  readonly queues: { readonly prefix: string };
  readonly secretKey: Buffer;
  /** Keys that only decrypt: secrets sealed before a rotation, until re-encrypted. */
  readonly previousSecretKeys: readonly Buffer[];
  readonly adminToken: string;
  /** Operator JWTs: verified against the issuer's JWKS when both are set. */
  readonly jwt:
    | {
        readonly issuer: string;
        readonly jwksUrl: string;
        readonly audience: string | undefined;
        readonly tenantClaim: string;
        readonly roleClaim: string;
      }
    | undefined;
  /** How long an API key lookup is cached (revocations are pushed to every replica at once). */
  readonly authCacheTtlMs: number;
  /** How long an agent may be without a socket before it becomes not ready. */
  readonly agentDisconnectGraceMs: number;
  /** Lifetime of the agent tokens the hub signs (sign-in, renewal, the operator's token route). */
  readonly agentTokenTtlSeconds: number;
  /**
   * Origins of the agent desktops that embed the /ux/ pages: allowed as frame ancestors (besides
   * the hub itself) and as senders of an agent token by postMessage.
   */
  readonly uxAllowedOrigins: readonly string[];
  /**
   * The proxies whose X-Forwarded-For the API believes (Express's `trust proxy`): false, a number
   * of hops, or addresses, ranges and names. The client address throttles sign-in attempts.
   */
  readonly trustProxy: false | number | string;
  /** How often an API replica compares its socket feeds with their heads in PostgreSQL (0: never). */
  readonly socketHeadCheckMs: number;
  /** What one chat session may send (messages, typing, reads) per replica. */
  readonly chatSessionLimit: { readonly points: number; readonly seconds: number };
  readonly workers: {
    readonly queues: readonly string[] | undefined;
    readonly concurrency: number;
    readonly shutdownGraceMs: number;
    /** BullMQ's job lock; a job of a dead worker runs again after at most twice this. */
    readonly lockMs: number;
    readonly sweepIntervalMs: number;
    readonly sweepAfterMs: number;
    readonly sweepBatch: number;
    /** The longest a job waits between retries while PostgreSQL or Redis is unreachable. */
    readonly deferMaxMs: number;
    /** Jobs waiting this long while a worker with a free slot takes none: the worker is replaced. */
    readonly fetchStallMs: number;
  };
  /**
   * Outbound HTTP (webhook targets, providers): hosts and CIDR ranges allowed although not
   * public (see lib/egress.ts).
   */
  readonly egressAllow: readonly string[];
  readonly webhooks: {
    readonly timeoutMs: number;
    /** Delays in seconds between attempts (the first attempt goes at once): retries = length. */
    readonly retrySchedule: readonly number[];
    /** A target whose every attempt failed for this long is disabled. */
    readonly disableAfterMs: number;
    /** How long a rotated-out target secret still signs (both signatures are sent). */
    readonly secretGraceMs: number;
    readonly concurrency: number;
    /** How often each webhooks worker looks for new deliveries to enqueue. */
    readonly dispatchIntervalMs: number;
    /** New deliveries to one target whose first attempts share one job. */
    readonly batchSize: number;
    /** Attempts to one target a worker process makes at once (at most `concurrency`). */
    readonly targetConcurrency: number;
    /** First-attempt batches of one target queued or running at once, across workers. */
    readonly targetBatches: number;
  };
  readonly email: {
    /** Default send rate per provider and sending domain, across workers (mails/s). */
    readonly ratePerSecond: number;
    /** The most bytes a mail's subject and bodies may take at intake. */
    readonly maxBytes: number;
    /**
     * The domain of the return path (`bounces+<mail id>@domain`, VERP): bounce reports come back
     * to the hub's SMTP listener there. Unset: the From address is the return path.
     */
    readonly bounceDomain: string | undefined;
    /** The hub's SMTP listener (bounce reports, inbound mail); unset: none. */
    readonly smtpPort: number | undefined;
    /** The most bytes one inbound attachment may take to be kept. */
    readonly attachmentMaxBytes: number;
  };
  readonly sms: {
    /** The most segments an outbound SMS may take. */
    readonly maxSegments: number;
    /** Default send rate per provider and sender number, across workers (messages/s). */
    readonly ratePerSecond: number;
  };
  /** The build's identity for `/health/detail`, stamped by the image build. */
  readonly build: { readonly changeset: string; readonly timestamp: string | undefined };
  /** Insecure defaults in use; logged at start. Empty in production, where they are errors. */
  readonly warnings: readonly string[];
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'NEXUS_ERR_CONFIG_INVALID';
  constructor(readonly problems: readonly string[]) {
    super(`Invalid environment variables: ${problems.join('; ')}`);
  }
}

const DEV_ADMIN_TOKEN = 'nexus-dev-admin-token';

function decodeKey(value: string): Buffer | undefined {
  if (/^[0-9a-f]{64}$/i.test(value)) return Buffer.from(value, 'hex');
  const decoded = Buffer.from(value, 'base64');
  return decoded.length === 32 ? decoded : undefined;
}

/**
 * Parses the environment once. Throws a {@link ConfigError} naming every bad variable, so an
 * operator fixes them all in one go. Variables that are set but empty count as unset.
 */
export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  const env = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== ''));
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(issue => `${String(issue.path[0])} ${issue.message}`);
    throw new ConfigError(problems);
  }
  const e = parsed.data;

  const problems: string[] = [];
  const warnings: string[] = [];
  let secretKey = e.NEXUS_SECRET_KEY ? decodeKey(e.NEXUS_SECRET_KEY) : undefined;
  if (!secretKey) {
    if (e.NODE_ENV === 'production') {
      problems.push('NEXUS_SECRET_KEY is required when NODE_ENV=production');
    } else {
      warnings.push(
        'NEXUS_SECRET_KEY is not set: using a fixed development key; secrets at rest are not protected',
      );
    }
    secretKey = createHash('sha256').update('nexus-development-secret-key').digest();
  }
  let adminToken = e.NEXUS_ADMIN_TOKEN;
  if (!adminToken) {
    if (e.NODE_ENV === 'production') {
      problems.push('NEXUS_ADMIN_TOKEN is required when NODE_ENV=production');
    } else warnings.push(`NEXUS_ADMIN_TOKEN is not set: the admin token is "${DEV_ADMIN_TOKEN}"`);
    adminToken = DEV_ADMIN_TOKEN;
  }
  if (Boolean(e.NEXUS_JWT_ISSUER) !== Boolean(e.NEXUS_JWT_JWKS_URL)) {
    problems.push('NEXUS_JWT_ISSUER and NEXUS_JWT_JWKS_URL must be set together');
  }
  if (e.REDIS_CLUSTER && !e.NEXUS_QUEUE_PREFIX.startsWith('{')) {
    problems.push('NEXUS_QUEUE_PREFIX must be hash-tagged (e.g. {nexus}) when REDIS_CLUSTER=true');
  }
  const redisTls =
    e.REDIS_TLS || e.REDIS_URL.some(node => node.toLowerCase().startsWith('rediss:'));
  for (const name of [
    'REDIS_TLS_CA_FILE',
    'REDIS_TLS_CERT_FILE',
    'REDIS_TLS_KEY_FILE',
    'REDIS_TLS_SERVERNAME',
  ] as const) {
    if (e[name] !== undefined && !redisTls) {
      problems.push(
        `${name} is set but Redis TLS is off: set REDIS_TLS=true or use rediss:// URLs`,
      );
    }
  }
  if ((e.REDIS_TLS_CERT_FILE === undefined) !== (e.REDIS_TLS_KEY_FILE === undefined)) {
    problems.push('REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE must be set together');
  }
  const targetConcurrency =
    e.NEXUS_WEBHOOK_TARGET_CONCURRENCY ?? Math.ceil(e.NEXUS_WEBHOOK_CONCURRENCY / 2);
  if (targetConcurrency > e.NEXUS_WEBHOOK_CONCURRENCY) {
    problems.push(
      `NEXUS_WEBHOOK_TARGET_CONCURRENCY must be at most NEXUS_WEBHOOK_CONCURRENCY (${e.NEXUS_WEBHOOK_CONCURRENCY})`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const config: Config = {
    env: e.NODE_ENV,
    http: {
      host: e.HOST,
      port: e.PORT,
      bodyLimit: e.NEXUS_BODY_LIMIT,
      publicUrl: e.NEXUS_PUBLIC_URL,
    },
    metrics: { port: e.METRICS_PORT },
    logLevel: e.LOG_LEVEL,
    db: {
      url: e.DATABASE_URL,
      poolSize: e.DB_POOL_SIZE,
      ssl: e.DB_SSL,
      migrateOnStart: e.NEXUS_MIGRATE_ON_START,
      lockTimeoutMs: e.DB_LOCK_TIMEOUT_MS,
      idleInTransactionTimeoutMs: e.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    },
    redis: {
      nodes: e.REDIS_URL,
      cluster: e.REDIS_CLUSTER,
      tls: redisTls,
      tlsOptions: {
        ca: e.REDIS_TLS_CA_FILE,
        cert: e.REDIS_TLS_CERT_FILE,
        key: e.REDIS_TLS_KEY_FILE,
        servername: e.REDIS_TLS_SERVERNAME,
      },
      password: e.REDIS_PASSWORD,
    },
    queues: { prefix: e.NEXUS_QUEUE_PREFIX },
    secretKey,
    previousSecretKeys: e.NEXUS_SECRET_KEYS_PREVIOUS.map(key => decodeKey(key) as Buffer),
    adminToken,
    jwt:
      e.NEXUS_JWT_ISSUER && e.NEXUS_JWT_JWKS_URL
        ? {
            issuer: e.NEXUS_JWT_ISSUER,
            jwksUrl: e.NEXUS_JWT_JWKS_URL,
            audience: e.NEXUS_JWT_AUDIENCE,
            tenantClaim: e.NEXUS_JWT_TENANT_CLAIM,
            roleClaim: e.NEXUS_JWT_ROLE_CLAIM,
          }
        : undefined,
    authCacheTtlMs: e.NEXUS_AUTH_CACHE_TTL_MS,
    chatSessionLimit: e.NEXUS_CHAT_SESSION_LIMIT,
    agentDisconnectGraceMs: e.NEXUS_AGENT_DISCONNECT_GRACE_MS,
    agentTokenTtlSeconds: e.NEXUS_AGENT_TOKEN_TTL_SECONDS,
    uxAllowedOrigins: e.NEXUS_UX_ALLOWED_ORIGINS,
    trustProxy:
      e.NEXUS_TRUST_PROXY === ''
        ? false
        : /^\d+$/.test(e.NEXUS_TRUST_PROXY)
          ? Number(e.NEXUS_TRUST_PROXY)
          : e.NEXUS_TRUST_PROXY,
    socketHeadCheckMs: e.NEXUS_SOCKET_HEAD_CHECK_MS,
    workers: {
      queues: e.NEXUS_WORKER_QUEUES,
      concurrency: e.NEXUS_WORKER_CONCURRENCY,
      shutdownGraceMs: e.NEXUS_SHUTDOWN_GRACE_MS,
      lockMs: e.NEXUS_WORKER_LOCK_MS,
      sweepIntervalMs: e.NEXUS_SWEEP_INTERVAL_MS,
      sweepAfterMs: e.NEXUS_SWEEP_AFTER_MS,
      sweepBatch: e.NEXUS_SWEEP_BATCH,
      deferMaxMs: e.NEXUS_WORKER_DEFER_MAX_MS,
      fetchStallMs: e.NEXUS_WORKER_FETCH_STALL_MS,
    },
    egressAllow: e.NEXUS_EGRESS_ALLOW,
    webhooks: {
      timeoutMs: e.NEXUS_WEBHOOK_TIMEOUT_MS,
      retrySchedule: e.NEXUS_WEBHOOK_RETRY_SCHEDULE ?? DEFAULT_RETRY_SCHEDULE.slice(1),
      disableAfterMs: e.NEXUS_WEBHOOK_DISABLE_AFTER_MS,
      secretGraceMs: e.NEXUS_WEBHOOK_SECRET_GRACE_MS,
      concurrency: e.NEXUS_WEBHOOK_CONCURRENCY,
      dispatchIntervalMs: e.NEXUS_WEBHOOK_DISPATCH_INTERVAL_MS,
      batchSize: e.NEXUS_WEBHOOK_BATCH_SIZE,
      targetConcurrency,
      // Enough batches to fill the target's places four times over: batches being loaded and
      // recorded, and the wait for the next dispatch, must not leave its places idle
      // (docs/performance.md#webhooks). Per webhooks worker: the dispatcher multiplies it by the
      // workers connected.
      targetBatches:
        e.NEXUS_WEBHOOK_TARGET_BATCHES ??
        Math.max(2, Math.ceil((4 * targetConcurrency) / e.NEXUS_WEBHOOK_BATCH_SIZE)),
    },
    email: {
      ratePerSecond: e.NEXUS_EMAIL_RATE_PER_SECOND,
      maxBytes: e.NEXUS_EMAIL_MAX_BYTES,
      bounceDomain: e.NEXUS_EMAIL_BOUNCE_DOMAIN?.toLowerCase(),
      smtpPort: e.NEXUS_EMAIL_SMTP_PORT,
      attachmentMaxBytes: e.NEXUS_EMAIL_ATTACHMENT_MAX_BYTES,
    },
    sms: { maxSegments: e.NEXUS_SMS_MAX_SEGMENTS, ratePerSecond: e.NEXUS_SMS_RATE_PER_SECOND },
    build: { changeset: e.NEXUS_BUILD_CHANGESET, timestamp: e.NEXUS_BUILD_TIMESTAMP },
    warnings,
  };
  return deepFreeze(config);
}

/** The AI connector's own variables (the guide's `athena.server.*` and `athena.nexus.*` values). */
const athenaEnvSchema = z.object({
  ATHENA_API_PREFIX: z
    .string()
    .default('/athena/v1,/nexus/v3')
    .transform(value =>
      value
        .split(',')
        .map(prefix => prefix.trim().replace(/\/+$/, ''))
        .filter(Boolean),
    )
    .pipe(
      z
        .array(
          z
            .string()
            .regex(/^\/[A-Za-z0-9._~/-]*$/, 'each prefix must be a path such as /athena/v1'),
        )
        .min(1, 'must name at least one prefix'),
    ),
  ATHENA_NEXUS_URL: z
    .string()
    .url("must be the hub's URL, such as http://nexus.nexus.svc.cluster.local")
    .transform(value => value.replace(/\/+$/, ''))
    .default('http://127.0.0.1:4000'),
  ATHENA_NEXUS_API_PREFIX: z
    .string()
    .regex(/^\/[A-Za-z0-9._~/-]*$/, 'must be a path such as /nexus/v3')
    .transform(value => value.replace(/\/+$/, ''))
    .default('/nexus/v3'),
  ATHENA_NEXUS_API_KEY: z.string().min(1).optional(),
  ATHENA_NEXUS_TIMEOUT_MS: positiveInt.max(120_000, 'must be at most 120000').default(10_000),
});

export interface AthenaConfig {
  /** The hub's settings this process shares (database, Redis, queues, secrets, logging). */
  readonly hub: Config;
  /** Every route answers under each of these prefixes. */
  readonly apiPrefixes: readonly string[];
  readonly nexus: {
    readonly url: string;
    readonly apiPrefix: string;
    /** A cluster key (`nexus:cluster:*`): reads the connector's signing secrets, posts suggestions. */
    readonly apiKey: string | undefined;
    readonly timeoutMs: number;
  };
}

/**
 * The AI connector's configuration: the hub's variables (it shares the codebase, and by default
 * the database and Redis; `PORT` defaults to the guide's 4084 and `METRICS_PORT` to 4085) and
 * its own `ATHENA_*` ones.
 */
export function loadAthenaConfig(
  source: Record<string, string | undefined> = process.env,
): AthenaConfig {
  const env = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== ''));
  let hub: Config | undefined;
  const problems: string[] = [];
  try {
    hub = loadConfig({ PORT: '4084', METRICS_PORT: '4085', ...env });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems);
  }
  const parsed = athenaEnvSchema.safeParse(env);
  if (!parsed.success) {
    problems.push(...parsed.error.issues.map(issue => `${String(issue.path[0])} ${issue.message}`));
  }
  if (parsed.success && hub?.env === 'production' && !parsed.data.ATHENA_NEXUS_API_KEY) {
    problems.push('ATHENA_NEXUS_API_KEY is required when NODE_ENV=production');
  }
  if (problems.length > 0 || !hub || !parsed.success) throw new ConfigError(problems);
  const e = parsed.data;
  const warnings = e.ATHENA_NEXUS_API_KEY
    ? hub.warnings
    : [
        ...hub.warnings,
        'ATHENA_NEXUS_API_KEY is not set: the connector cannot read signing secrets, so every delivery fails its signature check',
      ];
  return deepFreeze({
    hub: { ...hub, warnings },
    apiPrefixes: e.ATHENA_API_PREFIX,
    nexus: {
      url: e.ATHENA_NEXUS_URL,
      apiPrefix: e.ATHENA_NEXUS_API_PREFIX,
      apiKey: e.ATHENA_NEXUS_API_KEY,
      timeoutMs: e.ATHENA_NEXUS_TIMEOUT_MS,
    },
  });
}

/** The variable names {@link loadConfig} and {@link loadAthenaConfig} understand, for the README check. */
export const CONFIG_VARIABLES: readonly string[] = [
  ...Object.keys(envSchema.shape),
  ...Object.keys(athenaEnvSchema.shape),
];

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Buffer.isBuffer(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
