/**
 * Inbound email through a third-party gateway (`Async`): the gateway posts the customer mails it
 * received for an email channel's domain, signed as its other calls, and each becomes a message of
 * an email conversation (api/email/inbound.ts). Header values are checked as at every intake: a
 * line break in a name, the subject or a threading id is a 400 naming the field.
 */
import type { Request } from 'express';
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { AppError } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import type { EnqueueContext } from '../../../queues/work.js';
import { channelOfRecipients, receiveInboundEmail } from '../../email/inbound.js';
import { headerText, namedAddress } from '../../email/fields.js';
import { reply } from '../../error-handler.js';
import { envelopeOf, type Api } from '../../openapi.js';

/** Where a gateway posts inbound mail (the app parses its larger, signed bodies there). */
export const INBOUND_EMAILS_PATH = '/nexus/v3/channels/:channelId/emails';
/** The largest body of a campaign's records or of a gateway's inbound mails. */
export const EMAIL_BATCH_MAX_BYTES = 32 * 1024 * 1024;

export interface InboundEmailRouteDeps {
  db: DatabasePool;
  enqueue: EnqueueContext;
  log: Logger;
  /** NEXUS_EMAIL_ATTACHMENT_MAX_BYTES. */
  attachmentMaxBytes: number;
}

const messageId = z
  .string()
  .trim()
  .max(998)
  .regex(/^<[^\s<>@]+@[^\s<>@]+>$/, 'must be a Message-ID: <id@host>');

const inboundEmails = z
  .object({
    messages: z
      .array(
        z
          .object({
            from: namedAddress,
            to: z.array(namedAddress).min(1).max(100),
            cc: z.array(namedAddress).max(100).default([]),
            replyTo: namedAddress.optional(),
            subject: headerText(998).default(''),
            text: z.string().max(1_000_000).optional(),
            html: z.string().max(5_000_000).optional(),
            messageId: messageId.optional(),
            inReplyTo: messageId.optional(),
            references: z.array(messageId).max(100).default([]),
            attachments: z
              .array(
                z
                  .object({
                    filename: headerText(255).pipe(z.string().min(1)),
                    contentType: z
                      .string()
                      .regex(/^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/i, 'must be a MIME type'),
                    content: z.string().base64('must be base64'),
                  })
                  .strict(),
              )
              .max(50)
              .default([]),
          })
          .strict()
          .refine(mail => mail.text !== undefined || mail.html !== undefined, {
            message: 'needs text or html',
            path: ['text'],
          }),
      )
      .min(1)
      .max(100),
  })
  .strict()
  .openapi('InboundEmails');

/** `POST /nexus/v3/channels/:channelId/emails`, verified by the gateway's signature check. */
export function asyncInboundEmailRoute(
  api: Api,
  deps: InboundEmailRouteDeps,
  verifySigned: (req: Request) => Promise<void>,
): void {
  api.route({
    method: 'post',
    path: INBOUND_EMAILS_PATH,
    tag: 'Email',
    summary: 'Receive inbound email from a third-party gateway (Async)',
    description:
      "Signed as the gateway's other calls (`X-Hub-Signature` with the channel's api secret, `x-ccid`); `channelId` is the email channel's domain. Each mail `{from, to, cc?, replyTo?, subject, text?, html?, messageId?, inReplyTo?, references?, attachments?}` (names as strings or `{address, name}`, attachments `{filename, contentType, content}` in base64) joins the conversation its threading headers name (a reply to a campaign mail joins that record's), else the customer's open conversation on the domain, and is routed like a chat. `messageId` de-duplicates retries. HTML is sanitised; attachments off the allow-list or over `NEXUS_EMAIL_ATTACHMENT_MAX_BYTES` are not kept (the transcript says so).",
    auth: 'public',
    verify: verifySigned,
    params: z.object({ channelId: z.string().min(1).max(255) }),
    body: inboundEmails,
    responses: {
      202: {
        description: 'Accepted',
        schema: envelopeOf(
          z.object({
            results: z.array(
              z.object({
                messageId: z.string(),
                interactionId: z.string(),
                duplicate: z.boolean(),
              }),
            ),
          }),
        ),
      },
    },
    async handle({ params, body, req, res }) {
      const tenant = req.get('x-ccid') as string;
      // Every mail's domain is checked before any is stored: a bad one refuses the request
      // whole. The gateway signed for `channelId`: each mail must be for that domain.
      for (const [index, mail] of body.messages.entries()) {
        const channel = await channelOfRecipients(deps.db, tenant, [...mail.to, ...mail.cc]);
        if (channel?.channel_id.toLowerCase() !== params.channelId.toLowerCase()) {
          throw new AppError(
            'NEXUS_ERR_EMAIL_UNKNOWN_DOMAIN',
            `body.messages.${index}.to: no recipient is at ${params.channelId}, an email channel of the tenant`,
            `body.messages.${index}.to`,
          );
        }
      }
      const results = [];
      for (const [index, mail] of body.messages.entries()) {
        const result = await receiveInboundEmail(
          deps,
          tenant,
          {
            ...mail,
            attachments: mail.attachments.map(entry => ({
              filename: entry.filename,
              contentType: entry.contentType,
              content: Buffer.from(entry.content, 'base64'),
            })),
          },
          `body.messages.${index}`,
        );
        results.push({
          messageId: result.messageId,
          interactionId: result.interactionId,
          duplicate: result.duplicate,
        });
      }
      reply(res, 202, { results });
    },
  });
}
