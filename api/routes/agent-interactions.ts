import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { findContact } from '../../db/queries/contacts.js';
import { listAgentInteractionIds } from '../../db/queries/interaction-agents.js';
import {
  findInteraction,
  listContactInteractions,
  listOpenInteractions,
  listPendingOffers,
  listUndeliveredInteractions,
} from '../../db/queries/interactions.js';
import { listSmsDeliveries } from '../../db/queries/sms.js';
import { AppError } from '../../lib/errors.js';
import { agentOf } from '../auth/principal.js';
import type { ChatServices } from '../chat/chat-services.js';
import { MAX_TEXT } from '../chat/conversation.js';
import { reply } from '../error-handler.js';
import { envelopeOf, type Api } from '../openapi.js';
import { rowNumber } from '../validate.js';
import { presentEvent, presentInteraction, presentSmsDelivery } from '../presenters.js';
import { namedAddress } from '../email/fields.js';

const interactionParams = z.object({ id: z.string().uuid('must be an interaction id') });

/**
 * The agent API: the tenant's open interactions (any agent of the tenant may join any of them
 * until routing assigns them), one interaction with its events and the customer's history,
 * and the agent's actions: join, send, typing, read, Done.
 */
export function agentInteractionRoutes({
  api,
  db,
  chat,
}: {
  api: Api;
  db: DatabasePool;
  chat: ChatServices;
}): void {
  const load = async (tenant: string, id: string) => {
    const row = await findInteraction(db, tenant, id);
    if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `interaction ${id} not found`);
    return row;
  };

  api.route({
    method: 'get',
    path: '/nexus/v3/agent/interactions',
    tag: 'Agent',
    summary: 'Open interactions the agent may work on',
    description:
      'Oldest first, `limit` per page (default 100, at most 500). `next` is the cursor of the following page (pass it as `after`), null on the last page.',
    auth: 'nexus:agent:*',
    query: z
      .object({
        limit: z.coerce.number().int().min(1).max(500).default(100),
        after: z.string().uuid('must be the `next` of the previous page').optional(),
      })
      .strict(),
    responses: { 200: { description: 'Interactions, oldest first' } },
    async handle({ query, principal, res }) {
      const agent = agentOf(principal);
      const cursor = query.after ? await findInteraction(db, agent.tenant, query.after) : undefined;
      if (query.after && !cursor) {
        throw new AppError(
          'NEXUS_ERR_VALIDATION',
          'query.after: no such interaction (pass the `next` of the previous page)',
          'query.after',
        );
      }
      const [rows, mine] = await Promise.all([
        listOpenInteractions(db, agent.tenant, query.limit, cursor?.id),
        listAgentInteractionIds(db, agent.id),
      ]);
      const joined = new Set(mine);
      reply(res, 200, {
        items: rows.map(row => ({ ...presentInteraction(row), joined: joined.has(row.id) })),
        next: rows.length === query.limit ? (rows.at(-1)?.id ?? null) : null,
      });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/agent/offers',
    tag: 'Agent',
    summary: "The agent's open offers",
    description:
      "The `interaction.offered` events of the interactions offered to this agent now (not expired, not answered), oldest first: what the communication panel shows after a reload, before the socket's next `offer`.",
    auth: 'nexus:agent:*',
    responses: { 200: { description: '`{items: [event]}`' } },
    async handle({ principal, res }) {
      const agent = agentOf(principal);
      const offers = await listPendingOffers(db, [agent.id]);
      reply(res, 200, {
        items: offers
          .map(offer => presentEvent(offer.event))
          .sort((a, b) => a.occurredAt.localeCompare(b.occurredAt)),
      });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/agent/undelivered',
    tag: 'Agent',
    summary: "The tenant's undelivered view",
    description:
      'Open interactions whose outbound message to the customer finally failed (provider refused it, retries exhausted), most recent first, with the failure\'s code (docs/errors.md, "Failed work") and reason: follow up another way. A conversation leaves the view once a newer outbound message follows the failure (sent again, or written on); it comes back if that one fails too.',
    auth: 'nexus:agent:*',
    query: z.object({ limit: z.coerce.number().int().min(1).max(500).default(100) }).strict(),
    responses: { 200: { description: 'Undelivered interactions' } },
    async handle({ query, principal, res }) {
      const agent = agentOf(principal);
      const rows = await listUndeliveredInteractions(db, agent.tenant, query.limit);
      reply(res, 200, {
        items: rows.map(row => ({
          ...presentInteraction(row),
          undeliveredAt: row.undelivered_at,
          code: row.undelivered_code,
          reason: row.undelivered_reason,
        })),
      });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/agent/interactions/:id',
    tag: 'Agent',
    summary: 'An interaction with its events and the customer',
    description:
      "Events after `after`, in seq order; the contact with identifiers; the contact's previous interactions; for SMS conversations, each outbound message's delivery status, encoding and segments.",
    auth: 'nexus:agent:*',
    params: interactionParams,
    query: z
      .object({
        after: rowNumber(0).default(0),
        limit: z.coerce.number().int().min(1).max(500).default(500),
      })
      .strict(),
    responses: { 200: { description: 'The interaction' } },
    async handle({ params, query, principal, res }) {
      const agent = agentOf(principal);
      const interaction = await load(agent.tenant, params.id);
      const events = await chat.conversation.events(interaction.id, query.after, query.limit);
      const contact = interaction.contact_id
        ? await findContact(db, agent.tenant, interaction.contact_id)
        : undefined;
      const history = interaction.contact_id
        ? (await listContactInteractions(db, agent.tenant, interaction.contact_id, 51)).filter(
            row => row.id !== interaction.id,
          )
        : [];
      reply(res, 200, {
        interaction: presentInteraction(interaction),
        events: events.map(presentEvent),
        contact: contact
          ? {
              id: contact.id,
              firstName: contact.first_name,
              lastName: contact.last_name,
              nickname: contact.nickname,
              identifiers: contact.identifiers,
            }
          : null,
        previousInteractions: history.slice(0, 50).map(presentInteraction),
        smsDeliveries: (await listSmsDeliveries(db, interaction.id)).map(row => ({
          messageId: row.id,
          ...presentSmsDelivery(row),
        })),
      });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/agent/interactions/:id/join',
    tag: 'Agent',
    summary: 'Join an interaction',
    description:
      'The agent joins (a participant.joined event); its socket then receives every event of it.',
    auth: 'nexus:agent:*',
    params: interactionParams,
    responses: {
      200: { description: 'Joined', schema: envelopeOf(z.object({ joined: z.literal(true) })) },
    },
    async handle({ params, principal, res }) {
      const agent = agentOf(principal);
      await chat.desk.agentJoin(agent.tenant, params.id, agent);
      reply(res, 200, { joined: true });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/agent/interactions/:id/accept',
    tag: 'Agent',
    summary: 'Accept an offer',
    description:
      'The interaction offered to this agent (socket event `offer`) becomes its own: assigned, joined. 409 `NEXUS_ERR_OFFER_INVALID` when it is not offered to this agent, or the offer expired.',
    auth: 'nexus:agent:*',
    params: interactionParams,
    responses: {
      200: {
        description: 'Accepted',
        schema: envelopeOf(z.object({ state: z.literal('assigned') })),
      },
    },
    async handle({ params, principal, res }) {
      const agent = agentOf(principal);
      await load(agent.tenant, params.id);
      await chat.desk.acceptOffer(agent.tenant, params.id, agent);
      reply(res, 200, { state: 'assigned' });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/agent/interactions/:id/reject',
    tag: 'Agent',
    summary: 'Reject an offer',
    description:
      'The interaction waits again in its place and is offered to another agent (never again to this one).',
    auth: 'nexus:agent:*',
    params: interactionParams,
    responses: {
      200: {
        description: 'Rejected',
        schema: envelopeOf(z.object({ state: z.literal('queued') })),
      },
    },
    async handle({ params, principal, res }) {
      const agent = agentOf(principal);
      await load(agent.tenant, params.id);
      await chat.desk.rejectOffer(agent.tenant, params.id, agent.id);
      reply(res, 200, { state: 'queued' });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/agent/interactions/:id/park',
    tag: 'Agent',
    summary: 'Park (asynchold)',
    description:
      "Frees the agent's capacity; the chat waits for the customer, and when they write it is offered to this agent first. 409 `NEXUS_ERR_NOT_ASSIGNED` unless assigned to this agent.",
    auth: 'nexus:agent:*',
    params: interactionParams,
    responses: {
      200: { description: 'Parked', schema: envelopeOf(z.object({ state: z.literal('parked') })) },
    },
    async handle({ params, principal, res }) {
      const agent = agentOf(principal);
      await load(agent.tenant, params.id);
      await chat.desk.park(agent.tenant, params.id, agent);
      reply(res, 200, { state: 'parked' });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/agent/interactions/:id/transfer',
    tag: 'Agent',
    summary: 'Transfer to another queue or agent',
    description:
      '`{queue}` puts the chat in another queue of the tenant; `{agentId}` offers it to another agent of its queue first. The agent leaves the chat. 409 `NEXUS_ERR_NOT_ASSIGNED` unless assigned to this agent; 400 for an unknown queue or agent.',
    auth: 'nexus:agent:*',
    params: interactionParams,
    body: z
      .union([
        z.object({ queue: z.string().min(1).max(128) }).strict(),
        z.object({ agentId: z.string().uuid('must be an agent id') }).strict(),
      ])
      .openapi('Transfer'),
    responses: {
      200: {
        description: 'Transferred',
        schema: envelopeOf(z.object({ state: z.literal('queued') })),
      },
    },
    async handle({ params, body, principal, res }) {
      const agent = agentOf(principal);
      await load(agent.tenant, params.id);
      await chat.desk.transfer(agent.tenant, params.id, agent, body);
      reply(res, 200, { state: 'queued' });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/agent/interactions/:id/messages',
    tag: 'Agent',
    summary: 'Send a message',
    description: `\`text\` (1-${MAX_TEXT} characters), optional \`clientMessageId\` (a retry with it stores nothing more). Joins the agent first when needed. In an email conversation the message is also sent as a mail answering the last one (threaded, reply-all, the last mail quoted); \`cc\` and \`bcc\` (addresses or \`{address, name}\`) add recipients there, and are refused elsewhere.`,
    auth: 'nexus:agent:*',
    params: interactionParams,
    body: z
      .object({
        text: z
          .string()
          .max(MAX_TEXT, `must be at most ${MAX_TEXT} characters`)
          .refine(value => value.trim().length > 0, 'must not be empty'),
        clientMessageId: z.string().trim().min(1).max(128).optional(),
        cc: z.array(namedAddress).max(50).optional(),
        bcc: z.array(namedAddress).max(50).optional(),
      })
      .strict()
      .openapi('AgentMessage'),
    responses: {
      201: {
        description: 'Sent',
        schema: envelopeOf(z.object({ id: z.string().uuid(), duplicate: z.boolean() })),
      },
    },
    async handle({ params, body, principal, res }) {
      const agent = agentOf(principal);
      const result = await chat.desk.agentMessage(
        agent.tenant,
        params.id,
        agent,
        body.text,
        body.clientMessageId ?? null,
        { cc: body.cc, bcc: body.bcc },
      );
      reply(res, 201, { id: result.id, duplicate: !result.created });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/agent/interactions/:id/typing',
    tag: 'Agent',
    summary: 'Typing indicator',
    auth: 'nexus:agent:*',
    params: interactionParams,
    body: z.object({ typing: z.boolean().default(true) }).strict(),
    responses: { 200: { description: 'Sent' } },
    async handle({ params, body, principal, res }) {
      const agent = agentOf(principal);
      await load(agent.tenant, params.id);
      chat.conversation.typing(
        agent.tenant,
        params.id,
        { type: 'agent', id: agent.id, nickname: agent.name },
        body.typing,
      );
      reply(res, 200, { typing: body.typing });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/agent/interactions/:id/read',
    tag: 'Agent',
    summary: 'Read receipt',
    auth: 'nexus:agent:*',
    params: interactionParams,
    body: z.object({ seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER) }).strict(),
    responses: { 200: { description: 'Recorded' } },
    async handle({ params, body, principal, res }) {
      const agent = agentOf(principal);
      await chat.conversation.read(
        agent.tenant,
        params.id,
        { type: 'agent', id: agent.id, nickname: agent.name },
        body.seq,
      );
      reply(res, 200, { seq: body.seq });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/agent/interactions/:id/done',
    tag: 'Agent',
    summary: 'Mark Done',
    description:
      'Ends the interaction (FINISHED). Only for an agent who works on it (joined, or assigned to it): else 409 `NEXUS_ERR_NOT_ASSIGNED`. Idempotent.',
    auth: 'nexus:agent:*',
    params: interactionParams,
    responses: { 200: { description: 'Done' } },
    async handle({ params, principal, res }) {
      const agent = agentOf(principal);
      await chat.conversation.finish(agent.tenant, params.id, {
        type: 'agent',
        id: agent.id,
        nickname: agent.name,
      });
      reply(res, 200, { state: 'done' });
    },
  });
}
