import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/** SQL on `services`: a tenant's provider settings with their sealed secrets. */

export const serviceRow = z.object({
  tenant_id: z.string(),
  name: z.string(),
  url: z.string().nullable(),
  data: z.record(z.unknown()),
  secret_sealed: z.string().nullable(),
  secret_key_id: z.string().nullable(),
  version: z.number(),
  created_at: z.string(),
  updated_at: z.string(),
  updated_by: z.string(),
});
export type ServiceRow = z.infer<typeof serviceRow>;

const columns = sql.fragment`tenant_id, name, url, data, secret_sealed, secret_key_id, version,
  created_at, updated_at, updated_by`;

export interface ServiceDefinition {
  tenantId: string;
  name: string;
  url: string | null;
  data: Record<string, unknown>;
  secretSealed: string | null;
  secretKeyId: string | null;
  updatedBy: string;
}

/** Creates or replaces a service; `created` tells which. */
export async function upsertService(
  db: CommonQueryMethods,
  service: ServiceDefinition,
): Promise<{ row: ServiceRow; created: boolean }> {
  const row = await db.one(sql.type(serviceRow.extend({ created: z.boolean() }))`
    INSERT INTO services (tenant_id, name, url, data, secret_sealed, secret_key_id, updated_by)
    VALUES (${service.tenantId}, ${service.name}, ${service.url}, ${sql.jsonb(service.data as never)},
            ${service.secretSealed}, ${service.secretKeyId}, ${service.updatedBy})
    ON CONFLICT (tenant_id, name) DO UPDATE SET
      url = EXCLUDED.url, data = EXCLUDED.data, secret_sealed = EXCLUDED.secret_sealed,
      secret_key_id = EXCLUDED.secret_key_id, updated_by = EXCLUDED.updated_by,
      version = services.version + 1, updated_at = now()
    RETURNING ${columns}, (xmax = 0) AS created`);
  const { created, ...rest } = row;
  return { row: rest, created };
}

export async function findService(
  db: CommonQueryMethods,
  tenantId: string,
  name: string,
  options: { lock?: boolean } = {},
): Promise<ServiceRow | undefined> {
  const row = await db.maybeOne(sql.type(serviceRow)`
    SELECT ${columns} FROM services WHERE tenant_id = ${tenantId} AND name = ${name}
    ${options.lock ? sql.fragment`FOR NO KEY UPDATE` : sql.fragment``}`);
  return row ?? undefined;
}

export async function listServices(
  db: CommonQueryMethods,
  tenantId: string,
): Promise<readonly ServiceRow[]> {
  return db.any(sql.type(serviceRow)`
    SELECT ${columns} FROM services WHERE tenant_id = ${tenantId} ORDER BY name`);
}

export async function deleteService(
  db: CommonQueryMethods,
  tenantId: string,
  name: string,
): Promise<boolean> {
  const result = await db.query(sql.unsafe`
    DELETE FROM services WHERE tenant_id = ${tenantId} AND name = ${name}`);
  return result.rowCount > 0;
}

/** Rows whose secret was sealed with another key than `currentKeyId` (for re-encryption). */
export async function listServicesSealedWithOtherKeys(
  db: CommonQueryMethods,
  currentKeyId: string,
  limit: number,
): Promise<readonly ServiceRow[]> {
  return db.any(sql.type(serviceRow)`
    SELECT ${columns} FROM services
    WHERE secret_sealed IS NOT NULL AND secret_key_id IS DISTINCT FROM ${currentKeyId}
    ORDER BY tenant_id, name LIMIT ${limit} FOR NO KEY UPDATE SKIP LOCKED`);
}

export async function resealService(
  db: CommonQueryMethods,
  tenantId: string,
  name: string,
  secretSealed: string,
  secretKeyId: string,
): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE services SET secret_sealed = ${secretSealed}, secret_key_id = ${secretKeyId}
    WHERE tenant_id = ${tenantId} AND name = ${name}`);
}
