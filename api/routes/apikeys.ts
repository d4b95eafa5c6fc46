import { randomUUID } from 'node:crypto';
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import {
  findApiKey,
  insertApiKey,
  listApiKeys,
  updateApiKey,
  type ApiKeyRow,
} from '../../db/queries/api-keys.js';
import { findTenant } from '../../db/queries/tenants.js';
import { AppError } from '../../lib/errors.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import { hashApiKey } from '../auth/authenticator.js';
import { CLUSTER, PERMISSION_NAMES, type Permission } from '../auth/permissions.js';
import { assertTenant, isCluster, type Principal } from '../auth/principal.js';
import type { Api } from '../openapi.js';
import { tenantId } from '../schemas.js';

/**
 * API keys over the API (`/nexus/v3/apikeys`): tenants' and cluster keys, with their permissions
 * and rate limits.
 */

export interface ApiKeyRouteDeps {
  api: Api;
  db: DatabasePool;
  bus: InvalidationBus;
}

const permission = z.enum(PERMISSION_NAMES as [Permission, ...Permission[]], {
  errorMap: () => ({ message: `must be one of ${PERMISSION_NAMES.join(', ')}` }),
});
const capacity = z.number().int().min(1).max(1_000_000);
const frequency = z.number().int().min(1).max(86_400);
/** `false` or null: never expires; else an instant in the future. */
const expires = z.union([
  z.literal(false),
  z.null(),
  z
    .string()
    .datetime({ offset: true, message: 'must be an ISO-8601 date-time or false' })
    .transform(value => new Date(value))
    .refine(value => value.getTime() > Date.now(), 'must be in the future'),
]);

const createBody = z
  .object({
    enabled: z.boolean().default(true),
    tenant: z.union([z.literal('*'), tenantId]),
    name: z.string().trim().min(1, 'must not be empty').max(255),
    permissions: z
      .array(permission)
      .min(1)
      .max(PERMISSION_NAMES.length)
      .refine(list => new Set(list).size === list.length, 'must not repeat a permission'),
    capacity: capacity.default(120),
    frequency: frequency.default(60),
    expires: expires.default(false),
  })
  .strict()
  .superRefine((body, ctx) => {
    const cluster = body.permissions.includes(CLUSTER);
    if (body.tenant === '*' && !cluster) {
      ctx.addIssue({
        code: 'custom',
        path: ['permissions'],
        message: `a cluster key (tenant "*") must have ${CLUSTER}`,
      });
    }
    if (body.tenant !== '*' && cluster) {
      ctx.addIssue({
        code: 'custom',
        path: ['permissions'],
        message: `${CLUSTER} is only for cluster keys (tenant "*")`,
      });
    }
  })
  .openapi('ApiKeyCreate');

const updateBody = z
  .object({
    name: z.string().trim().min(1, 'must not be empty').max(255).optional(),
    enabled: z.boolean().optional(),
    capacity: capacity.optional(),
    frequency: frequency.optional(),
    expires: expires.optional(),
  })
  .strict()
  .refine(body => Object.keys(body).length > 0, 'must change at least one field')
  .openapi('ApiKeyUpdate');

const keyView = z
  .object({
    id: z.string().uuid(),
    tenant: z.string().describe('The tenant id, or "*" for a cluster key'),
    name: z.string(),
    permissions: z.array(z.string()),
    enabled: z.boolean(),
    created: z.string(),
    revoked: z.boolean(),
    expires: z.union([z.literal(false), z.string()]),
    createdby: z.string(),
    capacity: z.number().describe('Requests allowed per `frequency` seconds'),
    frequency: z.number(),
  })
  .openapi('ApiKey');

const createdKeyView = keyView
  .extend({
    key: z.string().describe('The key to send as `x-api-key`. Shown once: only its hash is kept.'),
  })
  .openapi('ApiKeyCreated');

const present = (row: ApiKeyRow): z.infer<typeof keyView> => ({
  id: row.id,
  tenant: row.tenant_id ?? '*',
  name: row.name,
  permissions: row.permissions,
  enabled: row.enabled,
  created: row.created_at,
  revoked: row.revoked_at !== null,
  expires: row.expires_at ?? false,
  createdby: row.created_by,
  capacity: row.capacity,
  frequency: row.frequency,
});

const idParams = z.object({ id: z.string().uuid('must be an API key id (a UUID)') });

/** Whether `principal` may see and manage `row`; other tenants' keys answer 404. */
function visible(principal: Principal, row: ApiKeyRow): boolean {
  if (row.tenant_id === null) return isCluster(principal);
  return principal.tenant === null || principal.tenant === row.tenant_id;
}

/**
 * `/nexus/v3/apikeys`: create (the key is in the answer, once), list, read, update, revoke.
 * The answers have the guide's fields. Tenant operators manage their tenant's keys; cluster keys
 * (`tenant: "*"`, `nexus:cluster:*`) need a cluster operator.
 */
export function apiKeyRoutes({ api, db, bus }: ApiKeyRouteDeps): void {
  const load = async (principal: Principal, id: string) => {
    const row = await findApiKey(db, id);
    if (!row || !visible(principal, row)) {
      throw new AppError('NEXUS_ERR_NOT_FOUND', `API key ${id} not found`);
    }
    return row;
  };

  api.route({
    method: 'post',
    path: '/nexus/v3/apikeys',
    tag: 'API keys',
    summary: 'Create an API key',
    description:
      'Answers the key once, in `key`; only its SHA-256 hash is stored. `tenant: "*"` with `nexus:cluster:*` makes a cluster key and needs a cluster operator.',
    auth: 'nexus:provisioning:*',
    body: createBody,
    responses: { 201: { description: 'Created', schema: createdKeyView } },
    async handle({ body, principal, res }) {
      if (body.tenant === '*') {
        if (!isCluster(principal)) {
          throw new AppError(
            'NEXUS_ERR_FORBIDDEN',
            'Only cluster operators create cluster keys',
            'body.tenant',
          );
        }
      } else {
        assertTenant(principal, body.tenant);
        if (!(await findTenant(db, body.tenant))) {
          throw new AppError(
            'NEXUS_ERR_VALIDATION',
            `body.tenant: no tenant ${body.tenant}`,
            'body.tenant',
          );
        }
      }
      const key = randomUUID();
      const row = await insertApiKey(db, {
        id: randomUUID(),
        tenantId: body.tenant === '*' ? null : body.tenant,
        name: body.name,
        permissions: body.permissions,
        enabled: body.enabled,
        expiresAt: body.expires || null,
        capacity: body.capacity,
        frequency: body.frequency,
        keyHash: hashApiKey(key),
        createdBy: principal.subject,
      });
      res.status(201).json({ ...present(row), key });
    },
  });

  // Before `/:id`, which would read "current" as an id.
  api.route({
    method: 'get',
    path: '/nexus/v3/apikeys/current',
    tag: 'API keys',
    summary: 'The API key presented',
    description: 'Describes the key sent in `x-api-key` (any permission).',
    auth: 'authenticated',
    responses: { 200: { description: 'The key', schema: keyView } },
    async handle({ principal, res }) {
      if (!principal.key) {
        throw new AppError(
          'NEXUS_ERR_VALIDATION',
          'header.x-api-key: send the API key to describe',
          'header.x-api-key',
        );
      }
      res.json(present(await load(principal, principal.key.id)));
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/apikeys',
    tag: 'API keys',
    summary: 'List API keys',
    description:
      'Newest first, never with the key itself. `tenant` filters (`*`: cluster keys); tenant operators see their tenant only. Page with `before` (the last id of the previous page).',
    auth: 'nexus:provisioning:*',
    query: z
      .object({
        tenant: z.union([z.literal('*'), tenantId]).optional(),
        limit: z.coerce.number().int().min(1).max(500).default(100),
        before: z.string().uuid().optional(),
      })
      .strict(),
    responses: {
      200: {
        description: 'Keys',
        schema: z.object({ items: z.array(keyView), next: z.string().nullable() }),
      },
    },
    async handle({ query, principal, res }) {
      let tenant: string | null | undefined =
        query.tenant === '*' ? null : (query.tenant ?? undefined);
      if (principal.tenant !== null) {
        if (query.tenant !== undefined) assertTenant(principal, query.tenant);
        tenant = principal.tenant;
      }
      const cursor = query.before ? await findApiKey(db, query.before) : undefined;
      const rows = await listApiKeys(
        db,
        { tenantId: tenant },
        {
          limit: query.limit,
          before: cursor ? { createdAt: cursor.created_at, id: cursor.id } : undefined,
        },
      );
      const last = rows.at(-1);
      res.json({
        items: rows.map(present),
        next: rows.length === query.limit && last ? last.id : null,
      });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/apikeys/:id',
    tag: 'API keys',
    summary: 'Read an API key',
    auth: 'nexus:provisioning:*',
    params: idParams,
    responses: { 200: { description: 'The key', schema: keyView } },
    async handle({ params, principal, res }) {
      res.json(present(await load(principal, params.id)));
    },
  });

  api.route({
    method: 'patch',
    path: '/nexus/v3/apikeys/:id',
    tag: 'API keys',
    summary: 'Update an API key',
    description:
      'Changes name, enabled, capacity, frequency or expiry. Permissions and tenant cannot change: create another key. Takes effect on every replica at once.',
    auth: 'nexus:provisioning:*',
    params: idParams,
    body: updateBody,
    responses: { 200: { description: 'The key', schema: keyView } },
    async handle({ params, body, principal, res }) {
      await load(principal, params.id);
      const row = await updateApiKey(db, params.id, {
        name: body.name,
        enabled: body.enabled,
        capacity: body.capacity,
        frequency: body.frequency,
        expiresAt: body.expires === undefined ? undefined : body.expires || null,
      });
      if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `API key ${params.id} not found`);
      await bus.publish({ kind: 'apikey', id: row.id });
      res.json(present(row));
    },
  });

  api.route({
    method: 'delete',
    path: '/nexus/v3/apikeys/:id',
    tag: 'API keys',
    summary: 'Revoke an API key',
    description:
      'Revokes the key for good; every replica refuses it at once. The record stays, with `revoked: true`.',
    auth: 'nexus:provisioning:*',
    params: idParams,
    responses: { 200: { description: 'The revoked key', schema: keyView } },
    async handle({ params, principal, res }) {
      await load(principal, params.id);
      const row = await updateApiKey(db, params.id, { revoke: true });
      if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `API key ${params.id} not found`);
      await bus.publish({ kind: 'apikey', id: row.id });
      res.json(present(row));
    },
  });
}
