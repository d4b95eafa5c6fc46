import { randomUUID } from 'node:crypto';
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import {
  findAgent,
  insertAgentWithPassword,
  listAgents,
  setAgentPasswordHash,
  updateAgent,
  type AgentRow,
} from '../../db/queries/agents.js';
import { findContact } from '../../db/queries/contacts.js';
import { deleteEndpoint, listEndpoints, upsertEndpoint } from '../../db/queries/endpoints.js';
import { listContactInteractions } from '../../db/queries/interactions.js';
import { findTenant } from '../../db/queries/tenants.js';
import { AppError } from '../../lib/errors.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import { hashPassword } from '../../lib/passwords.js';
import { assertTenant, tenantOf, type Principal } from '../auth/principal.js';
import type { TokenService } from '../auth/tokens.js';
import { reply } from '../error-handler.js';
import { envelopeOf, type Api } from '../openapi.js';
import { presentInteraction } from '../presenters.js';
import { tenantId } from '../schemas.js';

/**
 * Provisioning of a tenant's agents (with their API tokens), the routing endpoints a chat may
 * name, and contacts with their interaction history.
 */

const agentView = z
  .object({
    id: z.string().uuid(),
    tenant: z.string(),
    username: z.string(),
    name: z.string(),
    enabled: z.boolean(),
    created: z.string(),
    updated: z.string(),
  })
  .openapi('Agent');

const presentAgent = (row: AgentRow): z.infer<typeof agentView> => ({
  id: row.id,
  tenant: row.tenant_id,
  username: row.username,
  name: row.name,
  enabled: row.enabled,
  created: row.created_at,
  updated: row.updated_at,
});

const username = z
  .string()
  .trim()
  .regex(/^[\w.@+-]{1,128}$/, 'must be 1-128 letters, digits or "_", ".", "@", "+", "-"');
const agentId = z.object({ id: z.string().uuid('must be an agent id') });

/**
 * An agent's password as an operator sets it: 10 to 256 characters (code points), not only
 * whitespace. Stored as a scrypt hash (lib/passwords.ts), never shown.
 */
export const agentPassword = z
  .string()
  .superRefine((value, ctx) => {
    const length = [...value].length;
    const problem =
      length < 10
        ? 'must be at least 10 characters'
        : length > 256
          ? 'must be at most 256 characters'
          : value.trim() === ''
            ? 'must not be only whitespace'
            : undefined;
    if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
  })
  .openapi({ format: 'password', minLength: 10, maxLength: 256 });

/**
 * Agents (create, list, read, update, disable; issue tokens for the agent API), routing
 * endpoints a chat may name, and contacts with their history. Tenant-scoped: operators of the
 * tenant, or cluster operators with `x-ccid`.
 */
export function agentRoutes({
  api,
  db,
  tokens,
  bus,
}: {
  api: Api;
  db: DatabasePool;
  tokens: TokenService;
  /** Tells every replica an agent changed: a disabled agent's open sockets are closed. */
  bus: InvalidationBus;
}): void {
  const loadAgent = async (principal: Principal, id: string) => {
    const tenant = tenantOf(principal);
    const row = await findAgent(db, tenant, id);
    if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `agent ${id} not found`);
    return row;
  };

  api.route({
    method: 'post',
    path: '/nexus/v3/agents',
    tag: 'Agents',
    summary: 'Create an agent',
    description:
      'In the tenant of the credentials (`x-ccid` for cluster credentials). With `password`, the agent may sign in (`POST /auth/v3/agent/token`); the password is stored hashed, never shown.',
    auth: 'nexus:provisioning:*',
    body: z
      .object({
        username,
        name: z.string().trim().min(1).max(255),
        password: agentPassword.optional(),
      })
      .strict()
      .openapi('AgentCreate'),
    responses: { 201: { description: 'Created', schema: envelopeOf(agentView) } },
    async handle({ body, principal, res }) {
      const tenant = tenantOf(principal);
      if (!(await findTenant(db, tenant))) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `tenant ${tenant} not found`);
      }
      const row = await insertAgentWithPassword(db, {
        id: randomUUID(),
        tenantId: tenant,
        username: body.username,
        name: body.name,
        passwordHash: body.password === undefined ? null : await hashPassword(body.password),
      });
      if (!row) {
        throw new AppError(
          'NEXUS_ERR_AGENT_EXISTS',
          `Agent ${body.username} exists in tenant ${tenant}`,
          'body.username',
        );
      }
      reply(res, 201, presentAgent(row));
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/agents',
    tag: 'Agents',
    summary: "List the tenant's agents",
    auth: 'nexus:provisioning:*',
    responses: {
      200: { description: 'Agents', schema: envelopeOf(z.object({ items: z.array(agentView) })) },
    },
    async handle({ principal, res }) {
      reply(res, 200, { items: (await listAgents(db, tenantOf(principal))).map(presentAgent) });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/agents/:id',
    tag: 'Agents',
    summary: 'Read an agent',
    auth: 'nexus:provisioning:*',
    params: agentId,
    responses: { 200: { description: 'The agent', schema: envelopeOf(agentView) } },
    async handle({ params, principal, res }) {
      reply(res, 200, presentAgent(await loadAgent(principal, params.id)));
    },
  });

  api.route({
    method: 'patch',
    path: '/nexus/v3/agents/:id',
    tag: 'Agents',
    summary: 'Update or disable an agent',
    description:
      "`enabled: false` stops the agent token and the agent API for this agent, and closes the agent's open sockets on every replica (each is told `expired` first).",
    auth: 'nexus:provisioning:*',
    params: agentId,
    body: z
      .object({
        name: z.string().trim().min(1).max(255).optional(),
        enabled: z.boolean().optional(),
      })
      .strict()
      .refine(body => Object.keys(body).length > 0, 'must change at least one field'),
    responses: { 200: { description: 'The agent', schema: envelopeOf(agentView) } },
    async handle({ params, body, principal, res }) {
      await loadAgent(principal, params.id);
      const row = await updateAgent(db, tenantOf(principal), params.id, body);
      if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `agent ${params.id} not found`);
      await bus.publish({ kind: 'agent', tenant: row.tenant_id, id: row.id });
      reply(res, 200, presentAgent(row));
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/agents/:id/tokens',
    tag: 'Agents',
    summary: 'Issue an agent token',
    description:
      'A token for the agent API and the agent socket (`Authorization: Bearer <token>`), valid `NEXUS_AGENT_TOKEN_TTL_SECONDS` (12 hours by default). A disabled agent cannot use it.',
    auth: 'nexus:provisioning:*',
    params: agentId,
    responses: {
      201: {
        description: 'Issued',
        schema: envelopeOf(z.object({ token: z.string(), expiresAt: z.string() })),
      },
    },
    async handle({ params, principal, res }) {
      const agent = await loadAgent(principal, params.id);
      if (!agent.enabled) {
        throw new AppError('NEXUS_ERR_FORBIDDEN', 'The agent is disabled', 'params.id');
      }
      reply(res, 201, await tokens.signAgent(agent.id, agent.tenant_id));
    },
  });

  api.route({
    method: 'put',
    path: '/nexus/v3/agents/:id/password',
    tag: 'Agents',
    summary: "Set an agent's password",
    description:
      'The agent may then sign in with it (`POST /auth/v3/agent/token`). 10 to 256 characters, not only whitespace. Tokens already issued stay valid until they expire.',
    auth: 'nexus:provisioning:*',
    params: agentId,
    body: z.object({ password: agentPassword }).strict().openapi('AgentPassword'),
    responses: { 204: { description: 'Set' } },
    async handle({ params, body, principal, res }) {
      const tenant = tenantOf(principal);
      if (!(await setAgentPasswordHash(db, tenant, params.id, await hashPassword(body.password)))) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `agent ${params.id} not found`);
      }
      res.status(204).end();
    },
  });

  api.route({
    method: 'delete',
    path: '/nexus/v3/agents/:id/password',
    tag: 'Agents',
    summary: "Remove an agent's password",
    description:
      'The agent can no longer sign in with a password; tokens already issued stay valid until they expire (disable the agent to stop them).',
    auth: 'nexus:provisioning:*',
    params: agentId,
    responses: { 204: { description: 'Removed' } },
    async handle({ params, principal, res }) {
      if (!(await setAgentPasswordHash(db, tenantOf(principal), params.id, null))) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `agent ${params.id} not found`);
      }
      res.status(204).end();
    },
  });

  const endpointName = z.object({
    ccid: tenantId,
    name: z
      .string()
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/,
        'must be 1-128 letters, digits, "_", ".", ":" or "-"',
      ),
  });
  const endpointView = z
    .object({
      tenant: z.string(),
      name: z.string(),
      description: z.string().nullable(),
      created: z.string(),
    })
    .openapi('Endpoint');

  api.route({
    method: 'put',
    path: '/nexus/v3/provisioning/endpoints/:ccid/:name',
    tag: 'Endpoints',
    summary: 'Create or replace a chat endpoint',
    description:
      'A routing endpoint a chat may name in `data[endpoint]` (the widget config `endpoint`). 201 when created, 200 when replaced.',
    auth: 'nexus:provisioning:*',
    params: endpointName,
    body: z.object({ description: z.string().trim().max(1_024).optional() }).strict(),
    responses: {
      200: { description: 'Replaced', schema: envelopeOf(endpointView) },
      201: { description: 'Created', schema: envelopeOf(endpointView) },
    },
    async handle({ params, body, principal, res }) {
      assertTenant(principal, params.ccid);
      if (!(await findTenant(db, params.ccid))) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `tenant ${params.ccid} not found`);
      }
      const row = await upsertEndpoint(db, {
        tenantId: params.ccid,
        name: params.name,
        description: body.description ?? null,
      });
      reply(res, row.created ? 201 : 200, {
        tenant: row.tenant_id,
        name: row.name,
        description: row.description,
        created: row.created_at,
      });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/provisioning/endpoints/:ccid',
    tag: 'Endpoints',
    summary: "List the tenant's chat endpoints",
    auth: 'nexus:provisioning:*',
    params: z.object({ ccid: tenantId }),
    responses: {
      200: {
        description: 'Endpoints',
        schema: envelopeOf(z.object({ items: z.array(endpointView) })),
      },
    },
    async handle({ params, principal, res }) {
      assertTenant(principal, params.ccid);
      const rows = await listEndpoints(db, params.ccid);
      reply(res, 200, {
        items: rows.map(row => ({
          tenant: row.tenant_id,
          name: row.name,
          description: row.description,
          created: row.created_at,
        })),
      });
    },
  });

  api.route({
    method: 'delete',
    path: '/nexus/v3/provisioning/endpoints/:ccid/:name',
    tag: 'Endpoints',
    summary: 'Delete a chat endpoint',
    auth: 'nexus:provisioning:*',
    params: endpointName,
    responses: {
      200: { description: 'Deleted', schema: envelopeOf(z.object({ deleted: z.literal(true) })) },
    },
    async handle({ params, principal, res }) {
      assertTenant(principal, params.ccid);
      if (!(await deleteEndpoint(db, params.ccid, params.name))) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `endpoint ${params.name} not found`);
      }
      reply(res, 200, { deleted: true });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/contacts/:id',
    tag: 'Contacts',
    summary: 'Read a contact with its identifiers and interactions',
    description:
      'Agents of the tenant, and cluster operators with `x-ccid`. Interactions newest first (up to 50).',
    auth: 'nexus:agent:*',
    params: z.object({ id: z.string().uuid('must be a contact id') }),
    responses: { 200: { description: 'The contact' } },
    async handle({ params, principal, res }) {
      const tenant = tenantOf(principal);
      const contact = await findContact(db, tenant, params.id);
      if (!contact) throw new AppError('NEXUS_ERR_NOT_FOUND', `contact ${params.id} not found`);
      const interactions = await listContactInteractions(db, tenant, params.id, 50);
      reply(res, 200, {
        id: contact.id,
        firstName: contact.first_name,
        lastName: contact.last_name,
        nickname: contact.nickname,
        identifiers: contact.identifiers,
        created: contact.created_at,
        interactions: interactions.map(presentInteraction),
      });
    },
  });
}
