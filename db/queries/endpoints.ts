import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/** Queries on `endpoints`: a tenant's named entry points, and the queue each leads to. */

export const endpointRow = z.object({
  tenant_id: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  created_at: z.string(),
});
export type EndpointRow = z.infer<typeof endpointRow>;

/** Creates or replaces an endpoint; `created` tells which (`xmax` is 0 on a fresh insert). */
export async function upsertEndpoint(
  db: CommonQueryMethods,
  endpoint: { tenantId: string; name: string; description: string | null },
): Promise<EndpointRow & { created: boolean }> {
  return db.one(sql.type(endpointRow.extend({ created: z.boolean() }))`
    INSERT INTO endpoints (tenant_id, name, description)
    VALUES (${endpoint.tenantId}, ${endpoint.name}, ${endpoint.description})
    ON CONFLICT (tenant_id, name) DO UPDATE SET description = EXCLUDED.description
    RETURNING tenant_id, name, description, created_at, (xmax = 0) AS created`);
}

/** The endpoint and the queue it leads to (null: none); undefined when no such endpoint. */
export async function findEndpointRoute(
  db: CommonQueryMethods,
  tenantId: string,
  name: string,
): Promise<{ queue: string | null } | undefined> {
  const row = await db.maybeOne(sql.type(z.object({ queue: z.string().nullable() }))`
    SELECT q.queue_name AS queue FROM endpoints e
    LEFT JOIN routing_queue_endpoints q ON q.tenant_id = e.tenant_id AND q.endpoint = e.name
    WHERE e.tenant_id = ${tenantId} AND e.name = ${name}`);
  return row ?? undefined;
}

export async function listEndpoints(
  db: CommonQueryMethods,
  tenantId: string,
): Promise<readonly EndpointRow[]> {
  return db.any(sql.type(endpointRow)`
    SELECT tenant_id, name, description, created_at FROM endpoints
    WHERE tenant_id = ${tenantId} ORDER BY name`);
}

export async function deleteEndpoint(
  db: CommonQueryMethods,
  tenantId: string,
  name: string,
): Promise<boolean> {
  const result = await db.query(sql.unsafe`
    DELETE FROM endpoints WHERE tenant_id = ${tenantId} AND name = ${name}`);
  return result.rowCount > 0;
}

/** Which of these names are endpoints of the tenant. */
export async function existingEndpointNames(
  db: CommonQueryMethods,
  tenantId: string,
  names: readonly string[],
): Promise<readonly string[]> {
  return db.anyFirst(sql.type(z.object({ name: z.string() }))`
    SELECT name FROM endpoints WHERE tenant_id = ${tenantId}
      AND name = ANY(${sql.array([...names], 'text')})`);
}
