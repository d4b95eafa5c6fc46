import { randomUUID } from 'node:crypto';
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { insertApiKey } from '../../db/queries/api-keys.js';
import {
  findTenant,
  insertTenant,
  listTenants,
  updateTenant,
  type TenantRow,
} from '../../db/queries/tenants.js';
import { AppError } from '../../lib/errors.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import type { SecretBox } from '../../lib/secrets.js';
import { httpUrl } from '../../domain/service-catalogue.js';
import { hashApiKey } from '../auth/authenticator.js';
import { assertTenant, isCluster } from '../auth/principal.js';
import { reply } from '../error-handler.js';
import { envelopeOf, type Api } from '../openapi.js';
import { tenantId } from '../schemas.js';

/**
 * Provisioning of tenants (`/nexus/v3/provisioning/tenants`), with each new tenant's chat API
 * key.
 */

export interface TenantRouteDeps {
  api: Api;
  db: DatabasePool;
  secrets: SecretBox;
  bus: InvalidationBus;
}

const text = (max: number) => z.string().trim().min(1, 'must not be empty').max(max);

const tenantFields = {
  name: text(255),
  type: text(64),
  backendurl: httpUrl.nullable(),
  username: text(255).nullable(),
  /** The tenant user's password for the backend: sealed at rest, never returned. */
  token: z.string().min(1).max(4_096).nullable(),
  genesystenantid: z.number().int().min(0).max(2_147_483_647).nullable(),
};

const createBody = z
  .object({
    id: tenantId,
    name: tenantFields.name,
    type: tenantFields.type.default('PureEngage'),
    backendurl: tenantFields.backendurl.optional(),
    username: tenantFields.username.optional(),
    token: tenantFields.token.optional(),
    genesystenantid: tenantFields.genesystenantid.optional(),
  })
  .strict()
  .openapi('TenantCreate');

const updateBody = z
  .object({
    name: tenantFields.name.optional(),
    type: tenantFields.type.optional(),
    backendurl: tenantFields.backendurl.optional(),
    username: tenantFields.username.optional(),
    token: tenantFields.token.optional(),
    genesystenantid: tenantFields.genesystenantid.optional(),
    enabled: z.boolean().optional(),
  })
  .strict()
  .refine(body => Object.keys(body).length > 0, 'must change at least one field')
  .openapi('TenantUpdate');

const tenantView = z
  .object({
    id: z.string(),
    name: z.string(),
    type: z.string(),
    backendurl: z.string().nullable(),
    username: z.string().nullable(),
    token: z.boolean().describe('Whether a token is set; the token itself is never returned'),
    genesystenantid: z.number().nullable(),
    enabled: z.boolean(),
    created: z.string(),
    createdby: z.string(),
    updated: z.string(),
  })
  .openapi('Tenant');

const idParams = z.object({ id: tenantId });

const present = (row: TenantRow): z.infer<typeof tenantView> => ({
  id: row.id,
  name: row.name,
  type: row.type,
  backendurl: row.backendurl,
  username: row.username,
  token: row.token_sealed !== null,
  genesystenantid: row.genesystenantid,
  enabled: row.enabled,
  created: row.created_at,
  createdby: row.created_by,
  updated: row.updated_at,
});

/** The key a new tenant gets for creating chats (the guide's `xapikey`). */
export const TENANT_CHAT_KEY_PERMISSIONS = ['nexus:consumer:chat'] as const;

/**
 * `/nexus/v3/provisioning/tenants`: create (answering the tenant's chat API key, as the guide),
 * list, read, update, disable. A tenant-scoped operator may create and manage only its own tenant;
 * enabling and disabling need a cluster operator.
 */
export function tenantRoutes({ api, db, secrets, bus }: TenantRouteDeps): void {
  const seal = (id: string, token: string | null | undefined) =>
    token === undefined ? undefined : token === null ? null : secrets.seal(token, `tenant:${id}`);

  api.route({
    method: 'post',
    path: '/nexus/v3/provisioning/tenants',
    tag: 'Tenants',
    summary: 'Provision a tenant',
    description:
      'Creates the tenant and a tenant API key with `nexus:consumer:chat` for creating chats, returned once as `xapikey`.',
    auth: 'nexus:provisioning:*',
    body: createBody,
    responses: {
      201: {
        description: 'Created',
        schema: envelopeOf(z.object({ xapikey: z.string() })),
      },
    },
    async handle({ body, principal, res }) {
      assertTenant(principal, body.id);
      const xapikey = randomUUID();
      await db.transaction(async tx => {
        const created = await insertTenant(tx, {
          id: body.id,
          name: body.name,
          type: body.type,
          backendurl: body.backendurl ?? null,
          username: body.username ?? null,
          tokenSealed: seal(body.id, body.token) ?? null,
          genesystenantid: body.genesystenantid ?? null,
          createdBy: principal.subject,
        });
        if (!created) {
          throw new AppError(
            'NEXUS_ERR_TENANT_EXISTS',
            `A tenant with id ${body.id} already exists`,
            'body.id',
          );
        }
        await insertApiKey(tx, {
          id: randomUUID(),
          tenantId: body.id,
          name: `Chat API key for ${body.name}`.slice(0, 255),
          permissions: TENANT_CHAT_KEY_PERMISSIONS,
          enabled: true,
          expiresAt: null,
          capacity: 120,
          frequency: 60,
          keyHash: hashApiKey(xapikey),
          createdBy: principal.subject,
        });
      });
      reply(res, 201, { xapikey });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/provisioning/tenants',
    tag: 'Tenants',
    summary: 'List tenants',
    description: 'Cluster operators see every tenant, ordered by id; others their own.',
    auth: 'nexus:provisioning:*',
    query: z
      .object({
        limit: z.coerce.number().int().min(1).max(500).default(100),
        after: tenantId.optional(),
      })
      .strict(),
    responses: {
      200: {
        description: 'Tenants',
        schema: envelopeOf(z.object({ items: z.array(tenantView), next: z.string().nullable() })),
      },
    },
    async handle({ query, principal, res }) {
      const rows = await listTenants(db, {
        limit: query.limit,
        after: query.after,
        only: principal.tenant ?? undefined,
      });
      const last = rows.at(-1);
      reply(res, 200, {
        items: rows.map(present),
        next: rows.length === query.limit && last ? last.id : null,
      });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/provisioning/tenants/:id',
    tag: 'Tenants',
    summary: 'Read a tenant',
    auth: 'nexus:provisioning:*',
    params: idParams,
    responses: { 200: { description: 'The tenant', schema: envelopeOf(tenantView) } },
    async handle({ params, principal, res }) {
      assertTenant(principal, params.id);
      const row = await findTenant(db, params.id);
      if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `tenant ${params.id} not found`);
      reply(res, 200, present(row));
    },
  });

  api.route({
    method: 'patch',
    path: '/nexus/v3/provisioning/tenants/:id',
    tag: 'Tenants',
    summary: 'Update a tenant',
    description: 'Changes the fields given. `enabled` needs a cluster operator.',
    auth: 'nexus:provisioning:*',
    params: idParams,
    body: updateBody,
    responses: { 200: { description: 'The tenant', schema: envelopeOf(tenantView) } },
    async handle({ params, body, principal, res }) {
      assertTenant(principal, params.id);
      if (body.enabled !== undefined && !isCluster(principal)) {
        throw new AppError(
          'NEXUS_ERR_FORBIDDEN',
          'Only cluster operators enable or disable tenants',
          'body.enabled',
        );
      }
      const { token, ...changes } = body;
      const row = await updateTenant(db, params.id, {
        ...changes,
        tokenSealed: seal(params.id, token),
      });
      if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `tenant ${params.id} not found`);
      await bus.publish({ kind: 'tenant', id: params.id });
      reply(res, 200, present(row));
    },
  });

  api.route({
    method: 'delete',
    path: '/nexus/v3/provisioning/tenants/:id',
    tag: 'Tenants',
    summary: 'Disable a tenant',
    description:
      'Disables the tenant: its API keys stop working on every replica at once, its agents\' and customers\' open sockets are closed and its customers can no longer write (`NEXUS_ERR_TENANT_DISABLED`). Its data stays; `PATCH {"enabled": true}` enables it again. Needs a cluster operator.',
    auth: 'nexus:cluster:*',
    params: idParams,
    responses: { 200: { description: 'The disabled tenant', schema: envelopeOf(tenantView) } },
    async handle({ params, res }) {
      const row = await updateTenant(db, params.id, { enabled: false });
      if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `tenant ${params.id} not found`);
      await bus.publish({ kind: 'tenant', id: params.id });
      reply(res, 200, present(row));
    },
  });
}
