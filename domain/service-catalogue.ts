import { createPrivateKey, randomBytes } from 'node:crypto';
import { z, type ZodTypeAny } from 'zod';
import { ALL_EVENT_TYPES } from './event-catalogue.js';
import { SIGNATURE_SCHEMES } from './webhook-signing.js';

/**
 * The services a tenant provisions (`POST /nexus/v3/provisioning/services/{ccid}/{name}`), each
 * with the shape of its `url`, `data` and `secret`. The API validates bodies with these; workers
 * read the stored values with them. `secret` is sealed at rest and never returned.
 */

const MAX_TEXT = 1_024;
const MAX_SECRET = 4_096;

const text = (max = MAX_TEXT) => z.string().min(1, 'must not be empty').max(max);
const secretText = text(MAX_SECRET);

export const httpUrl = z
  .string()
  .max(2_048)
  .url('must be a URL')
  .refine(value => /^https?:\/\//i.test(value), 'must be an http(s) URL');

/** `url` of services that have none: the guide sends "N/A". */
const notApplicableUrl = z.string().max(2_048).optional();

/**
 * An HTTP header name after `header:` (RFC 9110 token), not one the hub sets itself or one that
 * changes how the message is framed or routed. Refused (docs/webhooks.md, "Custom headers"):
 * - hop-by-hop and framing: `Connection`, `Keep-Alive`, `Transfer-Encoding`, `TE`, `Trailer`,
 *   `Upgrade`, `Expect`, `Content-Length`, `Content-Encoding`, `Host`, any `Proxy-*`;
 * - set by the hub: `Content-Type`, `User-Agent`, `X-B3-TraceId`, any `X-Hub-Signature*` and any
 *   `webhook-*` (the signature and Standard Webhooks headers).
 */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
const RESERVED_HEADERS = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'content-length',
  'content-encoding',
  'content-type',
  'host',
  'user-agent',
  'x-b3-traceid',
]);
const RESERVED_HEADER_PREFIXES = ['proxy-', 'x-hub-signature', 'webhook-'];

/** Whether `header:<name>` may be configured. */
export const isCustomHeaderAllowed = (name: string): boolean => {
  const lower = name.toLowerCase();
  return (
    HEADER_NAME.test(name) &&
    !RESERVED_HEADERS.has(lower) &&
    !RESERVED_HEADER_PREFIXES.some(prefix => lower.startsWith(prefix))
  );
};

/** A header value: visible characters, spaces and tabs only (RFC 9110 field-value). */
// eslint-disable-next-line no-control-regex
const HEADER_VALUE_FORBIDDEN = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/**
 * A strict object that also accepts the guide's `header:<name>` entries (custom HTTP headers the
 * hub adds to its calls to the provider), each a string.
 */
function withCustomHeaders<S extends z.ZodRawShape>(shape: S) {
  return z
    .object(shape)
    .catchall(z.unknown())
    .superRefine((value, ctx) => {
      for (const [key, entry] of Object.entries(value)) {
        if (key in shape) continue;
        if (!key.startsWith('header:')) {
          ctx.addIssue({ code: 'custom', path: [key], message: 'is not a known field' });
          continue;
        }
        const name = key.slice('header:'.length);
        if (!isCustomHeaderAllowed(name)) {
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message:
              'must name a valid HTTP header that is not hop-by-hop or framing (Connection, Transfer-Encoding, Content-Length, Proxy-*, …) and not one the hub sets itself (Content-Type, Host, X-Hub-Signature*, webhook-*, …)',
          });
        } else if (
          typeof entry !== 'string' ||
          entry.length > MAX_TEXT ||
          HEADER_VALUE_FORBIDDEN.test(entry)
        ) {
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: `must be a single-line string of at most ${MAX_TEXT} characters without control characters`,
          });
        }
      }
    });
}

const noData = z.object({}).strict().default({});
/** A provider's send rate per sender number, across every worker (messages per second). */
const maxPerSecond = z.number().int().min(1).max(10_000).optional();
const noSecret = z.object({}).strict().optional();

const SMS_PROVIDERS = ['mGage', 'Async', 'Portico', 'Kannel'] as const;
const EMAIL_PROVIDERS = ['SparkPost', 'Async', 'Portico', 'SMTP'] as const;

/**
 * An SMTP relay: `smtp://host[:port]` (STARTTLS, port 587 unless given) or `smtps://host[:port]`
 * (TLS from the first byte, port 465 unless given). No credentials, path or query in the URL:
 * credentials are the sealed secret.
 */
const smtpUrl = z
  .string()
  .max(2_048)
  .superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be an smtp:// or smtps:// URL' });
      return;
    }
    if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') {
      ctx.addIssue({ code: 'custom', message: 'must be an smtp:// or smtps:// URL' });
    } else if (!url.hostname) {
      ctx.addIssue({ code: 'custom', message: 'must name a host' });
    } else if (
      url.username ||
      url.password ||
      (url.pathname && url.pathname !== '/') ||
      url.search ||
      url.hash
    ) {
      ctx.addIssue({
        code: 'custom',
        message: 'must be smtp(s)://host[:port] only (credentials go in secret)',
      });
    }
  });

/** A domain name (for DKIM signing): letters, digits and hyphens in dot-separated labels. */
const DOMAIN = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/;
const domainName = z.string().regex(DOMAIN, 'must be a domain name such as example.com');

/**
 * Why `pem` is not a private key the hub can DKIM-sign with, if it is not: an RSA key of at least
 * 1,024 bits (nodemailer, which signs, does not sign with Ed25519).
 */
export function dkimKeyProblem(pem: string): string | undefined {
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'rsa') return 'must be an RSA private key';
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    return bits >= 1_024 ? undefined : 'must be an RSA key of at least 1024 bits';
  } catch {
    return 'must be a PEM private key (-----BEGIN PRIVATE KEY----- …)';
  }
}

const asyncChannel = z
  .object({ channelId: text(255), webhook: z.object({ url: httpUrl }).strict() })
  .strict();
const asyncChannelSecret = z
  .object({
    channelId: text(255),
    webhook: z.object({ secret: secretText }).strict(),
    api: z.object({ secret: secretText }).strict(),
  })
  .strict();

/** Signature schemes a webhook target may ask for (default: all). */
export { SIGNATURE_SCHEMES };

export interface ServiceShape {
  readonly description: string;
  readonly url: ZodTypeAny;
  readonly data: ZodTypeAny;
  readonly secret: ZodTypeAny;
  /** Cross-field rules on the whole body. */
  readonly check?: (
    body: { url?: unknown; data: unknown; secret: unknown },
    ctx: z.RefinementCtx,
  ) => void;
}

const SERVICES: Record<string, ServiceShape> = {
  SMS: {
    description: 'Enables SMS for the tenant and selects its provider.',
    url: notApplicableUrl,
    data: z
      .object({
        provider: z.enum(SMS_PROVIDERS).optional(),
        tokenProvider: z.enum(['Purecloud']).optional(),
      })
      .strict()
      .default({}),
    secret: noSecret,
  },
  mGageSMS: {
    description: 'Kaleyra (formerly mGage) DirectTEXT credentials for sending SMS.',
    url: httpUrl,
    data: withCustomHeaders({ maxPerSecond }).default({}),
    secret: z.object({ username: secretText, password: secretText }).strict(),
  },
  Async: {
    description:
      'A custom gateway through the Third-Party Messaging API: per channel, the aggregator webhook and the secrets of both directions.',
    url: notApplicableUrl,
    data: withCustomHeaders({ channels: z.array(asyncChannel).min(1).max(500), maxPerSecond }),
    secret: z.object({ channels: z.array(asyncChannelSecret).min(1).max(500) }).strict(),
    check: (body, ctx) => {
      const data = body.data as { channels: { channelId: string }[] };
      const secret = body.secret as { channels: { channelId: string }[] };
      const configured = new Set(data.channels.map(channel => channel.channelId));
      const secured = new Set(secret.channels.map(channel => channel.channelId));
      data.channels.forEach((channel, index) => {
        if (data.channels.findIndex(other => other.channelId === channel.channelId) !== index) {
          ctx.addIssue({
            code: 'custom',
            path: ['data', 'channels', index, 'channelId'],
            message: 'is listed twice',
          });
        }
        if (!secured.has(channel.channelId)) {
          ctx.addIssue({
            code: 'custom',
            path: ['secret', 'channels'],
            message: `has no entry for channelId ${channel.channelId}`,
          });
        }
      });
      secret.channels.forEach((channel, index) => {
        if (!configured.has(channel.channelId)) {
          ctx.addIssue({
            code: 'custom',
            path: ['secret', 'channels', index, 'channelId'],
            message: 'is not one of data.channels',
          });
        }
      });
    },
  },
  SmsKeywords: {
    description:
      'SMS keywords of the tenant: per language, the words that opt a number out, back in, or ask for help (replacing the defaults of that language), and the text HELP answers.',
    url: notApplicableUrl,
    data: z
      .object({
        languages: z
          .record(
            z.string().regex(/^[a-z]{2}$/, 'must be a two-letter language code'),
            z
              .object({
                optOut: z.array(text(32)).max(50).default([]),
                optIn: z.array(text(32)).max(50).default([]),
                help: z.array(text(32)).max(50).default([]),
              })
              .strict(),
          )
          .optional(),
        helpText: text(480).optional(),
      })
      .strict()
      .default({}),
    secret: noSecret,
  },
  KannelSMS: {
    description:
      "A Kannel gateway: its smsbox `sendsms` URL and the `sendsms-user` credentials; delivery reports come back to the hub's `/nexus/v3/sms/receipt/kannel`.",
    url: httpUrl,
    data: z
      .object({
        /** Kannel's `dlr-mask`: which reports to ask for (default 31: all). */
        dlrMask: z.number().int().min(0).max(31).optional(),
        /** An `smsc-id` to send through (Kannel's `smsc` parameter); Kannel routes otherwise. */
        smsc: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a Kannel smsc-id')
          .optional(),
        maxPerSecond,
      })
      .strict()
      .default({}),
    secret: z.object({ username: secretText, password: secretText }).strict(),
  },
  PorticoSMS: {
    description: 'SMS through Genesys Cloud SMS aggregation (its API URL).',
    url: httpUrl,
    data: z.object({ maxPerSecond }).strict().default({}),
    secret: noSecret,
  },
  PurecloudIDP: {
    description: 'The Genesys Cloud organization the tenant authenticates to (OAuth client).',
    url: httpUrl,
    data: noData,
    secret: z.object({ clientId: secretText, clientSecret: secretText }).strict(),
  },
  Email: {
    description: 'Enables outbound email for the tenant and selects its provider.',
    url: notApplicableUrl,
    data: z.object({ provider: z.enum(EMAIL_PROVIDERS) }).strict(),
    secret: noSecret,
  },
  SmtpEmail: {
    description:
      'An SMTP relay for email (`Email` provider `SMTP`): its URL, STARTTLS policy, connection pool, send rate and the domains whose mail is DKIM-signed; credentials and DKIM keys are the sealed secret.',
    url: smtpUrl,
    data: z
      .object({
        /** `smtp://` only: `required` refuses a server without STARTTLS, `opportunistic` uses it when offered. */
        starttls: z.enum(['required', 'opportunistic']).optional(),
        /** Connections the pool keeps open per worker process. */
        maxConnections: z.number().int().min(1).max(50).default(5),
        /** Mails sent over one connection before it is replaced. */
        maxMessages: z.number().int().min(1).max(10_000).default(100),
        /** Mails per second through this relay, across every worker. */
        maxPerSecond,
        /** Domains whose mail is DKIM-signed, each with its selector; the keys are in `secret.dkimKeys`. */
        dkim: z
          .array(
            z
              .object({
                domain: domainName,
                selector: z
                  .string()
                  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be a DKIM selector'),
              })
              .strict(),
          )
          .max(100)
          .default([]),
      })
      .strict()
      .default({}),
    secret: z
      .object({
        username: secretText.optional(),
        password: secretText.optional(),
        /** PEM private key per DKIM domain. */
        dkimKeys: z.record(text(16_384)).optional(),
      })
      .strict()
      .optional(),
    check: (body, ctx) => {
      const url = (body as { url?: unknown }).url;
      const data = body.data as { starttls?: string; dkim: { domain: string }[] };
      const secret = (body.secret ?? {}) as {
        username?: string;
        password?: string;
        dkimKeys?: Record<string, string>;
      };
      if (typeof url === 'string' && url.toLowerCase().startsWith('smtps:') && data.starttls) {
        ctx.addIssue({
          code: 'custom',
          path: ['data', 'starttls'],
          message: 'applies to smtp:// only (smtps:// is TLS from the start)',
        });
      }
      if ((secret.username === undefined) !== (secret.password === undefined)) {
        ctx.addIssue({
          code: 'custom',
          path: ['secret', secret.username === undefined ? 'username' : 'password'],
          message: 'username and password go together',
        });
      }
      const keys = secret.dkimKeys ?? {};
      const signed = new Set<string>();
      data.dkim.forEach((entry, index) => {
        const domain = entry.domain.toLowerCase();
        if (signed.has(domain)) {
          ctx.addIssue({
            code: 'custom',
            path: ['data', 'dkim', index, 'domain'],
            message: 'is listed twice',
          });
        }
        signed.add(domain);
        if (!Object.keys(keys).some(name => name.toLowerCase() === domain)) {
          ctx.addIssue({
            code: 'custom',
            path: ['secret', 'dkimKeys'],
            message: `has no key for ${entry.domain}`,
          });
        }
      });
      for (const [domain, pem] of Object.entries(keys)) {
        if (!signed.has(domain.toLowerCase())) {
          ctx.addIssue({
            code: 'custom',
            path: ['secret', 'dkimKeys', domain],
            message: 'names a domain that data.dkim does not list',
          });
          continue;
        }
        const problem = dkimKeyProblem(pem);
        if (problem) {
          ctx.addIssue({ code: 'custom', path: ['secret', 'dkimKeys', domain], message: problem });
        }
      }
    },
  },
  SparkPostEmail: {
    description:
      "SparkPost credentials for sending email, and the HTTP Basic credentials SparkPost's event webhook sends (without them, its events are refused).",
    url: httpUrl,
    /** `maxPerSecond`: mails per second per sending domain, across every worker. */
    data: z.object({ maxPerSecond }).strict().default({}),
    secret: z
      .object({
        apikey: secretText,
        webhook: z
          .object({
            // HTTP Basic ends the user name at the first colon (RFC 7617).
            username: text(255).refine(value => !value.includes(':'), 'must not contain ":"'),
            password: secretText,
          })
          .strict()
          .optional(),
      })
      .strict(),
  },
  PorticoEmail: {
    description: 'Email through Genesys Cloud messaging aggregation (its API URL).',
    url: httpUrl,
    /** `maxPerSecond`: mails per second per sending domain, across every worker. */
    data: z.object({ maxPerSecond }).strict().default({}),
    secret: noSecret,
  },
  PlatformUCS: {
    description: 'The Universal Contact Service connection.',
    url: httpUrl,
    data: noData,
    secret: noSecret,
  },
};

/** The fewest bytes a `whsec_` key may decode to (128 bits; Standard Webhooks suggests 24-64). */
export const MIN_STANDARD_KEY_BYTES = 16;

/**
 * A webhook secret. One starting `whsec_` is a Standard Webhooks key: the rest must be canonical
 * base64 of at least {@link MIN_STANDARD_KEY_BYTES} bytes, or receivers' libraries could not
 * verify what the hub signs (Node's decoder would silently skip the bad characters).
 */
const standardWebhooksSecret = secretText.superRefine((value, ctx) => {
  if (!value.startsWith('whsec_')) return;
  const key = value.slice('whsec_'.length);
  const canonical = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(key);
  if (!canonical || Buffer.from(key, 'base64').length < MIN_STANDARD_KEY_BYTES) {
    ctx.addIssue({
      code: 'custom',
      message: `a whsec_ secret must be whsec_ followed by base64 of at least ${MIN_STANDARD_KEY_BYTES} bytes`,
    });
  }
});

const webhookTarget: ServiceShape = {
  description:
    'A webhook target (`WebhookTransportTarget-<name>`; `ai-connector` is the AI Connector): where events are POSTed, which ones, how they are signed.',
  url: httpUrl,
  data: withCustomHeaders({
    /** Event types delivered; all when absent. */
    events: z
      .array(
        z.enum(ALL_EVENT_TYPES as [string, ...string[]], {
          errorMap: () => ({ message: `must be one of ${ALL_EVENT_TYPES.join(', ')}` }),
        }),
      )
      .min(1)
      .max(100)
      .optional(),
    /** `interactions` sends the guide's Interactions Webhook payload; `events` our catalogue. */
    format: z.enum(['interactions', 'events']).optional(),
    signatures: z.array(z.enum(SIGNATURE_SCHEMES)).min(1).optional(),
    /** Delays in seconds between attempts, overriding the default schedule. */
    retrySchedule: z.array(z.number().int().min(0).max(86_400)).min(1).max(20).optional(),
  }).default({}),
  secret: z
    .union([standardWebhooksSecret, z.object({ secret: standardWebhooksSecret }).strict()])
    .transform(value => (typeof value === 'string' ? { secret: value } : value))
    .optional(),
};

export const WEBHOOK_TARGET_PREFIX = 'WebhookTransportTarget-';
const WEBHOOK_TARGET_NAME = /^WebhookTransportTarget-[A-Za-z0-9_-]{1,64}$/;

/**
 * The guide's AI connector target. The connector refuses unsigned deliveries, yet the guide
 * registers it without a secret: saved without one, this target keeps the secret it has or gets
 * one the hub draws ({@link drawWebhookSecret}), which the connector reads from the hub.
 */
export const AI_CONNECTOR_TARGET = `${WEBHOOK_TARGET_PREFIX}ai-connector`;

/** Bytes of a secret the hub draws (256 bits; Standard Webhooks suggests 24-64). */
const DRAWN_SECRET_BYTES = 32;

/**
 * A new webhook secret: `whsec_` + base64 of 32 random bytes, valid for the X-Hub-Signature
 * headers (its characters as the key) and Standard Webhooks (the decoded bytes) alike.
 */
export const drawWebhookSecret = (): string =>
  `whsec_${randomBytes(DRAWN_SECRET_BYTES).toString('base64')}`;

export const SERVICE_NAMES = [...Object.keys(SERVICES), `${WEBHOOK_TARGET_PREFIX}<name>`];

/** The shape of a service name, or undefined when the name is not a known service. */
export function serviceShape(name: string): ServiceShape | undefined {
  if (Object.hasOwn(SERVICES, name)) return SERVICES[name];
  return WEBHOOK_TARGET_NAME.test(name) ? webhookTarget : undefined;
}

/** The body schema of one service: `{url, data, secret}`, strict. */
export function serviceBodySchema(shape: ServiceShape) {
  return z
    .object({ url: shape.url, data: shape.data, secret: shape.secret })
    .strict()
    .superRefine((body, ctx) =>
      shape.check?.(body as { url?: unknown; data: unknown; secret: unknown }, ctx),
    );
}
