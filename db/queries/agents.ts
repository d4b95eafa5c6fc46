import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/** Queries on `agents`: a tenant's agents (the people on the desk) and their presence. */

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

/**
 * Sets an agent's presence: ready or not (a change to ready restarts its idle time), its
 * capacity, or both (an omitted one stays as it is). Answers what they are now.
 */
export async function setAgentPresence(
  db: CommonQueryMethods,
  tenantId: string,
  agentId: string,
  change: { ready?: boolean | undefined; capacity?: number | undefined },
): Promise<{ ready: boolean; capacity: number }> {
  return db.one(sql.type(z.object({ ready: z.boolean(), capacity: z.number() }))`
    UPDATE agents SET
      ready = coalesce(${change.ready ?? null}::boolean, ready),
      capacity = coalesce(${change.capacity ?? null}::int, capacity),
      idle_since = CASE WHEN ${change.ready ?? null}::boolean AND NOT ready THEN now() ELSE idle_since END,
      updated_at = now()
    WHERE id = ${agentId} AND tenant_id = ${tenantId}
    RETURNING ready, capacity`);
}

/** Which of these ids are agents of the tenant. */
export async function existingAgentIds(
  db: CommonQueryMethods,
  tenantId: string,
  ids: readonly string[],
): Promise<readonly string[]> {
  return db.anyFirst(sql.type(z.object({ id: z.string() }))`
    SELECT id FROM agents WHERE tenant_id = ${tenantId} AND id = ANY(${sql.array([...ids], 'uuid')})`);
}

/**
 * The statements that read or write an agent's password hash (`agents.password_hash`). Nothing
 * else selects the column: every other query of `agents` names its columns without it, so no
 * answer can carry it.
 */

const passwordlessColumns = sql.fragment`id, tenant_id, username, name, enabled, created_at, updated_at`;

/**
 * Inserts an agent with its password hash (null: no password) in one statement; undefined when
 * the username is taken in the tenant.
 */
export async function insertAgentWithPassword(
  db: CommonQueryMethods,
  agent: {
    id: string;
    tenantId: string;
    username: string;
    name: string;
    passwordHash: string | null;
  },
): Promise<AgentRow | undefined> {
  const row = await db.maybeOne(sql.type(agentRow)`
    INSERT INTO agents (id, tenant_id, username, name, password_hash)
    VALUES (${agent.id}, ${agent.tenantId}, ${agent.username}, ${agent.name}, ${agent.passwordHash})
    ON CONFLICT (tenant_id, username) DO NOTHING
    RETURNING ${passwordlessColumns}`);
  return row ?? undefined;
}

/** Sets (or with null removes) an agent's password hash; false when there is no such agent. */
export async function setAgentPasswordHash(
  db: CommonQueryMethods,
  tenantId: string,
  id: string,
  passwordHash: string | null,
): Promise<boolean> {
  const row = await db.maybeOne(sql.type(z.object({ id: z.string() }))`
    UPDATE agents SET password_hash = ${passwordHash}, updated_at = now()
    WHERE id = ${id} AND tenant_id = ${tenantId} RETURNING id`);
  return row !== null;
}

const signInRow = agentRow.extend({
  password_hash: z.string().nullable(),
  tenant_enabled: z.boolean(),
});
export type AgentSignInRow = z.infer<typeof signInRow>;

/** What a sign-in checks, in one read: the agent, its password hash and its tenant's state. */
export async function findAgentForSignIn(
  db: CommonQueryMethods,
  tenantId: string,
  username: string,
): Promise<AgentSignInRow | undefined> {
  const row = await db.maybeOne(sql.type(signInRow)`
    SELECT a.id, a.tenant_id, a.username, a.name, a.enabled, a.created_at, a.updated_at,
           a.password_hash, t.enabled AS tenant_enabled
    FROM agents a JOIN tenants t ON t.id = a.tenant_id
    WHERE a.tenant_id = ${tenantId} AND a.username = ${username}`);
  return row ?? undefined;
}
