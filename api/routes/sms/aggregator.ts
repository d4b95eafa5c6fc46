/**
 * SMS from aggregators (Kaleyra/mGage style, Kannel): mobile-originated texts (`POST` and `GET
 * /nexus/v3/sms/message`) and delivery receipts (`POST /nexus/v3/sms/receipt`, and Kannel's
 * signed `dlr-url` at `/nexus/v3/sms/receipt/kannel`). Texts and receipts are stored through the
 * shared intake (api/sms/intake.ts) and answered 202.
 */
import { z } from 'zod';
import { callbackSignature } from '../../../domain/sms-callbacks.js';
import { AppError } from '../../../lib/errors.js';
import { secretsEqual } from '../../admin-auth.js';
import { tenantOf, type Principal } from '../../auth/principal.js';
import { reply } from '../../error-handler.js';
import { envelopeOf, type Api } from '../../openapi.js';
import { receiveInboundSms, recordReceipts, type IntakeDeps } from '../../sms/intake.js';
import { phone, smsText } from './fields.js';
import type { Response } from 'express';

export interface AggregatorDeps extends IntakeDeps {
  /** Signs the Kannel `dlr-url` (NEXUS_SECRET_KEY). */
  secretKey: Buffer;
}

/**
 * The MO form aggregators post (Kaleyra/mGage style): `device_address` (the customer),
 * `inbound_address` (the company's number or short code: a channel's `channelId`), `message`,
 * and the aggregator's `message_id` when it sends one. Other fields are ignored.
 */
const moBody = z
  .object({
    device_address: phone,
    inbound_address: z.string().trim().min(1).max(64),
    message: smsText,
    message_id: z.string().trim().min(1).max(255).optional(),
  })
  .passthrough()
  .openapi('SmsMessage', {
    description:
      'Form fields or JSON. Without `message_id`, a retried MO cannot be recognised and is stored again.',
  });

const receiptBody = z
  .object({
    messageId: z.string().trim().min(1).max(255),
    status: z.enum(['sent', 'delivered', 'failed']),
    reason: z.string().trim().min(1).max(255).optional(),
  })
  .passthrough()
  .openapi('SmsReceipt');

const kannelReport = z.object({
  ccid: z.string().min(1).max(255),
  id: z.string().uuid('must be a message id'),
  sig: z.string().min(1).max(128),
  type: z.coerce.number().int().min(0).max(64),
  answer: z.string().max(1_000).optional(),
});

const moResponses = {
  202: {
    description: 'Accepted (or a retry of an accepted message)',
    schema: envelopeOf(
      z.object({
        messageId: z.string().nullable(),
        interactionId: z.string().nullable(),
        duplicate: z.boolean(),
      }),
    ),
  },
};

/**
 * `/nexus/v3/sms/message`: mobile-originated SMS from an aggregator (HTTP Basic: the tenant's
 * ccid and an API key with `nexus:sms:webhook`), stored by {@link receiveInboundSms}; then the
 * aggregators' delivery receipts.
 */
export function aggregatorRoutes(api: Api, deps: AggregatorDeps): void {
  const receiveMo = async (
    body: z.infer<typeof moBody>,
    principal: Principal,
    res: Response,
    source: 'body' | 'query',
  ): Promise<void> => {
    const message = {
      from: body.device_address,
      to: body.inbound_address,
      text: body.message,
      messageId: body.message_id,
    };
    reply(res, 202, await receiveInboundSms(deps, tenantOf(principal), message, source));
  };

  api.route({
    method: 'post',
    path: '/nexus/v3/sms/message',
    tag: 'SMS',
    summary: 'Receive an inbound SMS (MO) from an aggregator',
    description:
      'HTTP Basic with the tenant ccid as the user and an API key (permission `nexus:sms:webhook`) as the password, or `x-api-key` with `x-ccid`.',
    auth: 'nexus:sms:webhook',
    body: moBody,
    form: true,
    responses: moResponses,
    handle: ({ body, principal, res }) => receiveMo(body, principal, res, 'body'),
  });
  api.route({
    method: 'get',
    path: '/nexus/v3/sms/message',
    tag: 'SMS',
    summary: 'Receive an inbound SMS (MO) as query parameters',
    description:
      "For gateways that forward MO with a GET (Kannel's `get-url`): the same fields and credentials as the POST, in the query string.",
    auth: 'nexus:sms:webhook',
    query: moBody,
    responses: moResponses,
    handle: ({ query, principal, res }) => receiveMo(query, principal, res, 'query'),
  });

  api.route({
    method: 'post',
    path: '/nexus/v3/sms/receipt',
    tag: 'SMS',
    summary: 'Receive a delivery receipt from an aggregator',
    description:
      'HTTP Basic as for `/nexus/v3/sms/message`. `messageId` is the id the provider gave when it took the message; `status` one of sent, delivered, failed. Receipts merge forward only: a late `sent` never overwrites `delivered`.',
    auth: 'nexus:sms:webhook',
    body: receiptBody,
    form: true,
    responses: {
      202: { description: 'Accepted', schema: envelopeOf(z.object({ duplicate: z.boolean() })) },
    },
    async handle({ body, principal, res }) {
      const [work] = await recordReceipts(deps, [
        {
          tenantId: tenantOf(principal),
          provider: 'aggregator',
          providerMessageId: body.messageId,
          status: body.status,
          ...(body.reason ? { errorCode: body.reason } : {}),
        },
      ]);
      reply(res, 202, { duplicate: !work?.created });
    },
  });

  for (const method of ['get', 'post'] as const) {
    api.route({
      method,
      path: '/nexus/v3/sms/receipt/kannel',
      tag: 'SMS',
      summary: 'Receive a Kannel delivery report',
      description:
        "The `dlr-url` the hub gives Kannel with each message: `ccid`, `id` and `sig` (the hub signs them; Kannel cannot authenticate), and Kannel's `type` (%d) and `answer` (%A).",
      auth: 'public',
      query: kannelReport,
      responses: { 202: { description: 'Accepted', schema: envelopeOf(z.object({})) } },
      async handle({ query, res }) {
        const expected = callbackSignature(deps.secretKey, `${query.ccid}:${query.id}`);
        if (!secretsEqual(query.sig, expected)) {
          deps.log.warn({ tenant: query.ccid }, 'Kannel report with a bad signature: refused');
          throw new AppError('NEXUS_ERR_UNAUTHORIZED', 'bad report signature', 'query.sig');
        }
        await recordReceipts(deps, [
          {
            tenantId: query.ccid,
            provider: 'Kannel',
            providerMessageId: query.id,
            status: String(query.type),
            ...(query.answer ? { errorCode: query.answer.slice(0, 64) } : {}),
          },
        ]);
        reply(res, 202, {});
      },
    });
  }
}
