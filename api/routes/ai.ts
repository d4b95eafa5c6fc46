import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { appendEvents, type InteractionEvent } from '../../db/conversation.js';
import { findSuggestion, messageSender, recordSuggestion } from '../../db/queries/assist.js';
import { interactionState } from '../../db/queries/interaction-state.js';
import { findService } from '../../db/queries/services.js';
import { findTenant } from '../../db/queries/tenants.js';
import { serviceSecretContext } from '../../db/service-directory.js';
import { findTargetState } from '../../db/webhook-log.js';
import { AI_CONNECTOR_TARGET, httpUrl } from '../../domain/service-catalogue.js';
import { AppError } from '../../lib/errors.js';
import type { SecretBox } from '../../lib/secrets.js';
import { assertTenant, type Principal } from '../auth/principal.js';
import type { ChatServices } from '../chat/chat-services.js';
import { reply } from '../error-handler.js';
import { envelopeOf, type Api } from '../openapi.js';
import { tenantId } from '../schemas.js';

/**
 * What the AI connector ("athena", docs/ai-connector.md) calls on the hub with its cluster key
 * (`nexus:cluster:*`; a tenant's key, whatever its rights, is refused): the signing secret of a
 * tenant's `WebhookTransportTarget-ai-connector`, which it verifies every delivery with, and the
 * suggestions it posts for agents, which become `assist.suggestion` events of the interaction.
 */

export interface AiRouteDeps {
  db: DatabasePool;
  secrets: SecretBox;
  /** The event log writer: appends in a transaction and publishes to the sockets after it. */
  chat: ChatServices;
}

const unit = z.number().min(0).max(1);
const name = (max: number) => z.string().min(1, 'must not be empty').max(max);

const replySuggestion = z
  .object({ type: z.literal('reply'), text: name(4_000), confidence: unit })
  .strict();
const articleSuggestion = z
  .object({
    type: z.literal('article'),
    text: name(4_000),
    confidence: unit,
    title: name(500).optional(),
    url: httpUrl.optional(),
  })
  .strict();

/** The body of a suggestion (the connector's `postSuggestion`), strict: nothing else is stored. */
export const suggestionBody = z
  .object({
    /** The customer message it answers: a message of the interaction, sent by the customer. */
    messageId: z.string().uuid(),
    /** The connector (its webhook target's name after `WebhookTransportTarget-`). */
    connector: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, "_" or "-"'),
    /** The NLU provider that read the message (`builtin`, `dialogflow-es`, …). */
    provider: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, "_", "-" or "."'),
    intent: z
      .object({ name: name(256), confidence: unit })
      .strict()
      .optional(),
    entities: z
      .array(
        z
          .object({
            kind: name(64),
            value: z.string().max(1_024),
            text: z.string().max(1_024),
            start: z.number().int().min(0).optional(),
            end: z.number().int().min(0).optional(),
          })
          .strict()
          .refine(
            entity =>
              entity.start === undefined || entity.end === undefined || entity.end >= entity.start,
            { message: 'end must not be before start', path: ['end'] },
          ),
      )
      .max(50)
      .optional(),
    sentiment: z
      .object({
        score: z.number().min(-1).max(1),
        label: z.enum(['negative', 'neutral', 'positive']),
      })
      .strict()
      .optional(),
    suggestions: z
      .array(z.discriminatedUnion('type', [replySuggestion, articleSuggestion]))
      .max(10),
  })
  .strict()
  .openapi('AssistSuggestion');

const suggestionParams = z.object({ ccid: tenantId, id: z.string().uuid() });
const suggestionAnswer = z.object({ eventId: z.string().uuid(), seq: z.number().int() });

const secretAnswer = z.object({
  secret: z.string().describe('The secret that signs the deliveries now'),
  previousSecret: z
    .string()
    .optional()
    .describe(
      'The secret before the last rotation, while it still signs (NEXUS_WEBHOOK_SECRET_GRACE_MS)',
    ),
  previousSecretUntil: z.string().optional().describe('Until when the previous secret signs'),
});

/** Refuses `x-ccid` naming another tenant than the path (a cluster key acts on the path's). */
function assertPathTenant(principal: Principal, ccid: string): void {
  assertTenant(principal, ccid);
  if (principal.ccid !== undefined && principal.ccid !== ccid) {
    throw new AppError(
      'NEXUS_ERR_VALIDATION',
      'header.x-ccid: names another tenant than the path',
      'header.x-ccid',
    );
  }
}

/** A webhook target's secret is stored as `{secret}` (a bare string is accepted too). */
function secretOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  const secret = (value as { secret?: unknown } | null)?.secret;
  return typeof secret === 'string' ? secret : undefined;
}

export function aiRoutes(api: Api, { db, secrets, chat }: AiRouteDeps): void {
  /** Opens a sealed secret of the connector's target; 500 coded when no configured key opens it. */
  const open = (sealed: string, ccid: string): string | undefined => {
    try {
      return secretOf(secrets.open(sealed, serviceSecretContext(ccid, AI_CONNECTOR_TARGET)));
    } catch (error) {
      throw new AppError('NEXUS_ERR_SECRET_UNREADABLE', undefined, undefined, { cause: error });
    }
  };

  api.route({
    method: 'get',
    path: `/nexus/v3/provisioning/services/:ccid/${AI_CONNECTOR_TARGET}/secret`,
    tag: 'Services',
    summary: "The AI connector target's signing secret",
    description:
      "For the AI connector, with a cluster key: the secret that signs the tenant's deliveries to its ai-connector target (drawn by the hub when the target was saved without one), and the previous one while it still signs. Never logged.",
    auth: 'nexus:cluster:*',
    params: z.object({ ccid: tenantId }),
    responses: { 200: { description: 'The secrets', schema: envelopeOf(secretAnswer) } },
    async handle({ params, principal, res }) {
      assertPathTenant(principal, params.ccid);
      if (!(await findTenant(db, params.ccid))) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `tenant ${params.ccid} not found`);
      }
      const service = await findService(db, params.ccid, AI_CONNECTOR_TARGET);
      if (!service) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `service ${AI_CONNECTOR_TARGET} not found`);
      }
      // Only a target saved before the hub drew secrets can lack one: saving it again draws one.
      const secret = service.secret_sealed ? open(service.secret_sealed, params.ccid) : undefined;
      if (!secret) {
        throw new AppError(
          'NEXUS_ERR_NOT_FOUND',
          `${AI_CONNECTOR_TARGET} has no secret; save it again (POST or PUT) and the hub draws one`,
        );
      }
      const state = await findTargetState(db, params.ccid, AI_CONNECTOR_TARGET);
      const until = state?.previous_until ? new Date(state.previous_until) : undefined;
      const previous =
        state?.previous_secret_sealed && until && until.getTime() > Date.now()
          ? open(state.previous_secret_sealed, params.ccid)
          : undefined;
      res.setHeader('Cache-Control', 'no-store');
      reply(res, 200, {
        secret,
        ...(previous && until
          ? { previousSecret: previous, previousSecretUntil: until.toISOString() }
          : {}),
      });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/ai/:ccid/interactions/:id/suggestions',
    tag: 'AI connector',
    summary: 'Post an agent-assist suggestion',
    description:
      "For the AI connector, with a cluster key: appends one `assist.suggestion` event to the interaction (its agents' sockets and the webhook targets that subscribe receive it; the connector's own target does not). Idempotent on (interaction, messageId, connector): a repeat answers 200 with the first event and appends nothing.",
    auth: 'nexus:cluster:*',
    params: suggestionParams,
    body: suggestionBody,
    responses: {
      200: {
        description: 'Already recorded: the first event',
        schema: envelopeOf(suggestionAnswer),
      },
      201: { description: 'Appended', schema: envelopeOf(suggestionAnswer) },
    },
    async handle({ params, body, principal, res }) {
      assertPathTenant(principal, params.ccid);
      const key = {
        interactionId: params.id,
        messageId: body.messageId,
        connector: body.connector,
      };
      let answer: { eventId: string; seq: number; created: boolean } | undefined;
      await chat.conversation.write(async tx => {
        // Locks the interaction: a concurrent repeat waits here and then finds this one's event.
        const state = await interactionState(tx, params.id, params.ccid);
        if (!state) throw new AppError('NEXUS_ERR_NOT_FOUND', 'interaction not found');
        const recorded = await findSuggestion(tx, key);
        if (recorded) {
          answer = { ...recorded, created: false };
          return [];
        }
        if (state.state === 'done') {
          throw new AppError(
            'NEXUS_ERR_CHAT_ENDED',
            'The interaction has ended; nothing was stored',
          );
        }
        if ((await messageSender(tx, params.id, body.messageId)) !== 'customer') {
          throw new AppError(
            'NEXUS_ERR_VALIDATION',
            'body.messageId: is not a customer message of this interaction',
            'body.messageId',
          );
        }
        const [event] = (await appendEvents(tx, params.id, [
          {
            type: 'assist.suggestion',
            payload: {
              messageId: body.messageId,
              connector: body.connector,
              provider: body.provider,
              intent: body.intent ?? null,
              entities: body.entities ?? [],
              sentiment: body.sentiment ?? null,
              suggestions: body.suggestions,
            },
          },
        ])) as [InteractionEvent];
        await recordSuggestion(tx, key, event.id);
        answer = { eventId: event.id, seq: event.seq, created: true };
        return [event];
      });
      if (!answer) throw new Error('the suggestion transaction ended without an answer');
      reply(res, answer.created ? 201 : 200, { eventId: answer.eventId, seq: answer.seq });
    },
  });
}
