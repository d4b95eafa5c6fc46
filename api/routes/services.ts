import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import {
  deleteService,
  findService,
  listServices,
  upsertService,
  type ServiceRow,
} from '../../db/queries/services.js';
import { findTenant } from '../../db/queries/tenants.js';
import { serviceSecretContext } from '../../db/service-directory.js';
import { EgressBlockedError, type EgressRules } from '../../lib/egress.js';
import { AppError } from '../../lib/errors.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import type { Logger } from '../../lib/logger.js';
import { describeSecret, type SecretBox } from '../../lib/secrets.js';
import { syncWebhookTarget } from '../../db/webhook-log.js';
import { targetEventTypes } from '../../domain/webhook-payload.js';
import {
  AI_CONNECTOR_TARGET,
  WEBHOOK_TARGET_PREFIX,
  SERVICE_NAMES,
  drawWebhookSecret,
  serviceBodySchema,
  serviceShape,
  type ServiceShape,
} from '../../domain/service-catalogue.js';
import { assertTenant, type Principal } from '../auth/principal.js';
import { reply } from '../error-handler.js';
import { envelopeOf, type Api } from '../openapi.js';
import { parseInput } from '../validate.js';
import { tenantId } from '../schemas.js';

/**
 * Provisioning of a tenant's NexusServices (`/nexus/v3/provisioning/services`): bodies validated
 * per service from the catalogue, secrets sealed, outbound URLs checked against the egress rules,
 * and webhook targets kept in step with their services.
 */

export interface ServiceRouteDeps {
  api: Api;
  db: DatabasePool;
  secrets: SecretBox;
  bus: InvalidationBus;
  log: Logger;
  /** How long a replaced webhook target secret still signs. */
  webhookSecretGraceMs: number;
  /** NEXUS_EGRESS_ALLOW's rules: a saved outbound URL the hub could never reach is refused. */
  egress: EgressRules;
}

const serviceBody = z
  .object({
    url: z.string().optional(),
    data: z.record(z.unknown()).optional(),
    secret: z.union([z.record(z.unknown()), z.string()]).optional(),
  })
  .passthrough()
  .openapi('ServiceDefinition', {
    description: `The body depends on the service: ${SERVICE_NAMES.join(', ')} (docs/provisioning.md).`,
  });

const serviceUpdate = z
  .object({
    url: z.string().optional(),
    data: z.record(z.unknown()).optional(),
    secret: z.union([z.record(z.unknown()), z.string()]).optional(),
  })
  .strict()
  .refine(body => Object.keys(body).length > 0, 'must change at least one field')
  .openapi('ServiceUpdate', {
    description:
      'The fields to change; the service then must be valid as a whole, as for PUT. Without `secret`, the stored secret is kept.',
  });

const serviceView = z
  .object({
    tenant: z.string(),
    name: z.string(),
    url: z.string().nullable(),
    data: z.record(z.unknown()),
    secret: z
      .unknown()
      .describe('Which secret fields are set (`true`); secret values are never returned'),
    version: z.number(),
    created: z.string(),
    updated: z.string(),
    updatedby: z.string(),
  })
  .openapi('Service');

const tenantParams = z.object({ ccid: tenantId });
const serviceParams = z.object({ ccid: tenantId, serviceName: z.string().max(128) });

/**
 * `/nexus/v3/provisioning/services/{ccid}/{ServiceName}`: the guide's NexusServices. Create or
 * replace (POST as the guide, or PUT), update (PATCH: the fields given, the stored secret kept when
 * none is), read, list, delete. Bodies are validated per service;
 * secrets are sealed at rest and reads only say which secret fields are set. The AI connector's
 * target always signs (see {@link connectorSecret}). Every change is
 * pushed to every replica's cache (workers read services through db/service-directory.ts).
 */
export function serviceRoutes({
  api,
  db,
  secrets,
  bus,
  log,
  webhookSecretGraceMs,
  egress,
}: ServiceRouteDeps): void {
  const shapeOf = (name: string): ServiceShape => {
    const shape = serviceShape(name);
    if (!shape) {
      throw new AppError(
        'NEXUS_ERR_VALIDATION',
        `params.serviceName: unknown service ${name}; known services: ${SERVICE_NAMES.join(', ')}`,
        'params.serviceName',
      );
    }
    return shape;
  };

  /** A row's sealed secret, opened; one the keys cannot open is a 500, logged. */
  const openSecret = (row: ServiceRow, sealed: string): unknown => {
    try {
      return secrets.open(sealed, serviceSecretContext(row.tenant_id, row.name));
    } catch (error) {
      log.error({ err: error, tenant: row.tenant_id, service: row.name }, 'unreadable secret');
      throw new AppError('NEXUS_ERR_SECRET_UNREADABLE', undefined, undefined, { cause: error });
    }
  };

  const present = (row: ServiceRow): z.infer<typeof serviceView> => ({
    tenant: row.tenant_id,
    name: row.name,
    url: row.url,
    data: row.data,
    secret: row.secret_sealed ? describeSecret(openSecret(row, row.secret_sealed)) : {},
    version: row.version,
    created: row.created_at,
    updated: row.updated_at,
    updatedby: row.updated_by,
  });

  const tenantFor = async (principal: Principal, ccid: string) => {
    assertTenant(principal, ccid);
    if (principal.ccid !== undefined && principal.ccid !== ccid && principal.tenant === null) {
      throw new AppError(
        'NEXUS_ERR_VALIDATION',
        'header.x-ccid: names another tenant than the path',
        'header.x-ccid',
      );
    }
    if (!(await findTenant(db, ccid))) {
      throw new AppError('NEXUS_ERR_NOT_FOUND', `tenant ${ccid} not found`);
    }
  };

  /**
   * Saves a whole service body the way PUT does, in one transaction: `bodyOf` builds the body
   * from the stored row (read with the lock); it is validated against the service's shape, its
   * outbound URLs checked against the egress rules, its secret sealed, its webhook target kept
   * in step (a replaced secret keeps signing for the grace period), and every replica told.
   * `keepSecret` stores the row's sealed secret as it is: no re-seal, no rotation.
   */
  const save = async (
    principal: Principal,
    { ccid, serviceName }: z.infer<typeof serviceParams>,
    bodyOf: (before: ServiceRow | undefined) => { input: unknown; keepSecret?: boolean },
  ): Promise<{ row: ServiceRow; created: boolean }> => {
    const shape = shapeOf(serviceName);
    await tenantFor(principal, ccid);
    const context = serviceSecretContext(ccid, serviceName);
    const saved = await db.transaction(async tx => {
      const before = await findService(tx, ccid, serviceName, { lock: true });
      const { input, keepSecret = false } = bodyOf(before);
      const body: {
        url?: string;
        data?: Record<string, unknown>;
        secret?: Record<string, unknown>;
      } = parseInput(serviceBodySchema(shape), input, 'body');
      for (const { field, url } of outboundUrls(body, 'body')) {
        try {
          egress.checkSavedUrl(url);
        } catch (error) {
          if (!(error instanceof EgressBlockedError)) throw error;
          throw new AppError(
            'NEXUS_ERR_EGRESS_BLOCKED',
            `${field}: ${error.message}; the hub could never reach it (NEXUS_EGRESS_ALLOW lists the non-public hosts, addresses and ranges it may reach)`,
            field,
            { cause: error },
          );
        }
      }
      const secret =
        keepSecret && before?.secret_sealed
          ? { sealed: before.secret_sealed, keyId: before.secret_key_id, kept: true }
          : body.secret && Object.keys(body.secret).length > 0
            ? {
                sealed: secrets.seal(body.secret, context),
                keyId: secrets.currentKeyId,
                kept: false,
              }
            : serviceName === AI_CONNECTOR_TARGET
              ? connectorSecret(secrets, before, context)
              : null;
      const result = await upsertService(tx, {
        tenantId: ccid,
        name: serviceName,
        url: body.url ?? null,
        data: body.data ?? {},
        secretSealed: secret?.sealed ?? null,
        secretKeyId: secret?.keyId ?? null,
        updatedBy: principal.subject,
      });
      if (serviceName.startsWith(WEBHOOK_TARGET_PREFIX)) {
        // A replaced secret keeps signing (beside the new one) for the grace period.
        const rotated =
          before?.secret_sealed &&
          !secret?.kept &&
          !sameSecret(secrets, before.secret_sealed, body.secret, context);
        await syncWebhookTarget(tx, {
          tenantId: ccid,
          name: serviceName,
          eventTypes: targetEventTypes(body.data ?? {}),
          previous: rotated
            ? {
                sealed: before.secret_sealed as string,
                keyId: before.secret_key_id,
                graceMs: webhookSecretGraceMs,
              }
            : undefined,
        });
      }
      return result;
    });
    await bus.publish({ kind: 'service', tenant: ccid, name: serviceName });
    return saved;
  };

  for (const method of ['post', 'put'] as const) {
    api.route({
      method,
      path: '/nexus/v3/provisioning/services/:ccid/:serviceName',
      tag: 'Services',
      summary: method === 'post' ? 'Create or replace a service' : 'Replace a service',
      description: `Known services: ${SERVICE_NAMES.join(', ')}. Answers 201 when created, 200 when replaced. ${AI_CONNECTOR_TARGET} always signs: saved without a secret, it keeps the one it has or gets one the hub draws (read with GET …/${AI_CONNECTOR_TARGET}/secret).`,
      auth: 'nexus:provisioning:*',
      params: serviceParams,
      body: serviceBody,
      responses: {
        200: { description: 'Replaced', schema: envelopeOf(serviceView) },
        201: { description: 'Created', schema: envelopeOf(serviceView) },
      },
      async handle({ params, req, principal, res }) {
        const { row, created } = await save(principal, params, () => ({ input: req.body }));
        reply(res, created ? 201 : 200, present(row));
      },
    });
  }

  api.route({
    method: 'patch',
    path: '/nexus/v3/provisioning/services/:ccid/:serviceName',
    tag: 'Services',
    summary: 'Update a service',
    description:
      'Changes the fields given (`data` is replaced whole, not merged) and keeps the others, the stored `secret` included when none is given; the result is validated and saved as by PUT.',
    auth: 'nexus:provisioning:*',
    params: serviceParams,
    body: serviceUpdate,
    responses: { 200: { description: 'Updated', schema: envelopeOf(serviceView) } },
    async handle({ params, body, principal, res }) {
      const { row } = await save(principal, params, before => {
        if (!before) {
          throw new AppError('NEXUS_ERR_NOT_FOUND', `service ${params.serviceName} not found`);
        }
        const url = body.url ?? before.url;
        const secret =
          body.secret ??
          (before.secret_sealed ? openSecret(before, before.secret_sealed) : undefined);
        return {
          input: {
            ...(url === null ? {} : { url }),
            data: body.data ?? before.data,
            ...(secret === undefined ? {} : { secret }),
          },
          keepSecret: body.secret === undefined,
        };
      });
      reply(res, 200, present(row));
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/provisioning/services/:ccid',
    tag: 'Services',
    summary: "List a tenant's services",
    auth: 'nexus:provisioning:*',
    params: tenantParams,
    responses: {
      200: {
        description: 'Services',
        schema: envelopeOf(z.object({ items: z.array(serviceView) })),
      },
    },
    async handle({ params, principal, res }) {
      await tenantFor(principal, params.ccid);
      const rows = await listServices(db, params.ccid);
      reply(res, 200, { items: rows.map(present) });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/provisioning/services/:ccid/:serviceName',
    tag: 'Services',
    summary: 'Read a service',
    auth: 'nexus:provisioning:*',
    params: serviceParams,
    responses: { 200: { description: 'The service', schema: envelopeOf(serviceView) } },
    async handle({ params, principal, res }) {
      shapeOf(params.serviceName);
      await tenantFor(principal, params.ccid);
      const row = await findService(db, params.ccid, params.serviceName);
      if (!row) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `service ${params.serviceName} not found`);
      }
      reply(res, 200, present(row));
    },
  });

  api.route({
    method: 'delete',
    path: '/nexus/v3/provisioning/services/:ccid/:serviceName',
    tag: 'Services',
    summary: 'Delete a service',
    auth: 'nexus:provisioning:*',
    params: serviceParams,
    responses: {
      200: { description: 'Deleted', schema: envelopeOf(z.object({ deleted: z.literal(true) })) },
    },
    async handle({ params, principal, res }) {
      shapeOf(params.serviceName);
      await tenantFor(principal, params.ccid);
      if (!(await deleteService(db, params.ccid, params.serviceName))) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `service ${params.serviceName} not found`);
      }
      await bus.publish({ kind: 'service', tenant: params.ccid, name: params.serviceName });
      reply(res, 200, { deleted: true });
    },
  });
}

/**
 * The outbound URLs of a service body: every http(s) string under a `url` key (`url`, an Async
 * channel's `data.channels.<i>.webhook.url`), with its field. A `url` that is not http(s) (the
 * guide's "N/A" of services without one) is not called and not listed.
 */
function outboundUrls(value: unknown, path: string): { field: string; url: string }[] {
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, child]) =>
    key === 'url' && typeof child === 'string' && /^(https?|smtps?):/i.test(child)
      ? [{ field: `${path}.${key}`, url: child }]
      : outboundUrls(child, `${path}.${key}`),
  );
}

/**
 * The secret of the AI connector's target saved without one (it always signs): the one it has,
 * kept as it is (no rotation), or a new one the hub draws.
 */
function connectorSecret(
  secrets: SecretBox,
  before: ServiceRow | undefined,
  context: string,
): { sealed: string; keyId: string | null; kept: boolean } {
  if (before?.secret_sealed) {
    return { sealed: before.secret_sealed, keyId: before.secret_key_id, kept: true };
  }
  return {
    sealed: secrets.seal({ secret: drawWebhookSecret() }, context),
    keyId: secrets.currentKeyId,
    kept: false,
  };
}

/** Whether a stored sealed secret holds the same value as a new one (sealing is randomised). */
function sameSecret(
  secrets: SecretBox,
  sealed: string,
  next: Record<string, unknown> | undefined,
  context: string,
): boolean {
  try {
    return JSON.stringify(secrets.open(sealed, context)) === JSON.stringify(next ?? {});
  } catch {
    return false;
  }
}
