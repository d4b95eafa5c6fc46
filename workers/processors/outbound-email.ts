import type { CommonQueryMethods, DatabasePool } from 'slonik';
import { changeEmailConsent } from '../../db/queries/email-consent.js';
import { applyEmailStatus } from '../../db/queries/email.js';
import {
  loadEmailsToSend,
  recordEmailsSent,
  type EmailToLoad,
  type LoadedEmail,
  type SendableEmail,
  type SentEmail,
} from '../../db/queries/email-batch.js';
import { ServiceDirectory } from '../../db/service-directory.js';
import { returnPath, unsubscribeUrl } from '../../domain/email-links.js';
import { isHardBounce } from '../../domain/email-status.js';
import type { Config } from '../../lib/config.js';
import { EgressBlockedError, EgressGuard } from '../../lib/egress.js';
import { WorkFailure, failureCodeOf } from '../../lib/errors.js';
import { GroupCommit } from '../../lib/group-commit.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import type { Logger } from '../../lib/logger.js';
import { emailFeedbackTotal, emailSendsTotal } from '../../lib/metrics.js';
import type { RedisConnection } from '../../lib/redis.js';
import { SecretBox } from '../../lib/secrets.js';
import { outboundEmailQueue, type OutboundEmailPayload } from '../../queues/outbound-email.js';
import { EMAIL_PROVIDERS, EMAIL_PROVIDER_SERVICE } from '../email-providers/index.js';
import {
  EmailProviderThrottledError,
  EmailRejectedError,
  type EmailAccepted,
  type EmailProvider,
  type EmailProviderContext,
  type RejectedRecipient,
} from '../email-providers/provider.js';
import { SmtpPools } from '../email-providers/smtp.js';
import { composeEmail, type DkimKey, type EmailToBuild } from '../email-message.js';
import { StaleWorkError, type JobContext, type Processor } from '../run-processor.js';
import { SendRate, later } from '../send-rate.js';

/** How many times a provider's 420/429 may delay one mail before it counts as a failed attempt. */
const MAX_THROTTLED = 50;

export interface OutboundEmailDeps {
  db: DatabasePool;
  /** Send rates are counted in Redis, across every worker. */
  redis: RedisConnection;
  log: Logger;
  bus: InvalidationBus;
  config: Config;
  /** Tests pass a guard of their own; the default allows `config.egressAllow`. */
  guard?: EgressGuard | undefined;
}

/**
 * The `outbound-email` processor: sends one stored mail (a campaign record) through its domain's
 * provider (the email channel's `provider`, else the `Email` service's) and records the answer:
 * status `sent` with the provider's id, a `campaign.record.status` event for a campaign record.
 *
 * - A mail past `queued` (a duplicate run) is not sent again. A worker that dies between the
 *   provider's answer and the commit sends it once more on the retry, with the same Message-ID
 *   (chosen at intake), so the duplicate is recognisable.
 * - Campaign mail to a suppressed address is not sent: status `opted-out`.
 * - The send rate per provider and domain is shared by every worker; over it, and when the
 *   provider asks to slow down (420, 429), the job waits without using an attempt.
 * - Every recipient refused at once (an SMTP 5xx at RCPT) makes the mail `bounced`, and a hard
 *   refusal (5.1.x) suppresses the address; other refusals fail the mail (the runner's
 *   final-failure hook marks it `failed` with the code).
 * - Concurrent jobs share their database work (group commit): one statement counts their
 *   attempts and loads their mails (`db/queries/email-batch.ts`), one transaction records the
 *   `sent` ones and completes their work rows. The rare outcomes have transactions of their own.
 */
export function createOutboundEmailProcessor(
  deps: OutboundEmailDeps,
): Processor<typeof outboundEmailQueue> {
  const { db, config } = deps;
  const guard = deps.guard ?? new EgressGuard(config.egressAllow);
  const services = new ServiceDirectory(
    db,
    new SecretBox(config.secretKey, config.previousSecretKeys),
    deps.bus,
  );
  const smtp = new SmtpPools();
  const providers: Readonly<Record<string, EmailProvider>> = {
    ...EMAIL_PROVIDERS,
    SMTP: smtp.send,
  };
  const publicUrl = config.http.publicUrl ?? `http://localhost:${config.http.port}`;
  const rate = new SendRate(deps.redis, `${config.queues.prefix}:email-rate`);

  /** The domain's DKIM key, from the SmtpEmail service (whatever provider sends the mail). */
  const dkimKeyOf = async (tenantId: string, domain: string): Promise<DkimKey | undefined> => {
    const service = await services.get(tenantId, 'SmtpEmail');
    const entry = (
      service?.data as { dkim?: { domain: string; selector: string }[] } | undefined
    )?.dkim?.find(item => item.domain.toLowerCase() === domain.toLowerCase());
    if (!entry) return undefined;
    const keys = (service?.secret as { dkimKeys?: Record<string, string> } | undefined)?.dkimKeys;
    const pem = Object.entries(keys ?? {}).find(
      ([name]) => name.toLowerCase() === domain.toLowerCase(),
    )?.[1];
    return pem
      ? { domainName: entry.domain, keySelector: entry.selector, privateKey: pem }
      : undefined;
  };

  const toBuild = (mail: SendableEmail): EmailToBuild => ({
    messageId: mail.message_id,
    from: { address: mail.from_address, name: mail.from_name ?? undefined },
    to: mail.to_addresses,
    cc: mail.cc_addresses,
    bcc: mail.bcc_addresses,
    replyTo: mail.reply_to ? { address: mail.reply_to } : undefined,
    subject: mail.subject,
    text: mail.text_body,
    html: mail.html_body ?? undefined,
    inReplyTo: mail.in_reply_to ?? undefined,
    references: mail.reference_ids,
    unsubscribe:
      mail.campaign !== null
        ? { url: unsubscribeUrl(publicUrl, config.secretKey, mail.tenant_id, mail.id) }
        : undefined,
    returnPath: config.email.bounceDomain
      ? returnPath(mail.id, config.email.bounceDomain)
      : undefined,
  });

  /** Suppresses the hard-refused recipients (in the caller's transaction). */
  const suppressHard = async (
    tx: CommonQueryMethods,
    mail: SendableEmail,
    rejected: readonly RejectedRecipient[],
  ) => {
    for (const entry of rejected) {
      // Suppressed only on an enhanced status saying the mailbox does not exist: a bare 550 at
      // RCPT is also a relay's policy answer.
      if (!isHardBounce(entry.status)) continue;
      await changeEmailConsent(tx, {
        tenantId: mail.tenant_id,
        address: entry.address,
        action: 'suppress',
        reason: 'hard-bounce',
        source: 'smtp-reject',
        detail: entry.response,
      });
      emailFeedbackTotal.inc({ domain: mail.domain, kind: 'hard_bounce' });
    }
  };

  /**
   * Concurrent jobs' loads (with their claims) and `sent` records, each shared by a group. One
   * flush of each at a time: the groups are larger (0.3 commits per mail in the email bench
   * against 0.45 with two in flight), for less CPU per mail.
   */
  const queue = outboundEmailQueue.name;
  const loads = new GroupCommit<EmailToLoad, LoadedEmail>(
    jobs => loadEmailsToSend(db, queue, jobs),
    256,
    1,
  );
  const records = new GroupCommit<SentEmail, boolean>(
    sent => db.transaction(tx => recordEmailsSent(tx, queue, sent)),
    256,
    1,
  );

  const processor = async (payload: OutboundEmailPayload, ctx: JobContext) => {
    const loaded = await loads.submit({
      jobId: ctx.job.id ?? '',
      tenantId: payload.tenantId,
      id: payload.recordId,
    });
    // No pending work row: a duplicate run (the runner tells a foreign job apart).
    if (!loaded) throw new StaleWorkError();
    const mail = loaded.mail;
    if (!mail) throw new WorkFailure('NEXUS_ERR_EMAIL_NOT_SENDABLE', 'no such email');
    if (mail.delivery_status !== 'queued') {
      ctx.log.info({ status: mail.delivery_status }, 'already sent: nothing to do');
      return;
    }
    if (mail.channel_type !== 'email') {
      throw new WorkFailure(
        'NEXUS_ERR_EMAIL_NOT_SENDABLE',
        `the tenant has no email channel for ${mail.domain} any more`,
      );
    }
    const providerName =
      mail.channel_provider ??
      ((await services.get(payload.tenantId, 'Email'))?.data as { provider?: string } | undefined)
        ?.provider;
    if (!providerName) {
      throw new WorkFailure(
        'NEXUS_ERR_EMAIL_PROVIDER_NOT_CONFIGURED',
        'the tenant has no Email service, and the channel names no provider',
      );
    }
    const provider = providers[providerName];
    if (!provider) {
      throw new WorkFailure(
        'NEXUS_ERR_EMAIL_PROVIDER_UNSUPPORTED',
        `email provider ${providerName} is not supported in this version`,
      );
    }
    // The suppression list: campaign mail goes to no address that bounced hard, complained or
    // unsubscribed (the load answered which To addresses are on it). An agent's answer to a
    // customer who wrote in is not campaign mail.
    if (mail.campaign !== null) {
      const suppressed = mail.suppressed;
      if (suppressed.length > 0) {
        await ctx.complete(tx =>
          applyEmailStatus(
            tx,
            { tenantId: payload.tenantId, id: mail.id },
            { status: 'opted-out', reason: `suppressed: ${suppressed.join(', ')}` },
          ),
        );
        emailSendsTotal.inc({ provider: providerName, domain: mail.domain, outcome: 'opted-out' });
        return;
      }
    }
    // The provider's rate for this domain, across every worker.
    const settings = (
      await services.get(payload.tenantId, EMAIL_PROVIDER_SERVICE[providerName] ?? '')
    )?.data as { maxPerSecond?: number } | undefined;
    const waitMs = await rate.wait(
      settings?.maxPerSecond ?? config.email.ratePerSecond,
      `${providerName}:${payload.tenantId}:${mail.domain}`,
    );
    if (waitMs > 0) await later(ctx, waitMs, 'email rate limit reached: waiting');
    const fields = toBuild(mail);
    const composed = composeEmail(fields, await dkimKeyOf(payload.tenantId, mail.domain));
    const providerContext: EmailProviderContext = {
      guard,
      timeoutMs: config.webhooks.timeoutMs,
      service: name => services.get(payload.tenantId, name),
      log: ctx.log,
    };
    let accepted: EmailAccepted;
    try {
      accepted = await provider(
        {
          tenant: payload.tenantId,
          id: mail.id,
          domain: mail.domain,
          mail: fields,
          message: composed,
          envelope: composed.envelope,
          campaign: mail.campaign,
        },
        providerContext,
      );
    } catch (error) {
      if (error instanceof EgressBlockedError) {
        emailSendsTotal.inc({ provider: providerName, domain: mail.domain, outcome: 'failed' });
        throw new WorkFailure(
          'NEXUS_ERR_EGRESS_BLOCKED',
          `blocked by the egress guard: ${error.message}`,
        );
      }
      if (error instanceof EmailRejectedError) {
        // Every recipient refused at once: a bounce, not a failed send.
        await ctx.complete(async tx => {
          await suppressHard(tx, mail, error.rejected);
          return applyEmailStatus(
            tx,
            { tenantId: payload.tenantId, id: mail.id },
            { status: 'bounced', reason: error.message, provider: providerName },
          );
        });
        emailSendsTotal.inc({ provider: providerName, domain: mail.domain, outcome: 'bounced' });
        emailFeedbackTotal.inc({ domain: mail.domain, kind: 'bounced' });
        return;
      }
      const throttled = Number((ctx.job.data as { throttled?: unknown }).throttled ?? 0);
      if (error instanceof EmailProviderThrottledError && throttled < MAX_THROTTLED) {
        await ctx.job.updateData({ ...(ctx.job.data as object), throttled: throttled + 1 });
        await later(
          ctx,
          Math.min(Math.max(error.retryAfterMs ?? 1_000, 100), 60_000),
          'the email provider asked to slow down: waiting',
        );
      }
      const permanent = error instanceof Error && error.name === 'UnrecoverableError';
      emailSendsTotal.inc({
        provider: providerName,
        domain: mail.domain,
        outcome: permanent ? 'failed' : 'retry',
      });
      ctx.log.warn({ code: failureCodeOf(error) }, 'the email was not sent');
      throw error;
    }
    const rejected = accepted.rejected ?? [];
    const reason = rejected.length
      ? `refused: ${rejected.map(entry => entry.address).join(', ')}`
      : null;
    if (rejected.length > 0) {
      // Some recipients refused: their suppression and the status in one transaction.
      await ctx.complete(async tx => {
        await suppressHard(tx, mail, rejected);
        return applyEmailStatus(
          tx,
          { tenantId: payload.tenantId, id: mail.id },
          {
            status: 'sent',
            reason,
            provider: providerName,
            providerMessageId: accepted.providerMessageId,
          },
        );
      });
    } else {
      ctx.completedHere();
      const pending = await records.submit({
        jobId: ctx.job.id ?? '',
        mail,
        reason,
        provider: providerName,
        providerMessageId: accepted.providerMessageId,
      });
      if (!pending) throw new StaleWorkError();
    }
    emailSendsTotal.inc({ provider: providerName, domain: mail.domain, outcome: 'sent' });
  };
  return Object.assign(processor, {
    // The grouped load counts the attempt on the work row (no separate claim per job).
    claimsItself: true,
    companion: {
      start: () => undefined,
      stop: () => Promise.resolve(),
      // After the workers closed: a send still in flight keeps its connection.
      release: () => {
        smtp.close();
        if (!deps.guard) guard.close();
        return Promise.resolve();
      },
    },
  });
}
