import type { DatabasePool } from 'slonik';
import { UniqueIntegrityConstraintViolationError } from 'slonik';
import { z } from 'zod';
import {
  deleteChannel,
  findChannel,
  findSenderOwner,
  listChannels,
  upsertChannel,
  type ChannelRow,
} from '../../db/queries/channels.js';
import { findTenant } from '../../db/queries/tenants.js';
import { AppError } from '../../lib/errors.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import { assertTenant, type Principal } from '../auth/principal.js';
import { reply } from '../error-handler.js';
import { envelopeOf, type Api } from '../openapi.js';
import { parseInput } from '../validate.js';
import { tenantId } from '../schemas.js';

/**
 * Provisioning of a tenant's channels (`/nexus/v3/provisioning/channels`): SMS sender ids
 * (`chat.` sections) and email domains (`cxc.` sections).
 */

export interface ChannelRouteDeps {
  api: Api;
  db: DatabasePool;
  bus: InvalidationBus;
}

/** The guide's rule: a `chat.` or `cxc.` prefix, then letters, digits, "_" or "-"; no spaces. */
export const CHANNEL_NAME = /^(chat|cxc)\.[A-Za-z0-9_-]{1,120}$/;
const channelName = z
  .string()
  .regex(
    CHANNEL_NAME,
    'must be "chat." (SMS and chat channels) or "cxc." (email domains) followed by letters, digits, "_" or "-", without spaces',
  );

const text = (max: number) => z.string().trim().min(1, 'must not be empty').max(max);
/** The guide's options are text in a config section: accept "true" / "false" too. */
const flag = z.union([z.boolean(), z.enum(['true', 'false']).transform(value => value === 'true')]);

const channelBody = z
  .object({
    channelId: text(255).describe('The sender id (short or long code, number) or email domain'),
    channelType: z
      .string()
      .regex(/^[a-z][a-z0-9_-]{0,31}$/, 'must be a lower-case type such as sms or email')
      .optional(),
    endpoint: text(255).optional().describe('Routing endpoint, `chat.<designerEndpointName>`'),
    interactionSubtype: text(64).optional(),
    interactionType: text(64).optional(),
    media: text(64).optional(),
    cxcOnly: flag.optional(),
    provider: text(64).optional(),
  })
  .strict()
  .openapi('ChannelDefinition');

const channelView = z
  .object({
    tenant: z.string(),
    name: z.string(),
    channelId: z.string(),
    channelType: z.string(),
    endpoint: z.string().nullable(),
    interactionSubtype: z.string().nullable(),
    interactionType: z.string().nullable(),
    media: z.string().nullable(),
    cxcOnly: z.boolean(),
    provider: z.string().nullable(),
    created: z.string(),
    updated: z.string(),
  })
  .openapi('Channel');

const present = (row: ChannelRow): z.infer<typeof channelView> => ({
  tenant: row.tenant_id,
  name: row.name,
  channelId: row.channel_id,
  channelType: row.channel_type,
  endpoint: row.endpoint,
  interactionSubtype: row.interaction_subtype,
  interactionType: row.interaction_type,
  media: row.media,
  cxcOnly: row.cxc_only,
  provider: row.provider,
  created: row.created_at,
  updated: row.updated_at,
});

const tenantParams = z.object({ ccid: tenantId });
const channelParams = z.object({ ccid: tenantId, name: channelName });

/**
 * `/nexus/v3/provisioning/channels/{ccid}/{name}`: the guide's `chat.<name>` sections (SMS
 * sender ids: channelId, channelType, endpoint, interactionSubtype, interactionType, media,
 * cxcOnly, provider) and `cxc.<name>` sections (email domains: channelId, channelType,
 * provider). A channelId (a sender id) belongs to one section of one tenant: the database's
 * unique index refuses a second claim, so two concurrent claims cannot both win.
 */
export function channelRoutes({ api, db, bus }: ChannelRouteDeps): void {
  const tenantFor = async (principal: Principal, ccid: string) => {
    assertTenant(principal, ccid);
    if (!(await findTenant(db, ccid))) {
      throw new AppError('NEXUS_ERR_NOT_FOUND', `tenant ${ccid} not found`);
    }
  };

  for (const method of ['post', 'put'] as const) {
    api.route({
      method,
      path: '/nexus/v3/provisioning/channels/:ccid/:name',
      tag: 'Channels',
      summary: method === 'post' ? 'Create or replace a channel' : 'Replace a channel',
      description:
        '`chat.*` sections need `endpoint`; defaults as the guide: channelType `sms`, interactionSubtype `SMS`, interactionType `Inbound`, media `chat`, cxcOnly false, provider `Portico`. `cxc.*` sections default channelType to `email`. Answers 201 when created, 200 when replaced. A `channelId` (number, short code, Async channel id, email domain) belongs to one channel of one tenant: 409 `NEXUS_ERR_CHANNEL_ID_TAKEN` when another channel of the tenant has it, 409 `NEXUS_ERR_SENDER_TAKEN` when another tenant does (numbers compare however written: `+1 800 555 0100` is `18005550100`).',
      auth: 'nexus:provisioning:*',
      params: channelParams,
      body: channelBody,
      responses: {
        200: { description: 'Replaced', schema: envelopeOf(channelView) },
        201: { description: 'Created', schema: envelopeOf(channelView) },
      },
      async handle({ params, body, principal, res }) {
        await tenantFor(principal, params.ccid);
        const chat = params.name.startsWith('chat.');
        if (chat && body.endpoint === undefined) {
          parseInput(z.object({ endpoint: text(255) }), {}, 'body');
        }
        try {
          const { row, created } = await upsertChannel(db, {
            tenantId: params.ccid,
            name: params.name,
            channelId: body.channelId,
            channelType: body.channelType ?? (chat ? 'sms' : 'email'),
            endpoint: body.endpoint ?? null,
            interactionSubtype: body.interactionSubtype ?? (chat ? 'SMS' : null),
            interactionType: body.interactionType ?? (chat ? 'Inbound' : null),
            media: body.media ?? (chat ? 'chat' : null),
            cxcOnly: body.cxcOnly ?? false,
            provider: body.provider ?? (chat ? 'Portico' : null),
          });
          await bus.publish({ kind: 'channel', tenant: params.ccid });
          reply(res, created ? 201 : 200, present(row));
        } catch (error) {
          if (error instanceof UniqueIntegrityConstraintViolationError) {
            // Whose it is decides the answer; another tenant's channel is not named.
            const owner = await findSenderOwner(db, body.channelId);
            if (owner?.tenantId === params.ccid) {
              throw new AppError(
                'NEXUS_ERR_CHANNEL_ID_TAKEN',
                `body.channelId: channel ${owner.name} of tenant ${params.ccid} has channelId ${body.channelId}`,
                'body.channelId',
                { cause: error },
              );
            }
            throw new AppError(
              'NEXUS_ERR_SENDER_TAKEN',
              `body.channelId: ${body.channelId} is another tenant's sender id; it must be released there first`,
              'body.channelId',
              { cause: error },
            );
          }
          throw error;
        }
      },
    });
  }

  api.route({
    method: 'get',
    path: '/nexus/v3/provisioning/channels/:ccid',
    tag: 'Channels',
    summary: "List a tenant's channels",
    auth: 'nexus:provisioning:*',
    params: tenantParams,
    responses: {
      200: {
        description: 'Channels',
        schema: envelopeOf(z.object({ items: z.array(channelView) })),
      },
    },
    async handle({ params, principal, res }) {
      await tenantFor(principal, params.ccid);
      reply(res, 200, { items: (await listChannels(db, params.ccid)).map(present) });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/provisioning/channels/:ccid/:name',
    tag: 'Channels',
    summary: 'Read a channel',
    auth: 'nexus:provisioning:*',
    params: channelParams,
    responses: { 200: { description: 'The channel', schema: envelopeOf(channelView) } },
    async handle({ params, principal, res }) {
      await tenantFor(principal, params.ccid);
      const row = await findChannel(db, params.ccid, params.name);
      if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `channel ${params.name} not found`);
      reply(res, 200, present(row));
    },
  });

  api.route({
    method: 'delete',
    path: '/nexus/v3/provisioning/channels/:ccid/:name',
    tag: 'Channels',
    summary: 'Delete a channel',
    auth: 'nexus:provisioning:*',
    params: channelParams,
    responses: {
      200: { description: 'Deleted', schema: envelopeOf(z.object({ deleted: z.literal(true) })) },
    },
    async handle({ params, principal, res }) {
      await tenantFor(principal, params.ccid);
      if (!(await deleteChannel(db, params.ccid, params.name))) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `channel ${params.name} not found`);
      }
      await bus.publish({ kind: 'channel', tenant: params.ccid });
      reply(res, 200, { deleted: true });
    },
  });
}
