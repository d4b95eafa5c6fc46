import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { eventRow, toEvent, type InteractionEvent } from '../conversation.js';

export const interactionRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  media: z.string(),
  subtype: z.string(),
  state: z.enum(['open', 'done']),
  endpoint: z.string().nullable(),
  contact_id: z.string().nullable(),
  last_seq: z.number(),
  created_at: z.string(),
  updated_at: z.string(),
  finished_at: z.string().nullable(),
});
export type InteractionRow = z.infer<typeof interactionRow>;
const interactionColumns = sql.fragment`id, tenant_id, media, subtype, state, endpoint, contact_id,
  last_seq, created_at, updated_at, finished_at`;

export async function insertInteraction(
  tx: CommonQueryMethods,
  interaction: {
    id: string;
    tenantId: string;
    media: string;
    subtype: string;
    endpoint: string | null;
  },
): Promise<void> {
  await tx.query(sql.unsafe`
    INSERT INTO interactions (id, tenant_id, media, subtype, endpoint)
    VALUES (${interaction.id}, ${interaction.tenantId}, ${interaction.media}, ${interaction.subtype},
            ${interaction.endpoint})`);
}

export async function findInteraction(
  db: CommonQueryMethods,
  tenantId: string,
  id: string,
): Promise<InteractionRow | undefined> {
  const row = await db.maybeOne(sql.type(interactionRow)`
    SELECT ${interactionColumns} FROM interactions WHERE id = ${id} AND tenant_id = ${tenantId}`);
  return row ?? undefined;
}

/** The committed head (last seq) of each interaction: what sockets following it should have. */
export async function interactionHeads(
  db: CommonQueryMethods,
  ids: readonly string[],
): Promise<readonly { id: string; last_seq: number }[]> {
  if (ids.length === 0) return [];
  return db.any(sql.type(z.object({ id: z.string(), last_seq: z.number() }))`
    SELECT id, last_seq FROM interactions WHERE id = ANY(${sql.array([...ids], 'uuid')})`);
}

/**
 * Open interactions of the tenant, oldest first (the agent's work list): up to `limit`, after
 * the interaction `after` (a cursor: the last id of the previous page) in (created_at, id) order.
 */
export async function listOpenInteractions(
  db: CommonQueryMethods,
  tenantId: string,
  limit: number,
  after?: string,
): Promise<readonly InteractionRow[]> {
  // The cursor's own created_at, at full precision (the row's text form may round it).
  const cursor = after
    ? sql.fragment`AND (created_at, id) > (SELECT c.created_at, c.id FROM interactions c WHERE c.id = ${after})`
    : sql.fragment``;
  return db.any(sql.type(interactionRow)`
    SELECT ${interactionColumns} FROM interactions
    WHERE tenant_id = ${tenantId} AND state = 'open' ${cursor}
    ORDER BY created_at, id LIMIT ${limit}`);
}

export async function listContactInteractions(
  db: CommonQueryMethods,
  tenantId: string,
  contactId: string,
  limit: number,
): Promise<readonly InteractionRow[]> {
  return db.any(sql.type(interactionRow)`
    SELECT ${interactionColumns} FROM interactions
    WHERE tenant_id = ${tenantId} AND contact_id = ${contactId}
    ORDER BY created_at DESC LIMIT ${limit}`);
}

/** Marks an open interaction done; false when it was done already. */
export async function finishInteraction(tx: CommonQueryMethods, id: string): Promise<boolean> {
  const result = await tx.query(sql.unsafe`
    UPDATE interactions SET state = 'done', finished_at = now(), updated_at = now()
    WHERE id = ${id} AND state = 'open'`);
  return result.rowCount > 0;
}

export const sessionRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  interaction_id: z.string(),
  participant_id: z.string(),
  nickname: z.string(),
  first_name: z.string().nullable(),
  last_name: z.string().nullable(),
  email: z.string().nullable(),
  phone: z.string().nullable(),
  stream: z.string().nullable(),
  user_data: z.record(z.unknown()),
  state: z.enum(['open', 'ended']),
  created_at: z.string(),
  ended_at: z.string().nullable(),
});
export type SessionRow = z.infer<typeof sessionRow>;
const sessionColumns = sql.fragment`id, tenant_id, interaction_id, participant_id, nickname,
  first_name, last_name, email, phone, stream, user_data, state, created_at, ended_at`;

export interface NewSession {
  id: string;
  tenantId: string;
  interactionId: string;
  participantId: string;
  nickname: string;
  firstName: string | null;
  lastName: string | null;
  email: string | null;
  phone: string | null;
  stream: string | null;
  userData: Record<string, string>;
}

export async function insertSession(
  tx: CommonQueryMethods,
  session: NewSession,
): Promise<SessionRow> {
  return tx.one(sql.type(sessionRow)`
    INSERT INTO chat_sessions (id, tenant_id, interaction_id, participant_id, nickname, first_name,
                               last_name, email, phone, stream, user_data)
    VALUES (${session.id}, ${session.tenantId}, ${session.interactionId}, ${session.participantId},
            ${session.nickname}, ${session.firstName}, ${session.lastName}, ${session.email},
            ${session.phone}, ${session.stream}, ${sql.jsonb(session.userData)})
    RETURNING ${sessionColumns}`);
}

export async function findSession(
  db: CommonQueryMethods,
  id: string,
): Promise<SessionRow | undefined> {
  const row = await db.maybeOne(sql.type(sessionRow)`
    SELECT ${sessionColumns} FROM chat_sessions WHERE id = ${id}`);
  return row ?? undefined;
}

export async function findSessionByInteraction(
  db: CommonQueryMethods,
  interactionId: string,
): Promise<SessionRow | undefined> {
  const row = await db.maybeOne(sql.type(sessionRow)`
    SELECT ${sessionColumns} FROM chat_sessions WHERE interaction_id = ${interactionId}`);
  return row ?? undefined;
}

/** Ends the chat session of an interaction (the given one, when known). */
export async function endSessionOf(
  tx: CommonQueryMethods,
  interactionId: string,
  sessionId?: string,
): Promise<boolean> {
  const result = await tx.query(sql.unsafe`
    UPDATE chat_sessions SET state = 'ended', ended_at = now()
    WHERE interaction_id = ${interactionId} AND state = 'open'
      ${sessionId === undefined ? sql.fragment`` : sql.fragment`AND id = ${sessionId}`}`);
  return result.rowCount > 0;
}

// Endpoints

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

// Agents

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

/** Adds the agent to the interaction; false when already in it. */
export async function joinInteraction(
  tx: CommonQueryMethods,
  interactionId: string,
  agentId: string,
): Promise<boolean> {
  const result = await tx.query(sql.unsafe`
    INSERT INTO interaction_agents (interaction_id, agent_id) VALUES (${interactionId}, ${agentId})
    ON CONFLICT (interaction_id, agent_id) DO UPDATE SET left_at = NULL, joined_at = now()
    WHERE interaction_agents.left_at IS NOT NULL`);
  return result.rowCount > 0;
}

/** Open interactions the agent works on. */
export async function listAgentInteractionIds(
  db: CommonQueryMethods,
  agentId: string,
): Promise<readonly string[]> {
  return db.anyFirst(sql.type(z.object({ interaction_id: z.string() }))`
    SELECT ia.interaction_id FROM interaction_agents ia JOIN interactions i ON i.id = ia.interaction_id
    WHERE ia.agent_id = ${agentId} AND ia.left_at IS NULL AND i.state = 'open'`);
}

/** Open interactions each of these agents works on (joined, not left), in one query. */
export async function listAgentsInteractionIds(
  db: CommonQueryMethods,
  agentIds: readonly string[],
): Promise<readonly { agent_id: string; interaction_id: string }[]> {
  if (agentIds.length === 0) return [];
  return db.any(sql.type(z.object({ agent_id: z.string(), interaction_id: z.string() }))`
    SELECT ia.agent_id, ia.interaction_id
    FROM interaction_agents ia JOIN interactions i ON i.id = ia.interaction_id
    WHERE ia.agent_id = ANY(${sql.array([...agentIds], 'uuid')}) AND ia.left_at IS NULL
      AND i.state = 'open'`);
}

/**
 * Offers still open for these agents (offered, not expired), each with the
 * `interaction.offered` event that made it, in one query.
 */
export async function listPendingOffers(
  db: CommonQueryMethods,
  agentIds: readonly string[],
): Promise<readonly { agentId: string; event: InteractionEvent }[]> {
  if (agentIds.length === 0) return [];
  const rows = await db.any(sql.type(eventRow.extend({ agent_id: z.string() }))`
    SELECT i.assigned_agent_id AS agent_id, e.id, e.tenant_id, e.interaction_id, e.seq, e.type,
           e.payload, e.occurred_at
    FROM interactions i
    JOIN LATERAL (
      SELECT * FROM events e
      WHERE e.interaction_id = i.id AND e.type = 'interaction.offered'
      ORDER BY e.seq DESC LIMIT 1) e ON e.payload->'agent'->>'id' = i.assigned_agent_id::text
    WHERE i.assigned_agent_id = ANY(${sql.array([...agentIds], 'uuid')})
      AND i.routing_state = 'offered' AND i.state = 'open' AND i.offer_expires_at > now()`);
  return rows.map(row => ({ agentId: row.agent_id, event: toEvent(row) }));
}

// Contacts

export const contactRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  first_name: z.string().nullable(),
  last_name: z.string().nullable(),
  nickname: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type ContactRow = z.infer<typeof contactRow>;

export type IdentifierKind = 'email' | 'phone' | 'external';
export interface Identifier {
  kind: IdentifierKind;
  value: string;
}

/** The contact any of the identifiers belongs to (the oldest claim wins). */
export async function findContactId(
  tx: CommonQueryMethods,
  tenantId: string,
  identifiers: readonly Identifier[],
): Promise<string | undefined> {
  if (identifiers.length === 0) return undefined;
  const matches = identifiers.map(
    identifier => sql.fragment`(kind = ${identifier.kind} AND value = ${identifier.value})`,
  );
  const row = await tx.maybeOne(sql.type(z.object({ contact_id: z.string() }))`
    SELECT contact_id FROM contact_identifiers
    WHERE tenant_id = ${tenantId} AND (${sql.join(matches, sql.fragment` OR `)})
    ORDER BY created_at LIMIT 1`);
  return row?.contact_id;
}

export async function insertContact(
  tx: CommonQueryMethods,
  contact: {
    id: string;
    tenantId: string;
    firstName: string | null;
    lastName: string | null;
    nickname: string | null;
  },
): Promise<void> {
  await tx.query(sql.unsafe`
    INSERT INTO contacts (id, tenant_id, first_name, last_name, nickname)
    VALUES (${contact.id}, ${contact.tenantId}, ${contact.firstName}, ${contact.lastName}, ${contact.nickname})`);
}

/** Records identifiers for the contact; ones already claimed (by it or another) are kept. */
export async function addIdentifiers(
  tx: CommonQueryMethods,
  tenantId: string,
  contactId: string,
  identifiers: readonly Identifier[],
): Promise<void> {
  for (const identifier of identifiers) {
    await tx.query(sql.unsafe`
      INSERT INTO contact_identifiers (tenant_id, kind, value, contact_id)
      VALUES (${tenantId}, ${identifier.kind}, ${identifier.value}, ${contactId})
      ON CONFLICT (tenant_id, kind, value) DO NOTHING`);
  }
}

export async function findContact(
  db: CommonQueryMethods,
  tenantId: string,
  id: string,
): Promise<(ContactRow & { identifiers: Identifier[] }) | undefined> {
  const row = await db.maybeOne(sql.type(contactRow)`
    SELECT id, tenant_id, first_name, last_name, nickname, created_at, updated_at FROM contacts
    WHERE id = ${id} AND tenant_id = ${tenantId}`);
  if (!row) return undefined;
  const identifiers = await db.any(
    sql.type(z.object({ kind: z.enum(['email', 'phone', 'external']), value: z.string() }))`
      SELECT kind, value FROM contact_identifiers WHERE contact_id = ${id} ORDER BY kind, value`,
  );
  return { ...row, identifiers: [...identifiers] };
}

export async function setInteractionContact(
  tx: CommonQueryMethods,
  interactionId: string,
  contactId: string,
): Promise<void> {
  await tx.query(sql.unsafe`
    UPDATE interactions SET contact_id = ${contactId}, updated_at = now()
    WHERE id = ${interactionId} AND contact_id IS NULL`);
}

/** Whether the STARTED event was written; set once, under the interaction's lock. */
export async function markStarted(tx: CommonQueryMethods, interactionId: string): Promise<boolean> {
  const result = await tx.query(sql.unsafe`
    UPDATE interactions SET started_event_at = now()
    WHERE id = ${interactionId} AND started_event_at IS NULL`);
  return result.rowCount > 0;
}

/** Open interactions of the tenant flagged undelivered, most recent first (the undelivered view). */
export async function listUndeliveredInteractions(
  db: CommonQueryMethods,
  tenantId: string,
  limit: number,
): Promise<
  readonly (InteractionRow & { undelivered_at: string; undelivered_reason: string | null })[]
> {
  return db.any(sql.type(
    interactionRow.extend({
      undelivered_at: z.string(),
      undelivered_reason: z.string().nullable(),
    }),
  )`
    SELECT ${interactionColumns}, undelivered_at, undelivered_reason FROM interactions
    WHERE tenant_id = ${tenantId} AND undelivered_at IS NOT NULL AND state = 'open'
    ORDER BY undelivered_at DESC LIMIT ${limit}`);
}
