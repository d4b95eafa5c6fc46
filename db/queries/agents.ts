import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/** Queries on `agents`: a tenant's agents (the people on the desk). */

export const agentRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  username: z.string(),
  name: z.string(),
  enabled: z.boolean(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type AgentRow = z.infer<typeof agentRow>;
const agentColumns = sql.fragment`id, tenant_id, username, name, enabled, created_at, updated_at`;

/** Inserts an agent; undefined when the username is taken in the tenant. */
export async function insertAgent(
  db: CommonQueryMethods,
  agent: { id: string; tenantId: string; username: string; name: string },
): Promise<AgentRow | undefined> {
  const row = await db.maybeOne(sql.type(agentRow)`
    INSERT INTO agents (id, tenant_id, username, name)
    VALUES (${agent.id}, ${agent.tenantId}, ${agent.username}, ${agent.name})
    ON CONFLICT (tenant_id, username) DO NOTHING
    RETURNING ${agentColumns}`);
  return row ?? undefined;
}

export async function findAgent(
  db: CommonQueryMethods,
  tenantId: string,
  id: string,
): Promise<AgentRow | undefined> {
  const row = await db.maybeOne(sql.type(agentRow)`
    SELECT ${agentColumns} FROM agents WHERE id = ${id} AND tenant_id = ${tenantId}`);
  return row ?? undefined;
}

export async function findAgentByUsername(
  db: CommonQueryMethods,
  tenantId: string,
  username: string,
): Promise<AgentRow | undefined> {
  const row = await db.maybeOne(sql.type(agentRow)`
    SELECT ${agentColumns} FROM agents WHERE tenant_id = ${tenantId} AND username = ${username}`);
  return row ?? undefined;
}

export async function listAgents(
  db: CommonQueryMethods,
  tenantId: string,
): Promise<readonly AgentRow[]> {
  return db.any(sql.type(agentRow)`
    SELECT ${agentColumns} FROM agents WHERE tenant_id = ${tenantId} ORDER BY username`);
}

export async function updateAgent(
  db: CommonQueryMethods,
  tenantId: string,
  id: string,
  changes: { name?: string | undefined; enabled?: boolean | undefined },
): Promise<AgentRow | undefined> {
  const sets = [sql.fragment`updated_at = now()`];
  if (changes.name !== undefined) sets.push(sql.fragment`name = ${changes.name}`);
  if (changes.enabled !== undefined) sets.push(sql.fragment`enabled = ${changes.enabled}`);
  const row = await db.maybeOne(sql.type(agentRow)`
    UPDATE agents SET ${sql.join(sets, sql.fragment`, `)}
    WHERE id = ${id} AND tenant_id = ${tenantId} RETURNING ${agentColumns}`);
  return row ?? undefined;
}
