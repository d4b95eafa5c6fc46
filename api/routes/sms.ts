import { randomUUID } from 'node:crypto';
import type { CommonQueryMethods, DatabasePool } from 'slonik';
import { z } from 'zod';
import { findChannelBySender, type ChannelRow } from '../../db/queries/channels.js';
import {
  acceptInboundSms,
  changeConsent,
  consentOf,
  insertMedia,
  markSmsAccepted,
  recordSmsRejection,
} from '../../db/queries/sms.js';
import { findService } from '../../db/queries/services.js';
import { insertMessage } from '../../db/conversation.js';
import { DEFAULT_HELP_TEXT, keywordAction, tenantKeywordTables } from '../../domain/opt-out.js';
import { smsSegments } from '../../domain/sms-segments.js';
import { outboundSmsQueue } from '../../queues/outbound-sms.js';
import { AppError } from '../../lib/errors.js';
import { parsePhone } from '../../domain/phone.js';
import type { Logger } from '../../lib/logger.js';
import { inboundQueue } from '../../queues/inbound.js';
import { receiptsQueue } from '../../queues/receipts.js';
import { callbackSignature } from '../../domain/sms-callbacks.js';
import { secretsEqual } from '../admin-auth.js';
import { fileFromMultipart } from '../multipart.js';
import {
  dispatchWork,
  recordWork,
  recordWorkBatch,
  type EnqueueContext,
} from '../../queues/work.js';
import {
  insertCampaignRecords,
  listCampaignReplies,
  listCampaignRecords,
  recordCampaignReply,
  type NewCampaignRecord,
} from '../../db/queries/sms-campaigns.js';
import { createHmac } from 'node:crypto';
import type { Request, Response } from 'express';
import { serviceSecretContext } from '../../db/service-directory.js';
import type { SecretBox } from '../../lib/secrets.js';
import { assertTenant, tenantOf, type Principal } from '../auth/principal.js';
import { reply } from '../error-handler.js';
import { envelopeOf, type Api } from '../openapi.js';
import { rowNumber } from '../validate.js';

/** The largest media file a gateway may upload. */
export const MEDIA_MAX_BYTES = 5 * 1024 * 1024;
const MEDIA_TYPES =
  /^(image\/(jpeg|png|gif|webp)|audio\/[a-z0-9.+-]+|video\/(mp4|3gpp|quicktime)|application\/pdf)$/;

/**
 * A customer's phone number, normalised where it enters (lib/phone.ts): E.164, or a short code
 * as it is. `+1 (555) 123-4567`, `15551234567` and ` 15551234567` (a `+` lost to form decoding)
 * are one phone, so one conversation and one contact.
 */
const phone = z
  .string()
  .max(64)
  .transform((value, ctx) => {
    const parsed = parsePhone(value);
    if (parsed.ok) return parsed.value;
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: parsed.reason });
    return z.NEVER;
  });

/**
 * The MO form aggregators post (Kaleyra/mGage style): `device_address` (the customer),
 * `inbound_address` (the company's number or short code: a channel's `channelId`), `message`,
 * and the aggregator's `message_id` when it sends one. Other fields are ignored.
 */
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

/** The text of one SMS as callers submit it. */
const smsText = z.string().min(1, 'must not be empty').max(4_096);

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

/**
 * The tenant's `chat.*` channel a message to `address` belongs to, however the number is written
 * (with or without "+", spaces, "00"): a sender id is one channel's (migration 0017).
 */
async function channelFor(
  db: DatabasePool,
  tenant: string,
  address: string,
): Promise<ChannelRow | undefined> {
  const channel = await findChannelBySender(db, tenant, address);
  return channel?.name.startsWith('chat.') ? channel : undefined;
}

/**
 * `POST /nexus/v3/sms/message`: mobile-originated SMS from an aggregator (HTTP Basic: the
 * tenant's ccid and an API key with `nexus:sms:webhook`). The message is matched to its `chat.*`
 * channel by the number it was sent to, threaded into the customer's open interaction on that
 * channel, stored with its `inbound` work (Postgres-first), and answered 202; the inbound worker
 * starts and routes it like a web chat. A message to an unknown number is refused (404) and
 * recorded. Messages to `cxcOnly` channels feed the campaign side, which is not built yet: they
 * are accepted as inbound work that parks as undelivered until it is (replayable then).
 */
export function smsRoutes(
  api: Api,
  deps: {
    db: DatabasePool;
    enqueue: EnqueueContext;
    log: Logger;
    secretKey: Buffer;
    secrets: SecretBox;
    /** NEXUS_SMS_MAX_SEGMENTS. */
    maxSegments: number;
  },
): void {
  const { db } = deps;
  const callbackSignatureOf = (value: string) => callbackSignature(deps.secretKey, value);
  /** Stores one inbound SMS of `tenant` (see the route's description); answers what happened. */
  const acceptMo = async (
    tenant: string,
    body: z.infer<typeof moBody>,
    source: string,
  ): Promise<{ messageId: string | null; interactionId: string | null; duplicate: boolean }> => {
    const from = body.device_address;
    const externalId = body.message_id ?? randomUUID();
    const channel = await channelFor(db, tenant, body.inbound_address);
    if (!channel) {
      await recordSmsRejection(db, {
        tenantId: tenant,
        reason: 'unknown channel',
        from,
        to: body.inbound_address,
        externalId: body.message_id ?? null,
      });
      deps.log.warn(
        { tenant, to: body.inbound_address },
        'inbound SMS to a number with no chat channel: refused',
      );
      throw new AppError(
        'NEXUS_ERR_SMS_UNKNOWN_CHANNEL',
        `${source}.inbound_address: no chat.* channel has channelId ${body.inbound_address}`,
        `${source}.inbound_address`,
      );
    }
    // STOP / START / HELP (the tenant's keywords, else the defaults).
    const keywords = (await findService(db, tenant, 'SmsKeywords'))?.data as
      | {
          languages?: Record<string, { optOut?: string[]; optIn?: string[]; help?: string[] }>;
          helpText?: string;
        }
      | undefined;
    const action = keywordAction(body.message, tenantKeywordTables(keywords?.languages));
    const consent = async (tx: CommonQueryMethods) => {
      if (action !== 'opt-out' && action !== 'opt-in') return;
      await changeConsent(tx, {
        tenantId: tenant,
        sender: channel.channel_id,
        address: from,
        action,
        source: 'keyword',
        keyword: body.message.trim().slice(0, 32),
      });
    };
    const payload = {
      tenantId: tenant,
      channel: 'sms' as const,
      externalId: `${channel.channel_id}/${externalId}`,
      from,
      to: channel.channel_id,
      receivedAt: new Date().toISOString(),
    };
    if (channel.cxc_only) {
      // A campaign number: no chat; the text is a reply to the campaign (and may opt out).
      const stored = await db.transaction(async tx => {
        const created = await recordCampaignReply(tx, {
          tenantId: tenant,
          sender: channel.channel_id,
          address: from,
          externalId,
          text: body.message,
          keyword: action ?? null,
        });
        if (created) await consent(tx);
        return created;
      });
      return { messageId: null, interactionId: null, duplicate: !stored };
    }
    const { accepted, work } = await db.transaction(async tx => {
      const stored = await acceptInboundSms(tx, {
        tenantId: tenant,
        channel,
        from,
        text: body.message,
        externalId,
      });
      if (!stored.stored) return { accepted: stored, work: [] };
      await consent(tx);
      const works = [
        await recordWork(
          tx,
          inboundQueue,
          { ...payload, interactionId: stored.interactionId, messageId: stored.messageId },
          deps.enqueue.sweepAfterMs,
        ),
      ];
      if (action === 'help') {
        // HELP is answered at once, in the conversation, with the tenant's help text.
        const text = keywords?.helpText ?? DEFAULT_HELP_TEXT;
        const help = await insertMessage(tx, {
          id: randomUUID(),
          tenantId: tenant,
          interactionId: stored.interactionId,
          direction: 'outbound',
          senderType: 'system',
          senderId: 'system',
          text,
          clientMessageId: `help:${externalId}`,
        });
        await markSmsAccepted(tx, help.id, smsSegments(text));
        works.push(
          await recordWork(
            tx,
            outboundSmsQueue,
            { tenantId: tenant, messageId: help.id },
            deps.enqueue.sweepAfterMs,
          ),
        );
      }
      return { accepted: stored, work: works };
    });
    if (work.length > 0) await dispatchWork(deps.enqueue, work);
    return {
      messageId: accepted.messageId,
      interactionId: accepted.interactionId,
      duplicate: !accepted.stored,
    };
  };
  const receiveMo = async (
    body: z.infer<typeof moBody>,
    principal: Principal,
    res: Response,
    source: 'body' | 'query',
  ): Promise<void> => {
    reply(res, 202, await acceptMo(tenantOf(principal), body, source));
  };

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
      const tenant = tenantOf(principal);
      const work = await db.transaction(tx =>
        recordWork(
          tx,
          receiptsQueue,
          {
            tenantId: tenant,
            provider: 'aggregator',
            providerMessageId: body.messageId,
            status: body.status,
            ...(body.reason ? { errorCode: body.reason } : {}),
          },
          deps.enqueue.sweepAfterMs,
        ),
      );
      await dispatchWork(deps.enqueue, [work]);
      reply(res, 202, { duplicate: !work.created });
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
        const expected = callbackSignatureOf(`${query.ccid}:${query.id}`);
        if (!secretsEqual(query.sig, expected)) {
          deps.log.warn({ tenant: query.ccid }, 'Kannel report with a bad signature: refused');
          throw new AppError('NEXUS_ERR_UNAUTHORIZED', 'bad report signature', 'query.sig');
        }
        const work = await db.transaction(tx =>
          recordWork(
            tx,
            receiptsQueue,
            {
              tenantId: query.ccid,
              provider: 'Kannel',
              providerMessageId: query.id,
              status: String(query.type),
              ...(query.answer ? { errorCode: query.answer.slice(0, 64) } : {}),
            },
            deps.enqueue.sweepAfterMs,
          ),
        );
        await dispatchWork(deps.enqueue, [work]);
        reply(res, 202, {});
      },
    });
  }

  api.route({
    method: 'get',
    path: '/nexus/v3/sms/consent/:ccid',
    tag: 'SMS',
    summary: "A customer number's opt-out state and its history",
    description:
      'Per sender (the channel number): whether `address` opted out (STOP) or not; then every change, newest first, with its source and keyword.',
    auth: 'nexus:provisioning:*',
    params: z.object({ ccid: z.string().min(1).max(255) }),
    query: z.object({ address: phone }).strict(),
    responses: {
      200: {
        description: 'The ledger for this number',
        schema: envelopeOf(
          z.object({
            address: z.string(),
            senders: z.array(
              z.object({ sender: z.string(), optedOut: z.boolean(), updated: z.string() }),
            ),
            changes: z.array(
              z.object({
                sender: z.string(),
                action: z.string(),
                source: z.string(),
                keyword: z.string().nullable(),
                at: z.string(),
              }),
            ),
          }),
        ),
      },
    },
    async handle({ params, query, principal, res }) {
      assertTenant(principal, params.ccid);
      const address = query.address;
      const ledger = await consentOf(db, params.ccid, address);
      reply(res, 200, {
        address,
        senders: ledger.senders.map(row => ({
          sender: row.sender,
          optedOut: row.opted_out,
          updated: row.updated_at,
        })),
        changes: ledger.changes.map(row => ({
          sender: row.sender,
          action: row.action,
          source: row.source,
          keyword: row.keyword,
          at: row.created_at,
        })),
      });
    },
  });

  // --- The Third-Party Messaging API (Async gateways), signed with the channel's api secret ---

  /** The channel's api secret from the tenant's `Async` service, if the channel is there. */
  const apiSecretOf = async (tenant: string, channelId: string): Promise<string | undefined> => {
    const service = await findService(db, tenant, 'Async');
    if (!service?.secret_sealed) return undefined;
    const secret = deps.secrets.open(
      service.secret_sealed,
      serviceSecretContext(tenant, 'Async'),
    ) as {
      channels?: { channelId: string; api?: { secret?: string } }[];
    };
    return secret.channels?.find(channel => channel.channelId === channelId)?.api?.secret;
  };

  /**
   * `x-ccid` names the tenant; `X-Hub-Signature: sha1=<hex HMAC-SHA1(raw body, the channel's api
   * secret)>`, compared in constant time. Every failure is the same 401, whatever was wrong.
   */
  const verifySigned = async (req: Request): Promise<void> => {
    const refuse = (why: string) => {
      deps.log.warn({ path: req.path, why }, 'third-party request refused');
      return new AppError(
        'NEXUS_ERR_UNAUTHORIZED',
        'Missing or invalid X-Hub-Signature for this channel',
        'header.x-hub-signature',
      );
    };
    const tenant = req.get('x-ccid');
    const signature = req.get('x-hub-signature');
    const raw = (req as { rawBody?: Buffer }).rawBody;
    if (!tenant || !signature || !raw) throw refuse('missing x-ccid, signature or JSON body');
    const secret = await apiSecretOf(tenant, String(req.params.channelId));
    if (!secret) throw refuse('unknown tenant or channel');
    const expected = `sha1=${createHmac('sha1', secret).update(raw).digest('hex')}`;
    if (!secretsEqual(signature, expected)) throw refuse('signature mismatch');
  };

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
        const result = await acceptMo(
          tenant,
          {
            device_address: message.from,
            inbound_address: params.channelId,
            message: message.text,
            message_id: message.id,
          },
          'body.messages',
        );
        results.push({ id: message.id, ...result });
      }
      reply(res, 202, { results });
    },
  });

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
      const works = await db.transaction(async tx => {
        const recorded = [];
        for (const receipt of body.receipts) {
          recorded.push(
            await recordWork(
              tx,
              receiptsQueue,
              {
                tenantId: tenant,
                provider: 'Async',
                providerMessageId: receipt.messageId,
                status: receipt.status,
                ...(receipt.reason ? { errorCode: receipt.reason.slice(0, 64) } : {}),
              },
              deps.enqueue.sweepAfterMs,
            ),
          );
        }
        return recorded;
      });
      await dispatchWork(deps.enqueue, works);
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

  // --- Campaigns (CX-Contact-like callers) ---

  const campaignParams = z.object({
    ccid: z.string().min(1).max(255),
    campaign: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1-128 letters, digits, "_", ".", ":" or "-"'),
  });
  const campaignRecords = z
    .object({
      records: z
        .array(
          z
            .object({
              id: z.string().trim().min(1).max(255),
              from: z.string().trim().min(1).max(64),
              to: phone,
              text: smsText,
            })
            .strict(),
        )
        .min(1)
        .max(1_000),
    })
    .strict()
    .openapi('SmsCampaignRecords');
  const recordOut = z
    .object({
      id: z.string(),
      to: z.string(),
      from: z.string(),
      status: z.enum(['accepted', 'sent', 'delivered', 'failed']),
      reason: z.string().nullable(),
      encoding: z.string(),
      segments: z.number(),
      provider: z.string().nullable(),
      updated: z.string(),
    })
    .openapi('SmsCampaignRecord');

  api.route({
    method: 'post',
    path: '/nexus/v3/sms/campaigns/:ccid/:campaign/records',
    tag: 'SMS',
    summary: 'Submit SMS records of a campaign',
    description:
      "Up to 1,000 records `{id, from, to, text}`: `from` is a `chat.*` channel's channelId; `id` is the caller's, unique within the campaign (a resubmitted id is ignored). Each is checked against the opt-out ledger and the provider's rate when it is sent; its status changes are `campaign.record.status` webhook events.",
    auth: 'nexus:provisioning:*',
    params: campaignParams,
    body: campaignRecords,
    responses: {
      202: {
        description: 'Accepted',
        schema: envelopeOf(z.object({ accepted: z.number(), duplicates: z.number() })),
      },
    },
    async handle({ params, body, principal, res }) {
      assertTenant(principal, params.ccid);
      const channels = new Map<string, ChannelRow>();
      const rows: NewCampaignRecord[] = [];
      for (const [index, record] of body.records.entries()) {
        const channel =
          channels.get(record.from) ?? (await channelFor(db, params.ccid, record.from));
        if (!channel) {
          throw new AppError(
            'NEXUS_ERR_SMS_UNKNOWN_CHANNEL',
            `body.records.${index}.from: no chat.* channel has channelId ${record.from}`,
            `body.records.${index}.from`,
          );
        }
        channels.set(record.from, channel);
        const size = smsSegments(record.text);
        if (size.segments > deps.maxSegments) {
          throw new AppError(
            'NEXUS_ERR_SMS_TOO_LONG',
            `body.records.${index}.text: takes ${size.segments} SMS segments (${size.encoding}); at most ${deps.maxSegments} are allowed`,
            `body.records.${index}.text`,
          );
        }
        rows.push({
          id: randomUUID(),
          tenantId: params.ccid,
          campaign: params.campaign,
          recordId: record.id,
          sender: channel.channel_id,
          address: record.to,
          text: record.text,
          encoding: size.encoding,
          segments: size.segments,
        });
      }
      const works = await db.transaction(async tx => {
        const inserted = await insertCampaignRecords(tx, rows);
        return recordWorkBatch(
          tx,
          outboundSmsQueue,
          inserted.map(id => ({ tenantId: params.ccid, messageId: id, campaign: true })),
          deps.enqueue.sweepAfterMs,
        );
      });
      await dispatchWork(deps.enqueue, works);
      reply(res, 202, { accepted: works.length, duplicates: rows.length - works.length });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/sms/campaigns/:ccid/:campaign/records',
    tag: 'SMS',
    summary: "A campaign's records and their statuses",
    description: 'By record id; page with `after` (the last id of the previous page).',
    auth: 'nexus:provisioning:*',
    params: campaignParams,
    query: z
      .object({
        after: z.string().max(255).optional(),
        limit: z.coerce.number().int().min(1).max(1_000).default(100),
      })
      .strict(),
    responses: {
      200: {
        description: 'Records',
        schema: envelopeOf(z.object({ items: z.array(recordOut), next: z.string().nullable() })),
      },
    },
    async handle({ params, query, principal, res }) {
      assertTenant(principal, params.ccid);
      const rows = await listCampaignRecords(db, params.ccid, params.campaign, {
        after: query.after,
        limit: query.limit,
      });
      const last = rows.at(-1);
      reply(res, 200, {
        items: rows.map(row => ({
          id: row.record_id,
          to: row.address,
          from: row.sender,
          status: row.delivery_status,
          reason: row.delivery_reason,
          encoding: row.encoding,
          segments: row.segments,
          provider: row.provider,
          updated: row.delivery_updated_at,
        })),
        next: rows.length === query.limit && last ? last.record_id : null,
      });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/sms/campaigns/:ccid/:campaign/replies',
    tag: 'SMS',
    summary: "Texts to the campaign's numbers, replying to it",
    description:
      'Texts to `cxcOnly` channels, each attributed to the campaign that last wrote to that number from that sender; oldest first, page with `after`. Each is also a `campaign.reply` webhook event.',
    auth: 'nexus:provisioning:*',
    params: campaignParams,
    query: z
      .object({
        after: rowNumber(0).optional(),
        limit: z.coerce.number().int().min(1).max(1_000).default(100),
      })
      .strict(),
    responses: {
      200: {
        description: 'Replies',
        schema: envelopeOf(
          z.object({
            items: z.array(
              z.object({
                id: z.number(),
                from: z.string(),
                to: z.string(),
                text: z.string(),
                recordId: z.string().nullable(),
                keyword: z.string().nullable(),
                at: z.string(),
              }),
            ),
            next: z.number().nullable(),
          }),
        ),
      },
    },
    async handle({ params, query, principal, res }) {
      assertTenant(principal, params.ccid);
      const rows = await listCampaignReplies(db, params.ccid, params.campaign, {
        after: query.after,
        limit: query.limit,
      });
      const last = rows.at(-1);
      reply(res, 200, {
        items: rows.map(row => ({
          id: row.id,
          from: row.address,
          to: row.sender,
          text: row.text,
          recordId: row.record_id,
          keyword: row.keyword,
          at: row.created_at,
        })),
        next: rows.length === query.limit && last ? last.id : null,
      });
    },
  });
}
