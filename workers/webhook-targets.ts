import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { serviceSecretContext } from '../db/service-directory.js';
import { findWebhookTarget } from '../db/webhook-dispatch.js';
import { SharedCache, type InvalidationBus } from '../lib/invalidation.js';
import type { Logger } from '../lib/logger.js';
import type { SecretBox } from '../lib/secrets.js';
import type { SignatureScheme } from '../domain/webhook-signing.js';
import { storedCustomHeaders } from './custom-headers.js';

/** A webhook target as the delivery processor uses it: its service and its delivery state. */
export interface WebhookTarget {
  readonly tenant: string;
  readonly name: string;
  readonly url: string;
  readonly format: 'interactions' | 'events';
  readonly signatures: readonly SignatureScheme[] | undefined;
  /** Retry delays in seconds (between attempts), when the target overrides the default. */
  readonly retrySchedule: readonly number[] | undefined;
  /** `header:<name>` entries of the service's data that the hub may send (`storedCustomHeaders`). */
  readonly headers: Readonly<Record<string, string>>;
  readonly secret: string | undefined;
  /** The secret before the last rotation and until when it still signs. */
  readonly previous: { readonly secret: string; readonly until: number } | undefined;
  readonly enabled: boolean;
  readonly disabledReason: string | null;
}

const targetData = z
  .object({
    format: z.enum(['interactions', 'events']).optional(),
    signatures: z.array(z.string()).optional(),
    retrySchedule: z.array(z.number()).optional(),
  })
  .passthrough();

/**
 * Webhook targets, cached per worker process and dropped on every process when the provisioning
 * API changes the service or a worker disables the target (both publish a `service` change).
 */
export class WebhookTargets {
  private readonly cache: SharedCache<string, { target: WebhookTarget | null }>;

  constructor(
    private readonly db: DatabasePool,
    private readonly secrets: SecretBox,
    bus: InvalidationBus,
    private readonly log: Logger,
    ttlMs = 60_000,
  ) {
    this.cache = new SharedCache(
      bus,
      { max: 10_000, ttlMs },
      (change, key) =>
        (change.kind === 'service' && key === `${change.tenant}/${change.name}`) ||
        (change.kind === 'tenant' && key.startsWith(`${change.id}/`)),
    );
  }

  async get(tenant: string, name: string): Promise<WebhookTarget | undefined> {
    const entry = await this.cache.get(`${tenant}/${name}`, async () => ({
      target: await this.load(tenant, name),
    }));
    return entry?.target ?? undefined;
  }

  private async load(tenant: string, name: string): Promise<WebhookTarget | null> {
    const row = await findWebhookTarget(this.db, tenant, name);
    if (!row?.url) return null;
    const data = targetData.parse(row.data);
    const context = serviceSecretContext(tenant, name);
    const headers = storedCustomHeaders(row.data, { tenant, name }, this.log);
    let previous: WebhookTarget['previous'];
    if (row.previous_secret_sealed && row.previous_until) {
      try {
        previous = {
          secret: secretOf(this.secrets.open(row.previous_secret_sealed, context)) ?? '',
          until: Date.parse(row.previous_until),
        };
      } catch (error) {
        // Sealed with a master key that is no longer configured: sign with the current one only.
        this.log.warn({ err: error, tenant, target: name }, 'previous webhook secret unreadable');
      }
    }
    return {
      tenant,
      name,
      url: row.url,
      format: data.format ?? 'events',
      signatures: data.signatures as SignatureScheme[] | undefined,
      retrySchedule: data.retrySchedule,
      headers,
      secret: row.secret_sealed
        ? secretOf(this.secrets.open(row.secret_sealed, context))
        : undefined,
      previous: previous?.secret ? previous : undefined,
      enabled: row.enabled,
      disabledReason: row.disabled_reason,
    };
  }
}

/** A target's secret is stored as `{secret}` (a bare string is accepted and wrapped). */
function secretOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  const secret = (value as { secret?: unknown } | null)?.secret;
  return typeof secret === 'string' ? secret : undefined;
}

/** The secrets that sign now: the current one, then the previous one during its grace period. */
export function signingSecrets(target: WebhookTarget, now = Date.now()): string[] {
  if (!target.secret) return [];
  return target.previous && target.previous.until > now
    ? [target.secret, target.previous.secret]
    : [target.secret];
}
