/**
 * The Third-Party Messaging API (`Async` gateways): inbound messages, delivery receipts and
 * media uploads at `/nexus/v3/channels/:channelId/…`, each signed with the channel's api secret
 * (`X-Hub-Signature`) and naming its tenant with `x-ccid`. Messages and receipts go through the
 * shared intake (api/sms/intake.ts); media files are stored for RichMedia messages. An email
 * channel's receipts and inbound mail (`…/email-receipts`, `…/emails`) are the email routes'
 * (api/routes/email/); both check the signature with api/auth/gateway-signature.ts.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { insertMedia } from '../../../db/queries/sms.js';
import { AppError } from '../../../lib/errors.js';
import type { SecretBox } from '../../../lib/secrets.js';
import { gatewaySignature } from '../../auth/gateway-signature.js';
import { reply } from '../../error-handler.js';
import { fileFromMultipart } from '../../multipart.js';
import { envelopeOf, type Api } from '../../openapi.js';
import { receiveInboundSms, recordReceipts, type IntakeDeps } from '../../sms/intake.js';
import { MEDIA_MAX_BYTES, phone, smsText } from './fields.js';

export interface ThirdPartyDeps extends IntakeDeps {
  /** Opens the tenant's `Async` service secret (the channels' api secrets). */
  secrets: SecretBox;
}

const MEDIA_TYPES =
  /^(image\/(jpeg|png|gif|webp)|audio\/[a-z0-9.+-]+|video\/(mp4|3gpp|quicktime)|application\/pdf)$/;

const channelParams = z.object({ channelId: z.string().min(1).max(255) });

const thirdPartyMessages = z
  .object({
    messages: z
      .array(
        z
          .object({
            id: z.string().trim().min(1).max(255),
            from: phone,
            text: smsText,
          })
          .passthrough(),
      )
      .min(1)
      .max(100),
  })
  .strict()
  .openapi('ThirdPartyInbound');

const thirdPartyReceipts = z
  .object({
    receipts: z
      .array(
        z
          .object({
            messageId: z.string().trim().min(1).max(255),
            status: z.enum(['sent', 'delivered', 'failed']),
            reason: z.string().trim().min(1).max(255).optional(),
          })
          .strict(),
      )
      .min(1)
      .max(100),
  })
  .strict()
  .openapi('ThirdPartyReceipts');

/** The Third-Party Messaging API's routes, signed with the channel's api secret. */
export function thirdPartyRoutes(api: Api, deps: ThirdPartyDeps): void {
  const { db } = deps;

  const verifySigned = gatewaySignature(deps);

  api.route({
    method: 'post',
    path: '/nexus/v3/channels/:channelId/messages',
    tag: 'SMS',
    summary: 'Receive inbound messages from a third-party gateway (Async)',
    description:
      'Signed with `X-Hub-Signature: sha1=<HMAC-SHA1(body, the channel api secret)>`, with `x-ccid`. Each message `{id, from, text}` is handled as an MO to the channel (threaded, routed, keywords); `id` de-duplicates retries.',
    auth: 'public',
    verify: verifySigned,
    params: channelParams,
    body: thirdPartyMessages,
    responses: {
      202: {
        description: 'Accepted',
        schema: envelopeOf(
          z.object({
            results: z.array(
              z.object({
                id: z.string(),
                messageId: z.string().nullable(),
                interactionId: z.string().nullable(),
                duplicate: z.boolean(),
              }),
            ),
          }),
        ),
      },
    },
    async handle({ params, body, req, res }) {
      const tenant = req.get('x-ccid') as string;
      const results = [];
      for (const message of body.messages) {
        const result = await receiveInboundSms(
          deps,
          tenant,
          { from: message.from, to: params.channelId, text: message.text, messageId: message.id },
          'body.messages',
        );
        results.push({ id: message.id, ...result });
      }
      reply(res, 202, { results });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/channels/:channelId/receipts',
    tag: 'SMS',
    summary: 'Receive delivery receipts or errors from a third-party gateway (Async)',
    description:
      'Signed as the inbound messages. `messageId` is the id the gateway answered when it took the message.',
    auth: 'public',
    verify: verifySigned,
    params: channelParams,
    body: thirdPartyReceipts,
    responses: {
      202: { description: 'Accepted', schema: envelopeOf(z.object({ accepted: z.number() })) },
    },
    async handle({ body, req, res }) {
      const tenant = req.get('x-ccid') as string;
      const works = await recordReceipts(
        deps,
        body.receipts.map(receipt => ({
          tenantId: tenant,
          provider: 'Async',
          providerMessageId: receipt.messageId,
          status: receipt.status,
          ...(receipt.reason ? { errorCode: receipt.reason.slice(0, 64) } : {}),
        })),
      );
      reply(res, 202, { accepted: works.length });
    },
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/channels/:channelId/media',
    tag: 'SMS',
    summary: 'Upload a media resource (third-party gateways)',
    description: `Signed as the inbound messages (the signature covers the raw multipart body). One \`file\` part, at most ${MEDIA_MAX_BYTES} bytes, of an image, audio, video or PDF type. The answer's \`url\` (\`genesys://nexus/<mediaId>\`) references it in a RichMedia message.`,
    auth: 'public',
    verify: verifySigned,
    params: channelParams,
    responses: {
      200: {
        description: 'Stored',
        schema: envelopeOf(
          z.object({
            mediaId: z.string(),
            url: z.string(),
            filename: z.string(),
            mimetype: z.string(),
            length: z.number(),
          }),
        ),
      },
    },
    async handle({ params, req, res }) {
      if (!Buffer.isBuffer(req.body)) {
        throw new AppError(
          'NEXUS_ERR_VALIDATION',
          'body.file: send multipart/form-data',
          'body.file',
        );
      }
      const file = await fileFromMultipart(
        req.body,
        req.get('content-type'),
        'file',
        MEDIA_MAX_BYTES,
      );
      if (!MEDIA_TYPES.test(file.mimetype)) {
        throw new AppError(
          'NEXUS_ERR_VALIDATION',
          `body.file: type ${file.mimetype} is not allowed (images, audio, video, PDF)`,
          'body.file',
        );
      }
      const id = randomUUID();
      await insertMedia(db, {
        id,
        tenantId: req.get('x-ccid') as string,
        channelId: params.channelId,
        filename: file.filename.slice(0, 255),
        mimetype: file.mimetype,
        content: file.content,
      });
      reply(res, 200, {
        mediaId: id,
        url: `genesys://nexus/${id}`,
        filename: file.filename.slice(0, 255),
        mimetype: file.mimetype,
        length: file.content.length,
      });
    },
  });
}
