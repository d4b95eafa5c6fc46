import type { DatabasePool } from 'slonik';
import { findTenant, listDisabledTenantIds } from '../../db/queries/tenants.js';
import { AppError } from '../../lib/errors.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import type { Logger } from '../../lib/logger.js';

/**
 * The disabled tenants, as this replica knows them: their customers may not open sockets or
 * write, and the sockets of a tenant found disabled are closed
 * ({@link DisabledTenants.onDisabled}). The set is kept by the invalidation bus (a `tenant`
 * change reads that tenant's row, a resubscription reloads the set), so a check reads nothing. A
 * check of a tenant whose change is being read waits for that read (the replica that disabled it
 * refuses at once); while the bus cannot hear changes, a check reads the tenant's row instead.
 */
export class DisabledTenants {
  private disabled = new Set<string>();
  /** Reads are stamped in the order they start: a newer read's answer wins. */
  private clock = 0;
  /** The stamp of the last whole load, and of the resubscription that made the set stale. */
  private loadedAt = 0;
  private staleAt = 0;
  /** The stamp of each tenant's read newer than the last whole load. */
  private stamps = new Map<string, number>();
  private loading: Promise<void> | undefined;
  private readonly reads = new Map<string, Promise<void>>();
  private readonly listeners = new Set<(tenantId: string) => void>();

  constructor(
    private readonly db: DatabasePool,
    /** The replica's bus (the sockets hear agent changes on it too, api/realtime/index.ts). */
    readonly bus: InvalidationBus,
    private readonly log: Logger,
  ) {
    bus.onInvalidate(change => {
      if (change.kind === 'tenant') {
        void this.refresh(change.id);
      } else if (change.kind === 'all') {
        // Changes may have been missed: reload, and close the sockets of every disabled tenant.
        this.staleAt = ++this.clock;
        this.load().catch((error: unknown) =>
          this.log.warn({ err: error }, 'could not load the disabled tenants'),
        );
      }
    });
  }

  /** Throws 403 NEXUS_ERR_TENANT_DISABLED when the tenant is disabled. */
  async assertEnabled(tenantId: string): Promise<void> {
    if (await this.isDisabled(tenantId)) throw new AppError('NEXUS_ERR_TENANT_DISABLED');
  }

  async isDisabled(tenantId: string): Promise<boolean> {
    const pending = this.reads.get(tenantId);
    if (pending) await pending;
    if (!this.bus.live) return (await findTenant(this.db, tenantId))?.enabled === false;
    if (this.loadedAt <= this.staleAt) await this.load();
    return this.disabled.has(tenantId);
  }

  /** The read of the tenant's change in flight, if any (a check waits for it). */
  pendingRead(tenantId: string): Promise<void> | undefined {
    return this.reads.get(tenantId);
  }

  /** Calls `listener` with each tenant found disabled (on a change, or each after a reload). */
  onDisabled(listener: (tenantId: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Loads the whole set until a load started after the last resubscription has completed. */
  private load(): Promise<void> {
    this.loading ??= (async () => {
      try {
        while (this.loadedAt <= this.staleAt) {
          const stamp = ++this.clock;
          const ids = await listDisabledTenantIds(this.db);
          const next = new Set(ids);
          // A tenant read since this load started knows better.
          for (const [id, at] of this.stamps) {
            if (at < stamp) this.stamps.delete(id);
            else if (this.disabled.has(id)) next.add(id);
            else next.delete(id);
          }
          this.disabled = next;
          this.loadedAt = stamp;
        }
      } finally {
        this.loading = undefined;
      }
      for (const id of this.disabled) this.notify(id);
    })();
    return this.loading;
  }

  private refresh(tenantId: string): Promise<void> {
    const stamp = ++this.clock;
    const read = findTenant(this.db, tenantId).then(
      row => {
        // A read started later (of this tenant, or of the whole set) knows better.
        if (stamp < (this.stamps.get(tenantId) ?? 0) || stamp < this.loadedAt) return;
        this.stamps.set(tenantId, stamp);
        if (row?.enabled === false) {
          this.disabled.add(tenantId);
          this.notify(tenantId);
        } else {
          this.disabled.delete(tenantId);
        }
      },
      (error: unknown) => {
        this.log.warn({ err: error, tenantId }, 'could not read a changed tenant');
        // The set may be wrong about it now: the next check reloads it.
        this.staleAt = ++this.clock;
      },
    );
    const pending = read.finally(() => {
      if (this.reads.get(tenantId) === pending) this.reads.delete(tenantId);
    });
    this.reads.set(tenantId, pending);
    return pending;
  }

  private notify(tenantId: string): void {
    for (const listener of this.listeners) {
      try {
        listener(tenantId);
      } catch (error) {
        this.log.warn({ err: error, tenantId }, 'a disabled-tenant listener failed');
      }
    }
  }
}
