import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { listSmsSenders, type ChannelRow } from '../../db/queries/channels.js';
import { consentFor, type SmsConsentState } from '../../db/queries/sms.js';
import { AppError } from '../../lib/errors.js';
import { agentOf } from '../auth/principal.js';
import { SmsOptedOutError } from '../chat/agent-desk.js';
import type { ChatServices } from '../chat/chat-services.js';
import { MAX_TEXT } from '../chat/conversation.js';
import { reply } from '../error-handler.js';
import { envelopeOf, errorEnvelope, type Api } from '../openapi.js';
import { chatChannelBySender } from '../sms/intake.js';
import { phone } from './sms/fields.js';

/**
 * Conversations an agent starts: an SMS to a customer's number from one of the tenant's SMS
 * senders, refused up front when the number opted out (the outbound-sms worker checks the same
 * ledger again when it sends), and the agent's read of that consent.
 */

/** A sender named by the caller, or the tenant's only SMS sender. */
async function senderOf(
  db: DatabasePool,
  tenantId: string,
  from: string | undefined,
  field: string,
): Promise<ChannelRow> {
  if (from !== undefined) {
    const channel = await chatChannelBySender(db, tenantId, from);
    if (!channel || channel.channel_type === 'email') {
      throw new AppError(
        'NEXUS_ERR_VALIDATION',
        `${field}: no SMS channel of the tenant has channelId ${from}`,
        field,
      );
    }
    if (channel.cxc_only) {
      throw new AppError(
        'NEXUS_ERR_VALIDATION',
        `${field}: ${from} is a campaign number (cxcOnly), which takes no conversations`,
        field,
      );
    }
    return channel;
  }
  const senders = await listSmsSenders(db, tenantId);
  const [only] = senders;
  if (only && senders.length === 1) return only;
  throw new AppError(
    'NEXUS_ERR_VALIDATION',
    senders.length === 0
      ? `${field}: the tenant has no SMS channel to send from`
      : `${field}: the tenant has ${senders.length} SMS numbers (${senders
          .map(channel => channel.channel_id)
          .join(', ')}): name the one to send from`,
    field,
  );
}

/** Why a number may not be texted, from the change that opted it out. */
function optOutReason(consent: SmsConsentState): string {
  const at = consent.changed_at ?? consent.updated_at;
  if (consent.source === 'keyword' && consent.keyword) return `replied ${consent.keyword} on ${at}`;
  if (consent.source) return `opted out (${consent.source}) on ${at}`;
  return `opted out on ${at}`;
}

/**
 * The 409 of a refused send: `NEXUS_ERR_SMS_OPTED_OUT`, the code the outbound-sms worker fails
 * such a message with, in the error envelope, with the reason.
 */
/** The text of a conversation an agent starts (as of any agent message). */
export const outboundText = z
  .string()
  .max(MAX_TEXT, `must be at most ${MAX_TEXT} characters`)
  .refine(value => value.trim().length > 0, 'must not be empty');

/** What starting a conversation answers (a retry with the same client id: the same ids). */
export const outboundStarted = z.object({
  interactionId: z.string().uuid(),
  messageId: z.string().uuid(),
  duplicate: z.boolean(),
});

/** The agent API's outbound conversations and consent read. */
export function agentOutboundRoutes({
  api,
  db,
  chat,
}: {
  api: Api;
  db: DatabasePool;
  chat: ChatServices;
}): void {
  api.route({
    method: 'post',
    path: '/nexus/v3/agent/outbound/sms',
    tag: 'Agent',
    summary: 'Start an SMS conversation',
    description: `The agent texts \`to\` (a phone number, normalised as inbound numbers are) from \`from\` (the channelId of one of the tenant's \`chat.*\` SMS channels; optional when the tenant has exactly one): a new SMS interaction, started, the agent joined and assigned, its contact found or created by the number; the customer's replies thread into it. \`text\` as agent messages (1-${MAX_TEXT} characters, at most \`NEXUS_SMS_MAX_SEGMENTS\` segments); \`clientMessageId\` makes a retry answer the same ids and store nothing. An open conversation with the number on that channel takes the message instead. A number that opted out of texts from the sender is refused with 409 \`NEXUS_ERR_SMS_OPTED_OUT\` and the reason, and nothing is stored.`,
    auth: 'nexus:agent:*',
    body: z
      .object({
        to: phone,
        text: outboundText,
        from: z.string().trim().min(1, 'must not be empty').max(64).optional(),
        clientMessageId: z.string().trim().min(1).max(128).optional(),
      })
      .strict()
      .openapi('AgentOutboundSms'),
    responses: {
      201: {
        description: 'Stored and enqueued (or, for a retry, stored before)',
        schema: envelopeOf(outboundStarted),
      },
      409: {
        description: '`NEXUS_ERR_SMS_OPTED_OUT`: the number opted out of texts from the sender',
        schema: errorEnvelope,
      },
    },
    async handle({ body, principal, res }) {
      const agent = agentOf(principal);
      const channel = await senderOf(db, agent.tenant, body.from, 'body.from');
      try {
        const started = await chat.desk.startSmsConversation(agent.tenant, agent, {
          channel,
          to: body.to,
          text: body.text,
          clientMessageId: body.clientMessageId ?? null,
        });
        reply(res, 201, {
          interactionId: started.interactionId,
          messageId: started.messageId,
          duplicate: !started.created,
        });
      } catch (error) {
        if (error instanceof SmsOptedOutError) {
          throw new AppError(
            'NEXUS_ERR_SMS_OPTED_OUT',
            `${error.message}: ${optOutReason(error.consent)}`,
            'body.to',
          );
        }
        throw error;
      }
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/agent/consent/sms',
    tag: 'Agent',
    summary: 'Whether a number may be texted',
    description:
      "Whether `address` may be texted from `from` (a channelId of the tenant's SMS channels; optional when the tenant has exactly one): `optedOut` as the opt-out ledger has it, the `reason` when opted out (the keyword and when), and when the number's consent last changed (`updated`, null when it never did).",
    auth: 'nexus:agent:*',
    query: z
      .object({
        address: phone,
        from: z.string().trim().min(1, 'must not be empty').max(64).optional(),
      })
      .strict(),
    responses: {
      200: {
        description: "The number's consent for the sender",
        schema: envelopeOf(
          z.object({
            address: z.string(),
            sender: z.string(),
            optedOut: z.boolean(),
            reason: z.string().nullable(),
            updated: z.string().nullable(),
          }),
        ),
      },
    },
    async handle({ query, principal, res }) {
      const agent = agentOf(principal);
      const channel = await senderOf(db, agent.tenant, query.from, 'query.from');
      const consent = await consentFor(db, agent.tenant, channel.channel_id, query.address);
      reply(res, 200, {
        address: query.address,
        sender: channel.channel_id,
        optedOut: consent?.opted_out ?? false,
        reason: consent?.opted_out ? optOutReason(consent) : null,
        updated: consent?.updated_at ?? null,
      });
    },
  });
}
