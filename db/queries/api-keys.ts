import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/** SQL on `api_keys`: the keys a tenant's clients authenticate with (stored as hashes, shown once). */

export const apiKeyRow = z.object({
  id: z.string(),
  tenant_id: z.string().nullable(),
  name: z.string(),
  permissions: z.array(z.string()),
  enabled: z.boolean(),
  revoked_at: z.string().nullable(),
  expires_at: z.string().nullable(),
  capacity: z.number(),
  frequency: z.number(),
  created_at: z.string(),
  created_by: z.string(),
  updated_at: z.string(),
});
export type ApiKeyRow = z.infer<typeof apiKeyRow>;

/** A key as authentication needs it: the key's row and whether its tenant is enabled. */
export const apiKeyAuthRow = apiKeyRow.extend({ tenant_enabled: z.boolean().nullable() });
export type ApiKeyAuthRow = z.infer<typeof apiKeyAuthRow>;

const columns = sql.fragment`id, tenant_id, name, permissions, enabled, revoked_at, expires_at,
  capacity, frequency, created_at, created_by, updated_at`;

export interface NewApiKey {
  id: string;
  tenantId: string | null;
  name: string;
  permissions: readonly string[];
  enabled: boolean;
  expiresAt: Date | null;
  capacity: number;
  frequency: number;
  keyHash: Buffer;
  createdBy: string;
}

export async function insertApiKey(db: CommonQueryMethods, key: NewApiKey): Promise<ApiKeyRow> {
  return db.one(sql.type(apiKeyRow)`
    INSERT INTO api_keys (id, tenant_id, name, permissions, enabled, expires_at, capacity, frequency,
                          key_hash, created_by)
    VALUES (${key.id}, ${key.tenantId}, ${key.name}, ${sql.array(key.permissions, 'text')},
            ${key.enabled}, ${key.expiresAt?.toISOString() ?? null}, ${key.capacity},
            ${key.frequency}, ${sql.binary(key.keyHash)}, ${key.createdBy})
    RETURNING ${columns}`);
}

/** Looks a presented key up by its hash, with its tenant's state. */
export async function findApiKeyByHash(
  db: CommonQueryMethods,
  keyHash: Buffer,
): Promise<ApiKeyAuthRow | undefined> {
  const row = await db.maybeOne(sql.type(apiKeyAuthRow)`
    SELECT k.id, k.tenant_id, k.name, k.permissions, k.enabled, k.revoked_at, k.expires_at,
           k.capacity, k.frequency, k.created_at, k.created_by, k.updated_at,
           t.enabled AS tenant_enabled
    FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id
    WHERE k.key_hash = ${sql.binary(keyHash)}`);
  return row ?? undefined;
}

export async function findApiKey(
  db: CommonQueryMethods,
  id: string,
): Promise<ApiKeyRow | undefined> {
  const row = await db.maybeOne(
    sql.type(apiKeyRow)`SELECT ${columns} FROM api_keys WHERE id = ${id}`,
  );
  return row ?? undefined;
}

/**
 * Keys, newest first. `tenantId` undefined lists every key, null lists cluster keys only.
 * `before` is the last id of the previous page.
 */
export async function listApiKeys(
  db: CommonQueryMethods,
  filter: { tenantId?: string | null | undefined },
  page: { limit: number; before?: { createdAt: string; id: string } | undefined },
): Promise<readonly ApiKeyRow[]> {
  const conditions = [sql.fragment`TRUE`];
  if (filter.tenantId === null) conditions.push(sql.fragment`tenant_id IS NULL`);
  else if (filter.tenantId !== undefined) {
    conditions.push(sql.fragment`tenant_id = ${filter.tenantId}`);
  }
  if (page.before) {
    conditions.push(
      sql.fragment`(created_at, id) < (${page.before.createdAt}::timestamptz, ${page.before.id}::uuid)`,
    );
  }
  return db.any(sql.type(apiKeyRow)`
    SELECT ${columns} FROM api_keys WHERE ${sql.join(conditions, sql.fragment` AND `)}
    ORDER BY created_at DESC, id DESC LIMIT ${page.limit}`);
}

export interface ApiKeyChanges {
  name?: string | undefined;
  enabled?: boolean | undefined;
  capacity?: number | undefined;
  frequency?: number | undefined;
  /** null: never expires. */
  expiresAt?: Date | null | undefined;
  revoke?: boolean | undefined;
}

/** Applies the changes; a revoked key keeps its revocation time. Undefined when not found. */
export async function updateApiKey(
  db: CommonQueryMethods,
  id: string,
  changes: ApiKeyChanges,
): Promise<ApiKeyRow | undefined> {
  const sets = [sql.fragment`updated_at = now()`];
  if (changes.name !== undefined) sets.push(sql.fragment`name = ${changes.name}`);
  if (changes.enabled !== undefined) sets.push(sql.fragment`enabled = ${changes.enabled}`);
  if (changes.capacity !== undefined) sets.push(sql.fragment`capacity = ${changes.capacity}`);
  if (changes.frequency !== undefined) sets.push(sql.fragment`frequency = ${changes.frequency}`);
  if (changes.expiresAt !== undefined) {
    sets.push(sql.fragment`expires_at = ${changes.expiresAt?.toISOString() ?? null}`);
  }
  if (changes.revoke) sets.push(sql.fragment`revoked_at = coalesce(revoked_at, now())`);
  const row = await db.maybeOne(sql.type(apiKeyRow)`
    UPDATE api_keys SET ${sql.join(sets, sql.fragment`, `)} WHERE id = ${id} RETURNING ${columns}`);
  return row ?? undefined;
}
