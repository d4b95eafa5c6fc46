import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { findEmailChannel, listChannels, type ChannelRow } from '../../db/queries/channels.js';
import { suppressionsAmong } from '../../db/queries/email-consent.js';
import { findInteractionAttachment, mailsOfInteraction } from '../../db/queries/email-threads.js';
import type { EmailRow } from '../../db/queries/email.js';
import { findInteraction } from '../../db/queries/interactions.js';
import { LINE_BREAK } from '../../domain/email-address.js';
import { suppressionKey } from '../../domain/email-status.js';
import { AppError } from '../../lib/errors.js';
import { agentOf } from '../auth/principal.js';
import { EmailSuppressedError } from '../chat/agent-desk.js';
import type { ChatServices } from '../chat/chat-services.js';
import { MAX_TEXT } from '../chat/conversation.js';
import { emailAddress, namedAddress } from '../email/fields.js';
import { reply } from '../error-handler.js';
import { envelopeOf, errorEnvelope, type Api } from '../openapi.js';
import { outboundStarted, outboundText } from './agent-outbound.js';

/**
 * Email in the agent API: a conversation's mails as a thread (with their attachments' bytes), a
 * new email conversation the agent starts (refused up front when a recipient is on the tenant's
 * suppression list), and the agent's read of that list. The SMS counterparts are
 * api/routes/agent-outbound.ts.
 */

const interactionParams = z.object({ id: z.string().uuid('must be an interaction id') });

/** Longest subject line RFC 5322 allows (998 characters a line). */
const MAX_SUBJECT = 998;

const address = z.object({ address: z.string(), name: z.string().optional() });

const mailView = z
  .object({
    id: z.string().uuid(),
    messageId: z.string(),
    direction: z.enum(['inbound', 'outbound']),
    from: z.object({ address: z.string(), name: z.string().nullable() }),
    to: z.array(address),
    cc: z.array(address),
    bcc: z.array(address).optional(),
    replyTo: z.string().nullable(),
    subject: z.string(),
    date: z.string(),
    text: z.string(),
    html: z.string().nullable(),
    attachments: z.array(
      z.object({
        mediaId: z.string().uuid(),
        filename: z.string(),
        contentType: z.string(),
        size: z.number(),
      }),
    ),
    deliveryStatus: z.string().nullable(),
    chatMessageId: z.string().uuid().nullable(),
  })
  .openapi('AgentEmail');

/**
 * A mail as agents see it. Bcc only on the mails written in the conversation (an agent's or the
 * bot's), never on a customer's or a campaign's.
 */
function presentMail(row: EmailRow): z.infer<typeof mailView> {
  const ours = row.direction === 'outbound' && row.chat_message_id !== null;
  return {
    id: row.id,
    messageId: row.message_id,
    direction: row.direction,
    from: { address: row.from_address, name: row.from_name },
    to: row.to_addresses,
    cc: row.cc_addresses,
    ...(ours ? { bcc: row.bcc_addresses } : {}),
    replyTo: row.reply_to,
    subject: row.subject,
    date: row.created_at,
    text: row.text_body,
    html: row.html_body,
    attachments: row.attachments,
    deliveryStatus: row.direction === 'outbound' ? row.delivery_status : null,
    chatMessageId: row.chat_message_id,
  };
}

/**
 * `Content-Disposition: attachment` with the name as RFC 6266 gives it: an ASCII fallback
 * (`filename`) and the exact name percent-encoded in UTF-8 (`filename*`, RFC 8187).
 */
function attachmentDisposition(filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]|["\\%]/g, '_') || 'attachment';
  const encoded = encodeURIComponent(filename).replace(
    /['()*]/g,
    char => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

/** A stored content type as a header value (`type/subtype`), else plain bytes. */
const contentTypeOf = (mimetype: string) =>
  /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/i.test(mimetype)
    ? mimetype
    : 'application/octet-stream';

/** The channel a new mail is sent from: the caller's domain, or the tenant's only email one. */
async function emailChannelOf(
  db: DatabasePool,
  tenantId: string,
  from: string | undefined,
  field: string,
): Promise<ChannelRow> {
  if (from !== undefined) {
    const channel = await findEmailChannel(db, tenantId, from);
    if (!channel) {
      throw new AppError(
        'NEXUS_ERR_VALIDATION',
        `${field}: no email channel of the tenant has the domain ${from}`,
        field,
      );
    }
    return channel;
  }
  const channels = (await listChannels(db, tenantId)).filter(
    channel => channel.channel_type === 'email',
  );
  const [only] = channels;
  if (only && channels.length === 1) return only;
  throw new AppError(
    'NEXUS_ERR_VALIDATION',
    channels.length === 0
      ? `${field}: the tenant has no email channel to send from`
      : `${field}: the tenant has ${channels.length} email domains (${channels
          .map(channel => channel.channel_id)
          .join(', ')}): name the one to send from`,
    field,
  );
}

/** The agent API's email reads and the email conversations agents start. */
export function agentEmailRoutes({
  api,
  db,
  chat,
}: {
  api: Api;
  db: DatabasePool;
  chat: ChatServices;
}): void {
  // The check GET /nexus/v3/agent/interactions/{id} makes: an interaction of the agent's tenant.
  const load = async (tenant: string, id: string) => {
    const row = await findInteraction(db, tenant, id);
    if (!row) throw new AppError('NEXUS_ERR_NOT_FOUND', `interaction ${id} not found`);
    return row;
  };

  api.route({
    method: 'get',
    path: '/nexus/v3/agent/interactions/:id/emails',
    tag: 'Agent',
    summary: "An email conversation's mails",
    description:
      "The conversation's mails, oldest first: the customer's and the company's (agents' answers, mails agents started, a campaign mail the customer answered), each with its `Message-ID`, addresses, subject, when the hub stored it (`date`), the text, the sanitised HTML, the attachments (their bytes at `…/media/{mediaId}`), the delivery status of outbound mail and the conversation message it belongs to (`chatMessageId`). Bcc only on mails written in the conversation. Another kind of conversation has none (`items: []`).",
    auth: 'nexus:agent:*',
    params: interactionParams,
    responses: {
      200: {
        description: 'The mails, oldest first',
        schema: envelopeOf(z.object({ items: z.array(mailView) })),
      },
    },
    async handle({ params, principal, res }) {
      const agent = agentOf(principal);
      const interaction = await load(agent.tenant, params.id);
      const mails = await mailsOfInteraction(db, interaction.id);
      reply(res, 200, { items: mails.map(presentMail) });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/agent/interactions/:id/media/:mediaId',
    tag: 'Agent',
    summary: "An email attachment's bytes",
    description:
      'The bytes of an attachment of a mail of the conversation (else 404), as a download: `Content-Type` its type, `Content-Disposition: attachment` with its name, `X-Content-Type-Options: nosniff`, `Content-Security-Policy: sandbox`, `Cache-Control: private, no-store`.',
    auth: 'nexus:agent:*',
    params: interactionParams.extend({ mediaId: z.string().uuid('must be a media id') }),
    responses: { 200: { description: "The attachment's bytes" } },
    async handle({ params, principal, res }) {
      const agent = agentOf(principal);
      const interaction = await load(agent.tenant, params.id);
      const media = await findInteractionAttachment(
        db,
        agent.tenant,
        interaction.id,
        params.mediaId,
      );
      if (!media) {
        throw new AppError('NEXUS_ERR_NOT_FOUND', `attachment ${params.mediaId} not found`);
      }
      res.status(200);
      res.setHeader('Content-Type', contentTypeOf(media.mimetype));
      res.setHeader('Content-Disposition', attachmentDisposition(media.filename));
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('Content-Security-Policy', 'sandbox');
      res.setHeader('Cache-Control', 'private, no-store');
      res.end(media.content);
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/agent/outbound/email',
    tag: 'Agent',
    summary: 'Start an email conversation',
    description: `The agent mails \`to\` (an address or \`{address, name}\`) from \`from\` (the domain of one of the tenant's email channels, \`channelType: email\`; optional when the tenant has exactly one): a new email interaction, started, the agent joined and assigned, its contact found or created by the address; the mail is a new thread (no \`In-Reply-To\`) from \`noreply@<domain>\`, sent by the outbound-email worker like an answer, and the customer's reply threads into the conversation. \`subject\` 1-${MAX_SUBJECT} characters without line breaks, \`text\` as agent messages (1-${MAX_TEXT} characters), \`cc\` and \`bcc\` as for answers; \`clientMessageId\` makes a retry answer the same ids and store nothing. An open conversation with the address on that channel takes the mail instead. A recipient on the tenant's suppression list is refused with 409 \`NEXUS_ERR_EMAIL_SUPPRESSED\` and the reason, and nothing is stored.`,
    auth: 'nexus:agent:*',
    body: z
      .object({
        to: namedAddress,
        subject: z
          .string()
          .min(1, 'must not be empty')
          .max(MAX_SUBJECT, `must be at most ${MAX_SUBJECT} characters`)
          .refine(value => !LINE_BREAK.test(value), 'must not hold a line break (CR, LF) or NUL')
          .refine(value => value.trim().length > 0, 'must not be empty'),
        text: outboundText,
        cc: z.array(namedAddress).max(50).optional(),
        bcc: z.array(namedAddress).max(50).optional(),
        from: z.string().trim().min(1, 'must not be empty').max(253).optional(),
        clientMessageId: z.string().trim().min(1).max(128).optional(),
      })
      .strict()
      .openapi('AgentOutboundEmail'),
    responses: {
      201: {
        description: 'Stored and enqueued (or, for a retry, stored before)',
        schema: envelopeOf(outboundStarted),
      },
      409: {
        description:
          "`NEXUS_ERR_EMAIL_SUPPRESSED`: a recipient is on the tenant's suppression list",
        schema: errorEnvelope,
      },
    },
    async handle({ body, principal, res }) {
      const agent = agentOf(principal);
      const channel = await emailChannelOf(db, agent.tenant, body.from, 'body.from');
      try {
        const started = await chat.desk.startEmailConversation(agent.tenant, agent, {
          channel,
          thread: {
            from: { address: `noreply@${channel.channel_id}` },
            to: body.to,
            cc: body.cc ?? [],
            bcc: body.bcc ?? [],
            subject: body.subject,
          },
          text: body.text,
          clientMessageId: body.clientMessageId ?? null,
        });
        reply(res, 201, {
          interactionId: started.interactionId,
          messageId: started.messageId,
          duplicate: !started.created,
        });
      } catch (error) {
        if (error instanceof EmailSuppressedError) {
          throw new AppError('NEXUS_ERR_EMAIL_SUPPRESSED', error.message, error.field);
        }
        throw error;
      }
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/agent/consent/email',
    tag: 'Agent',
    summary: 'Whether an address may be mailed',
    description:
      "Whether `address` is on the tenant's suppression list (`suppressed`), why (`hard-bounce`, `complaint`, `unsubscribe`, `manual`) and since when; `reason` and `since` are null when it is not. Addresses compare lowercased.",
    auth: 'nexus:agent:*',
    query: z.object({ address: emailAddress }).strict(),
    responses: {
      200: {
        description: "The address's suppression state",
        schema: envelopeOf(
          z.object({
            address: z.string(),
            suppressed: z.boolean(),
            reason: z.string().nullable(),
            since: z.string().nullable(),
          }),
        ),
      },
    },
    async handle({ query, principal, res }) {
      const agent = agentOf(principal);
      const key = suppressionKey(query.address);
      const entry = (await suppressionsAmong(db, agent.tenant, [key])).get(key);
      reply(res, 200, {
        address: key,
        suppressed: entry !== undefined,
        reason: entry?.reason ?? null,
        since: entry?.updated_at ?? null,
      });
    },
  });
}
