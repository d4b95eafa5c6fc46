import type { RedisConnection } from '../../lib/redis.js';
import type { DatabasePool } from 'slonik';
import { findChannelByChannelId } from '../../db/queries/channels.js';
import { applyCampaignStatus, findCampaignRecord } from '../../db/queries/sms-campaigns.js';
import { applySmsStatus, isOptedOut, loadOutboundSms } from '../../db/queries/sms.js';
import { ServiceDirectory } from '../../db/service-directory.js';
import type { Config } from '../../lib/config.js';
import { EgressBlockedError, EgressGuard } from '../../lib/egress.js';
import { WorkFailure } from '../../lib/errors.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import type { Logger } from '../../lib/logger.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import { SecretBox } from '../../lib/secrets.js';
import { smsSegments } from '../../domain/sms-segments.js';
import { callbackSignature } from '../../domain/sms-callbacks.js';
import type { outboundSmsQueue, OutboundSmsPayload } from '../../queues/outbound-sms.js';
import type { JobContext, Processor } from '../run-processor.js';
import { SendRate, later } from '../send-rate.js';
import {
  PROVIDER_SERVICE,
  ProviderThrottledError,
  SMS_PROVIDERS,
  type ProviderContext,
} from '../sms-providers.js';

/** How many times a provider's 429 may delay one message before it counts as a failed attempt. */
const MAX_THROTTLED = 50;

export interface OutboundSmsDeps {
  db: DatabasePool;
  /** Provider rate limits are counted in Redis, across every worker. */
  redis: RedisConnection;
  log: Logger;
  bus: InvalidationBus;
  config: Config;
  publisher: RealtimePublisher;
  /** Tests pass a guard of their own; the default allows `config.egressAllow`. */
  guard?: EgressGuard | undefined;
}

/**
 * The `outbound-sms` processor: sends one message of an SMS conversation through the channel's
 * provider (the channel's `provider`, else the tenant's `SMS` service's) and records the
 * provider's answer: status `sent` and the provider's message id, with a `message.status` event.
 * A provider that is unavailable (5xx, 408, 429, timeout, connection error) is retried with the
 * queue's backoff; a refusal fails the message for good (status `failed` with the failure's
 * catalogue code, the interaction flagged undelivered, by the runner's final-failure hook). A
 * message already past `accepted` (a duplicate run) is not sent again.
 */
export function createOutboundSmsProcessor(
  deps: OutboundSmsDeps,
): Processor<typeof outboundSmsQueue> {
  const { db, config } = deps;
  const guard = deps.guard ?? new EgressGuard(config.egressAllow);
  const services = new ServiceDirectory(
    db,
    new SecretBox(config.secretKey, config.previousSecretKeys),
    deps.bus,
  );
  const publicUrl = config.http.publicUrl ?? `http://localhost:${config.http.port}`;
  const rate = new SendRate(deps.redis, `${config.queues.prefix}:sms-rate`);

  /** A conversation message, or a campaign record, as the sending needs it. */
  const sendable = async (payload: OutboundSmsPayload) => {
    if (payload.campaign) {
      const record = await findCampaignRecord(db, payload.tenantId, payload.messageId);
      if (!record) throw new WorkFailure('NEXUS_ERR_SMS_NOT_SENDABLE', 'no such campaign record');
      const channel = await findChannelByChannelId(db, payload.tenantId, record.sender);
      return {
        id: record.id,
        text: record.text,
        delivery_status: record.delivery_status as string | null,
        sender_type: 'campaign',
        customer_address: record.address as string | null,
        channel_id: record.sender as string | null,
        provider: channel?.provider ?? null,
      };
    }
    return loadOutboundSms(db, payload.tenantId, payload.messageId);
  };

  const processor = async (payload: OutboundSmsPayload, ctx: JobContext) => {
    const message = await sendable(payload);
    if (!message?.customer_address || !message.channel_id) {
      throw new WorkFailure(
        'NEXUS_ERR_SMS_NOT_SENDABLE',
        'the message is not part of an SMS conversation',
      );
    }
    if (message.delivery_status !== null && message.delivery_status !== 'accepted') {
      ctx.log.info({ status: message.delivery_status }, 'already sent: nothing to do');
      return;
    }
    // The opt-out ledger: nothing goes to a number that replied STOP (the hub's own HELP and
    // keyword answers excepted).
    if (
      message.sender_type !== 'system' &&
      (await isOptedOut(db, payload.tenantId, message.channel_id, message.customer_address))
    ) {
      throw new WorkFailure(
        'NEXUS_ERR_SMS_OPTED_OUT',
        `opted-out: ${message.customer_address} opted out of texts from ${message.channel_id}`,
      );
    }
    const providerName =
      message.provider ??
      ((await services.get(payload.tenantId, 'SMS'))?.data as { provider?: string } | undefined)
        ?.provider ??
      'Portico';
    const provider = SMS_PROVIDERS[providerName];
    if (!provider) {
      throw new WorkFailure(
        'NEXUS_ERR_SMS_PROVIDER_UNSUPPORTED',
        `SMS provider ${providerName} is not supported in this version`,
      );
    }
    // The provider's rate for this sender, across every worker.
    const settings = (await services.get(payload.tenantId, PROVIDER_SERVICE[providerName] ?? ''))
      ?.data as { maxPerSecond?: number } | undefined;
    const waitMs = await rate.wait(
      settings?.maxPerSecond ?? config.sms.ratePerSecond,
      `${providerName}:${payload.tenantId}:${message.channel_id}`,
    );
    if (waitMs > 0) await later(ctx, waitMs, 'provider rate limit reached: waiting');
    const text = message.text ?? '';
    const providerContext: ProviderContext = {
      guard,
      timeoutMs: config.webhooks.timeoutMs,
      service: name => services.get(payload.tenantId, name),
      publicUrl,
      callbackSignature: value => callbackSignature(config.secretKey, value),
      log: ctx.log,
    };
    let accepted;
    try {
      accepted = await provider(
        {
          tenant: payload.tenantId,
          messageId: message.id,
          from: message.channel_id,
          to: message.customer_address,
          text,
          encoding: smsSegments(text).encoding,
        },
        providerContext,
      );
    } catch (error) {
      if (error instanceof EgressBlockedError) {
        throw new WorkFailure(
          'NEXUS_ERR_EGRESS_BLOCKED',
          `blocked by the egress guard: ${error.message}`,
        );
      }
      // A provider's 429 delays the message without using an attempt, a bounded number of times.
      const throttled = Number((ctx.job.data as { throttled?: unknown }).throttled ?? 0);
      if (error instanceof ProviderThrottledError && throttled < MAX_THROTTLED) {
        await ctx.job.updateData({ ...(ctx.job.data as object), throttled: throttled + 1 });
        await later(
          ctx,
          Math.min(Math.max(error.retryAfterMs ?? 1_000, 100), 60_000),
          'the provider asked to slow down (429): waiting',
        );
      }
      throw error;
    }
    const sent = {
      status: 'sent' as const,
      reason: null,
      provider: providerName,
      providerMessageId: accepted.providerMessageId,
    };
    if (payload.campaign) {
      await ctx.complete(tx =>
        applyCampaignStatus(tx, { tenantId: payload.tenantId, id: message.id }, sent),
      );
      return;
    }
    const events = await ctx.complete(tx => applySmsStatus(tx, { messageId: message.id }, sent));
    if (events) deps.publisher.events(events);
  };
  return Object.assign(processor, {
    companion: {
      start: () => undefined,
      stop: () => Promise.resolve(),
      // After the workers closed: a send still in flight keeps its connection.
      release: () => {
        if (!deps.guard) guard.close();
        return Promise.resolve();
      },
    },
  });
}
