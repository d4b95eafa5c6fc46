import type { DatabasePool } from 'slonik';
import { UniqueIntegrityConstraintViolationError } from 'slonik';
import { z } from 'zod';
import { existingAgentIds } from '../../db/queries/agents.js';
import { existingEndpointNames } from '../../db/queries/endpoints.js';
import {
  deleteQueue,
  listQueues,
  upsertQueue,
  type QueueView,
} from '../../db/queries/routing-queues.js';
import { findTenant } from '../../db/queries/tenants.js';
import {
  queueBotSettings,
  setQueueBotSettings,
  type QueueBotSettings,
} from '../../db/routing/bots.js';
import { DEFAULT_BOT_HANDOFF_AFTER_MS, DEFAULT_BOT_NAME } from '../../domain/bots.js';
import { AppError } from '../../lib/errors.js';
import { agentOf, assertTenant } from '../auth/principal.js';
import type { ChatServices } from '../chat/chat-services.js';
import { reply } from '../error-handler.js';
import { envelopeOf, type Api } from '../openapi.js';
import { tenantId } from '../schemas.js';

/**
 * Routing over the API: provisioning of a tenant's routing queues (with live statistics) and the
 * agent's presence.
 */

const queueName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/,
    'must be 1-128 letters, digits, "_", ".", ":" or "-"',
  );

const queueBody = z
  .object({
    endpoints: z.array(z.string().min(1).max(128)).max(100).default([]),
    agents: z.array(z.string().uuid('must be an agent id')).max(1_000).default([]),
    offerTimeoutMs: z.number().int().min(1_000).max(3_600_000).default(30_000),
    /** How long a returning customer or a parked chat waits for its agent before anyone may take it. */
    lastAgentWaitMs: z.number().int().min(0).max(86_400_000).default(60_000),
    /** New conversations go to the AI connector's bot first (when the tenant runs one). */
    botFirst: z.boolean().default(false),
    /** How long the bot may hold a conversation before it goes to the agents anyway. */
    botHandoffAfterMs: z
      .number()
      .int()
      .min(1_000)
      .max(86_400_000)
      .default(DEFAULT_BOT_HANDOFF_AFTER_MS),
    /** The bot's nickname in the conversation. */
    botName: z.string().trim().min(1).max(64).default(DEFAULT_BOT_NAME),
  })
  .strict()
  .openapi('RoutingQueueDefinition');

const queueOut = z
  .object({
    name: z.string(),
    endpoints: z.array(z.string()),
    agents: z.array(z.string()),
    offerTimeoutMs: z.number(),
    lastAgentWaitMs: z.number(),
    botFirst: z.boolean(),
    botHandoffAfterMs: z.number(),
    botName: z.string(),
    stats: z.object({
      waiting: z.number(),
      oldestWaitMs: z.number().nullable(),
      agentsReady: z.number(),
      assigned: z.number(),
      offered: z.number().describe('Offers made since the queue was created'),
      accepted: z.number(),
      abandoned: z.number().describe('Chats ended by the customer while waiting or offered'),
    }),
    created: z.string(),
    updated: z.string(),
  })
  .openapi('RoutingQueue');

const present = (
  row: QueueView,
  bots: ReadonlyMap<string, QueueBotSettings>,
): z.infer<typeof queueOut> => ({
  name: row.name,
  endpoints: row.endpoints,
  agents: row.agents,
  offerTimeoutMs: row.offer_timeout_ms,
  lastAgentWaitMs: row.last_agent_wait_ms,
  botFirst: row.bot_first,
  botHandoffAfterMs: bots.get(row.name)?.botHandoffAfterMs ?? DEFAULT_BOT_HANDOFF_AFTER_MS,
  botName: bots.get(row.name)?.botName ?? DEFAULT_BOT_NAME,
  stats: {
    waiting: row.waiting,
    oldestWaitMs: row.oldest_wait_ms,
    agentsReady: row.agents_ready,
    assigned: row.assigned,
    offered: row.offered_total,
    accepted: row.accepted_total,
    abandoned: row.abandoned_total,
  },
  created: row.created_at,
  updated: row.updated_at,
});

const presenceOut = z
  .object({ ready: z.boolean(), capacity: z.number(), load: z.number() })
  .openapi('AgentPresence');

/**
 * Routing queues (`/nexus/v3/provisioning/queues/{ccid}/{name}`: the endpoints that lead to a
 * queue and the agents who serve it, with live statistics) and agent presence
 * (`/nexus/v3/agent/presence`: ready or not, capacity), and the queues an agent may transfer to
 * (`/nexus/v3/agent/queues`). See docs/routing.md.
 */
export function routingRoutes({
  api,
  db,
  chat,
}: {
  api: Api;
  db: DatabasePool;
  chat: ChatServices;
}): void {
  const params = z.object({ ccid: tenantId, name: queueName });

  api.route({
    method: 'put',
    path: '/nexus/v3/provisioning/queues/:ccid/:name',
    tag: 'Routing',
    summary: 'Create or replace a routing queue',
    description:
      "The chat endpoints that lead to the queue (each to one queue; they must exist), the agents who serve it, the offer timeout; `botFirst` gives new conversations to the AI connector's bot (when the tenant runs one) for at most `botHandoffAfterMs`. Waiting interactions are routed at once. 201 when created, 200 when replaced.",
    auth: 'nexus:provisioning:*',
    params,
    body: queueBody,
    responses: {
      200: { description: 'Replaced', schema: envelopeOf(queueOut) },
      201: { description: 'Created', schema: envelopeOf(queueOut) },
    },
    async handle({ params: p, body, principal, res }) {
      assertTenant(principal, p.ccid);
      if (!(await findTenant(db, p.ccid))) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `tenant ${p.ccid} not found`);
      }
      const created = await db.transaction(async tx => {
        const knownEndpoints = new Set(await existingEndpointNames(tx, p.ccid, body.endpoints));
        body.endpoints.forEach((endpoint, index) => {
          if (!knownEndpoints.has(endpoint)) {
            throw new AppError(
              'NEXUS_ERR_VALIDATION',
              `body.endpoints.${index}: no endpoint ${endpoint} in the tenant`,
              `body.endpoints.${index}`,
            );
          }
        });
        const knownAgents = new Set(await existingAgentIds(tx, p.ccid, body.agents));
        body.agents.forEach((agent, index) => {
          if (!knownAgents.has(agent)) {
            throw new AppError(
              'NEXUS_ERR_VALIDATION',
              `body.agents.${index}: no agent ${agent} in the tenant`,
              `body.agents.${index}`,
            );
          }
        });
        try {
          const created = await upsertQueue(tx, {
            tenantId: p.ccid,
            name: p.name,
            offerTimeoutMs: body.offerTimeoutMs,
            lastAgentWaitMs: body.lastAgentWaitMs,
            botFirst: body.botFirst,
            endpoints: [...new Set(body.endpoints)],
            agents: [...new Set(body.agents)],
          });
          await setQueueBotSettings(tx, p.ccid, p.name, {
            botHandoffAfterMs: body.botHandoffAfterMs,
            botName: body.botName,
          });
          return created;
        } catch (error) {
          if (error instanceof UniqueIntegrityConstraintViolationError) {
            throw new AppError('NEXUS_ERR_ENDPOINT_TAKEN', undefined, 'body.endpoints');
          }
          throw error;
        }
      });
      await chat.desk.route(p.ccid, p.name);
      const [row] = await listQueues(db, p.ccid, p.name);
      reply(
        res,
        created ? 201 : 200,
        row ? present(row, await queueBotSettings(db, p.ccid)) : null,
      );
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/provisioning/queues/:ccid',
    tag: 'Routing',
    summary: "List the tenant's routing queues with statistics",
    auth: 'nexus:provisioning:*',
    params: z.object({ ccid: tenantId }),
    responses: {
      200: { description: 'Queues', schema: envelopeOf(z.object({ items: z.array(queueOut) })) },
    },
    async handle({ params: p, principal, res }) {
      assertTenant(principal, p.ccid);
      const bots = await queueBotSettings(db, p.ccid);
      reply(res, 200, { items: (await listQueues(db, p.ccid)).map(row => present(row, bots)) });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/provisioning/queues/:ccid/:name',
    tag: 'Routing',
    summary: 'Read a routing queue with statistics',
    auth: 'nexus:provisioning:*',
    params,
    responses: { 200: { description: 'The queue', schema: envelopeOf(queueOut) } },
    async handle({ params: p, principal, res }) {
      assertTenant(principal, p.ccid);
      const [row] = await listQueues(db, p.ccid, p.name);
      if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `queue ${p.name} not found`);
      reply(res, 200, present(row, await queueBotSettings(db, p.ccid)));
    },
  });

  api.route({
    method: 'delete',
    path: '/nexus/v3/provisioning/queues/:ccid/:name',
    tag: 'Routing',
    summary: 'Delete a routing queue',
    description: 'Interactions waiting in it stay open, unrouted; its endpoints lead nowhere.',
    auth: 'nexus:provisioning:*',
    params,
    responses: {
      200: { description: 'Deleted', schema: envelopeOf(z.object({ deleted: z.literal(true) })) },
    },
    async handle({ params: p, principal, res }) {
      assertTenant(principal, p.ccid);
      if (!(await db.transaction(tx => deleteQueue(tx, p.ccid, p.name)))) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `queue ${p.name} not found`);
      }
      reply(res, 200, { deleted: true });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/agent/queues',
    tag: 'Agent',
    summary: "The tenant's queues, to transfer to",
    description:
      "Every routing queue of the agent's tenant by name, with the interactions waiting in it and the agents ready in it now: the transfer targets (`POST /nexus/v3/agent/interactions/{id}/transfer {queue}`).",
    auth: 'nexus:agent:*',
    responses: {
      200: {
        description: 'Queues',
        schema: envelopeOf(
          z.object({
            items: z.array(
              z.object({ name: z.string(), waiting: z.number(), agentsReady: z.number() }),
            ),
          }),
        ),
      },
    },
    async handle({ principal, res }) {
      const agent = agentOf(principal);
      const bots = await queueBotSettings(db, agent.tenant);
      reply(res, 200, {
        items: (await listQueues(db, agent.tenant)).map(row => {
          const { name, stats } = present(row, bots);
          return { name, waiting: stats.waiting, agentsReady: stats.agentsReady };
        }),
      });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/agent/presence',
    tag: 'Agent',
    summary: "The agent's presence, capacity and load",
    auth: 'nexus:agent:*',
    responses: { 200: { description: 'Presence', schema: envelopeOf(presenceOut) } },
    async handle({ principal, res }) {
      const agent = agentOf(principal);
      reply(res, 200, await chat.desk.presence(agent.tenant, agent.id, {}));
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/agent/presence',
    tag: 'Agent',
    summary: 'Become ready or not ready; set capacity',
    description:
      '`ready: true` makes the agent eligible for the queues it serves (waiting interactions are assigned at once, up to `capacity` open interactions).',
    auth: 'nexus:agent:*',
    body: z
      .object({
        ready: z.boolean().optional(),
        capacity: z.number().int().min(0).max(100).optional(),
      })
      .strict()
      .openapi('AgentPresenceChange'),
    responses: { 200: { description: 'Presence', schema: envelopeOf(presenceOut) } },
    async handle({ body, principal, res }) {
      const agent = agentOf(principal);
      reply(res, 200, await chat.desk.presence(agent.tenant, agent.id, body));
    },
  });
}
