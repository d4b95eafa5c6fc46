import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/** SQL on `tenants`: the contact centers this hub serves. */

export const tenantRow = z.object({
  id: z.string(),
  name: z.string(),
  type: z.string(),
  backendurl: z.string().nullable(),
  username: z.string().nullable(),
  token_sealed: z.string().nullable(),
  genesystenantid: z.number().nullable(),
  enabled: z.boolean(),
  created_at: z.string(),
  created_by: z.string(),
  updated_at: z.string(),
});
export type TenantRow = z.infer<typeof tenantRow>;

const columns = sql.fragment`id, name, type, backendurl, username, token_sealed, genesystenantid,
  enabled, created_at, created_by, updated_at`;

export interface NewTenant {
  id: string;
  name: string;
  type: string;
  backendurl: string | null;
  username: string | null;
  tokenSealed: string | null;
  genesystenantid: number | null;
  createdBy: string;
}

/** Inserts a tenant; undefined when the id is taken (nothing is changed then). */
export async function insertTenant(
  db: CommonQueryMethods,
  tenant: NewTenant,
): Promise<TenantRow | undefined> {
  const row = await db.maybeOne(sql.type(tenantRow)`
    INSERT INTO tenants (id, name, type, backendurl, username, token_sealed, genesystenantid, created_by)
    VALUES (${tenant.id}, ${tenant.name}, ${tenant.type}, ${tenant.backendurl}, ${tenant.username},
            ${tenant.tokenSealed}, ${tenant.genesystenantid}, ${tenant.createdBy})
    ON CONFLICT (id) DO NOTHING
    RETURNING ${columns}`);
  return row ?? undefined;
}

export async function findTenant(
  db: CommonQueryMethods,
  id: string,
): Promise<TenantRow | undefined> {
  return (
    (await db.maybeOne(sql.type(tenantRow)`SELECT ${columns} FROM tenants WHERE id = ${id}`)) ??
    undefined
  );
}

/** The ids of the disabled tenants (each replica keeps them: their customers may not write). */
export async function listDisabledTenantIds(db: CommonQueryMethods): Promise<readonly string[]> {
  return db.anyFirst(
    sql.type(z.object({ id: z.string() }))`SELECT id FROM tenants WHERE NOT enabled`,
  );
}

/** Tenants ordered by id; `only` restricts to one tenant (tenant-scoped callers). */
export async function listTenants(
  db: CommonQueryMethods,
  page: { limit: number; after?: string | undefined; only?: string | undefined },
): Promise<readonly TenantRow[]> {
  const conditions = [sql.fragment`TRUE`];
  if (page.after !== undefined) conditions.push(sql.fragment`id > ${page.after}`);
  if (page.only !== undefined) conditions.push(sql.fragment`id = ${page.only}`);
  return db.any(sql.type(tenantRow)`
    SELECT ${columns} FROM tenants WHERE ${sql.join(conditions, sql.fragment` AND `)}
    ORDER BY id LIMIT ${page.limit}`);
}

export interface TenantChanges {
  name?: string | undefined;
  type?: string | undefined;
  backendurl?: string | null | undefined;
  username?: string | null | undefined;
  tokenSealed?: string | null | undefined;
  genesystenantid?: number | null | undefined;
  enabled?: boolean | undefined;
}

/** Applies the changes given; undefined when the tenant does not exist. */
export async function updateTenant(
  db: CommonQueryMethods,
  id: string,
  changes: TenantChanges,
): Promise<TenantRow | undefined> {
  const sets = [sql.fragment`updated_at = now()`];
  const column = (name: string, value: string | number | boolean | null) =>
    sets.push(sql.fragment`${sql.identifier([name])} = ${value}`);
  if (changes.name !== undefined) column('name', changes.name);
  if (changes.type !== undefined) column('type', changes.type);
  if (changes.backendurl !== undefined) column('backendurl', changes.backendurl);
  if (changes.username !== undefined) column('username', changes.username);
  if (changes.tokenSealed !== undefined) column('token_sealed', changes.tokenSealed);
  if (changes.genesystenantid !== undefined) column('genesystenantid', changes.genesystenantid);
  if (changes.enabled !== undefined) column('enabled', changes.enabled);
  const row = await db.maybeOne(sql.type(tenantRow)`
    UPDATE tenants SET ${sql.join(sets, sql.fragment`, `)} WHERE id = ${id} RETURNING ${columns}`);
  return row ?? undefined;
}
