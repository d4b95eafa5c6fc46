/**
 * Provider feedback routes: SparkPost's event webhook (HTTP Basic credentials the tenant keeps in
 * its `SparkPostEmail` secret) and an Async gateway's email receipts (signed as the gateway's
 * other calls; the route is declared with the Third-Party Messaging API's, which lends its
 * signature check). Both refuse a caller without the right credentials with
 * NEXUS_ERR_EMAIL_FEEDBACK_UNAUTHORIZED and apply nothing; the mapping is api/email/feedback.ts.
 */
import type { Request } from 'express';
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { findService } from '../../../db/queries/services.js';
import { serviceSecretContext } from '../../../db/service-directory.js';
import { AppError, isAppError } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import type { SecretBox } from '../../../lib/secrets.js';
import { basicCredentials, secretsEqual } from '../../admin-auth.js';
import {
  applyAsyncEmailReceipts,
  applySparkPostBatch,
  ASYNC_EMAIL_RECEIPT_STATUSES,
} from '../../email/feedback.js';
import { reply } from '../../error-handler.js';
import { envelopeOf, type Api } from '../../openapi.js';
import { emailAddress } from '../../email/fields.js';

export interface EmailFeedbackRouteDeps {
  db: DatabasePool;
  log: Logger;
  /** Opens the tenant's `SparkPostEmail` secret (the webhook's Basic credentials). */
  secrets: SecretBox;
}

export const SPARKPOST_EVENTS_PATH = '/nexus/v3/email/sparkpost/:ccid/events';
/**
 * The body limit of SparkPost's batches: "1 to 1000 or more events" of about 1.5 kB each, and a
 * refused batch is retried for 8 hours, then dropped.
 */
export const SPARKPOST_BATCH_MAX_BYTES = 10 * 1024 * 1024;

/** SparkPost posts an array of `{msys: {...}}`; each element is read leniently. */
const sparkPostBatch = z
  .array(z.object({}).passthrough())
  .max(10_000)
  .openapi('SparkPostEventBatch', {
    description:
      'SparkPost event webhook batch: `[{msys: {message_event | gen_event | unsubscribe_event | track_event | …: {type, event_id, transmission_id, rcpt_to, bounce_class, reason, …}}}]`.',
  });

const feedbackCounts = z.object({
  applied: z.number(),
  duplicates: z.number(),
  ignored: z.number(),
});

export function emailFeedbackRoutes(api: Api, deps: EmailFeedbackRouteDeps): void {
  const { db, log } = deps;

  /** The Basic credentials the tenant gave SparkPost's webhook, if it configured them. */
  const webhookCredentialsOf = async (tenant: string) => {
    const service = await findService(db, tenant, 'SparkPostEmail');
    if (!service?.secret_sealed) return undefined;
    const secret = deps.secrets.open(
      service.secret_sealed,
      serviceSecretContext(tenant, 'SparkPostEmail'),
    ) as { webhook?: { username: string; password: string } };
    return secret.webhook;
  };

  /**
   * `Authorization: Basic` with the user name and password of the tenant's `SparkPostEmail`
   * `secret.webhook`, compared in constant time. A tenant without them refuses every batch.
   */
  const verifySparkPost = async (req: Request): Promise<void> => {
    const refuse = (why: string) => {
      log.warn({ path: req.path, why }, 'SparkPost event batch refused');
      req.res?.setHeader('WWW-Authenticate', 'Basic realm="nexus-sparkpost", charset="UTF-8"');
      return new AppError(
        'NEXUS_ERR_EMAIL_FEEDBACK_UNAUTHORIZED',
        "Missing or invalid Basic credentials for this tenant's SparkPost webhook",
        'header.authorization',
      );
    };
    const presented = basicCredentials(req.get('authorization'));
    if (!presented) throw refuse('no Basic credentials');
    const expected = await webhookCredentialsOf(String(req.params.ccid));
    if (!expected) throw refuse('no SparkPostEmail secret.webhook for the tenant');
    const userMatches = secretsEqual(presented.user, expected.username);
    const passwordMatches = secretsEqual(presented.password, expected.password);
    if (!userMatches || !passwordMatches) throw refuse('credentials mismatch');
  };

  api.route({
    method: 'post',
    path: SPARKPOST_EVENTS_PATH,
    tag: 'Email',
    summary: "SparkPost's event webhook",
    description:
      "The target URL of a SparkPost webhook (`auth_type: basic` with the `SparkPostEmail` service's `secret.webhook` `{username, password}`; without them every batch is refused). Events find their mail by `transmission_id`: `delivery` → `delivered`; `bounce` / `out_of_band` → `bounced`, and bounce classes 10, 30 and 90 also suppress `rcpt_to` (`hard-bounce`); `spam_complaint` → `complained` and suppressed (`complaint`); `list_unsubscribe` / `link_unsubscribe` → suppressed (`unsubscribe`); `policy_rejection` / `generation_failure` / `generation_rejection` → `failed` (NEXUS_ERR_EMAIL_PROVIDER_REFUSED); other events, and events of transmissions the tenant does not have, are ignored. A repeated batch (`X-MessageSystems-Batch-ID`) or event (`event_id`) changes nothing.",
    auth: 'public',
    verify: verifySparkPost,
    params: z.object({ ccid: z.string().min(1).max(255) }),
    body: sparkPostBatch,
    responses: {
      200: { description: 'Applied', schema: envelopeOf(feedbackCounts) },
    },
    async handle({ params, body, req, res }) {
      const batchId = req.get('x-messagesystems-batch-id')?.trim();
      const counts = await applySparkPostBatch(
        { db, log },
        params.ccid,
        batchId && batchId.length <= 255 ? batchId : undefined,
        body,
      );
      reply(res, 200, counts);
    },
  });
}

const asyncEmailReceipts = z
  .object({
    receipts: z
      .array(
        z
          .object({
            messageId: z.string().trim().min(1).max(255),
            status: z.enum(ASYNC_EMAIL_RECEIPT_STATUSES),
            address: emailAddress.optional(),
            reason: z.string().trim().min(1).max(500).optional(),
            permanent: z.boolean().optional(),
          })
          .strict(),
      )
      .min(1)
      .max(100),
  })
  .strict()
  .openapi('ThirdPartyEmailReceipts');

/**
 * The Async gateway's email receipts, at `/nexus/v3/channels/:channelId/email-receipts` beside
 * its SMS receipts: `verifySigned` is the Third-Party Messaging API's signature check, whose
 * refusal is answered as an email feedback refusal.
 */
export function asyncEmailReceiptRoute(
  api: Api,
  deps: Pick<EmailFeedbackRouteDeps, 'db' | 'log'>,
  verifySigned: (req: Request) => Promise<void>,
): void {
  api.route({
    method: 'post',
    path: '/nexus/v3/channels/:channelId/email-receipts',
    tag: 'Email',
    summary: 'Receive email statuses from a third-party gateway (Async)',
    description:
      "Signed as the gateway's inbound messages (`X-Hub-Signature` with the channel's api secret, `x-ccid`); `channelId` is the email channel's domain. Each receipt `{messageId, status, address?, reason?, permanent?}`: `messageId` is the id the gateway answered when it took the mail; `delivered`, `bounced` (with `permanent: true` the address is suppressed, `hard-bounce`), `complained` (suppressed, `complaint`) or `failed` (NEXUS_ERR_EMAIL_PROVIDER_REFUSED). `address` names the recipient (it must be one of the mail's; left out, the mail's only recipient). Ids of mails the channel does not have are ignored; a repeated receipt changes nothing.",
    auth: 'public',
    async verify(req) {
      try {
        await verifySigned(req);
      } catch (error) {
        if (isAppError(error) && error.status === 401) {
          throw new AppError('NEXUS_ERR_EMAIL_FEEDBACK_UNAUTHORIZED', error.message, error.field, {
            cause: error,
          });
        }
        throw error;
      }
    },
    params: z.object({ channelId: z.string().min(1).max(255) }),
    body: asyncEmailReceipts,
    responses: {
      200: {
        description: 'Applied',
        schema: envelopeOf(z.object({ applied: z.number(), ignored: z.number() })),
      },
    },
    async handle({ params, body, req, res }) {
      const counts = await applyAsyncEmailReceipts(
        deps,
        req.get('x-ccid') as string,
        params.channelId,
        body.receipts,
        'body.receipts',
      );
      reply(res, 200, counts);
    },
  });
}
