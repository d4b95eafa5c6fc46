import type { DatabasePool } from 'slonik';
import { SharedCache, type InvalidationBus } from '../lib/invalidation.js';
import type { SecretBox } from '../lib/secrets.js';
import { findService } from './queries/services.js';

/** A provisioned service as workers use it: the secret opened. */
export interface ResolvedService {
  readonly tenant: string;
  readonly name: string;
  readonly url: string | null;
  readonly data: Readonly<Record<string, unknown>>;
  readonly secret: unknown;
  readonly version: number;
}

/** The context a service's sealed secret is bound to (see lib/secrets.ts). */
export const serviceSecretContext = (tenant: string, name: string) => `service:${tenant}/${name}`;

/**
 * How workers read a tenant's services (provider credentials, webhook targets): cached per
 * process and dropped on every process when the provisioning API changes one, so changes apply
 * without a restart.
 */
export class ServiceDirectory {
  private readonly cache: SharedCache<string, { service: ResolvedService | null }>;

  constructor(
    private readonly db: DatabasePool,
    private readonly secrets: SecretBox,
    bus: InvalidationBus,
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

  async get(tenant: string, name: string): Promise<ResolvedService | undefined> {
    const entry = await this.cache.get(`${tenant}/${name}`, async () => {
      const row = await findService(this.db, tenant, name);
      if (!row) return { service: null };
      return {
        service: {
          tenant,
          name,
          url: row.url,
          data: row.data,
          secret: row.secret_sealed
            ? this.secrets.open(row.secret_sealed, serviceSecretContext(tenant, name))
            : {},
          version: row.version,
        },
      };
    });
    return entry?.service ?? undefined;
  }
}
