import { UnrecoverableError } from 'bullmq';
import type { DatabasePool } from 'slonik';
import { applySmsStatus, isOptedOut, loadOutboundSms } from '../../db/queries/sms.js';
import { ServiceDirectory } from '../../db/service-directory.js';
import type { Config } from '../../lib/config.js';
import { EgressBlockedError, EgressGuard } from '../../lib/egress.js';
import type { InvalidationBus } from '../../lib/invalidation.js';
import type { Logger } from '../../lib/logger.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import { SecretBox } from '../../lib/secrets.js';
import { smsSegments } from '../../lib/sms-segments.js';
import { callbackSignature } from '../../lib/sms-callbacks.js';
import type { outboundSmsQueue, OutboundSmsPayload } from '../../queues/outbound-sms.js';
import type { JobContext, Processor } from '../run-processor.js';
import { SMS_PROVIDERS, type ProviderContext } from '../sms-providers.js';

export interface OutboundSmsDeps {
  db: DatabasePool;
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
 * queue's backoff; a refusal fails the message for good (status `failed`, the interaction flagged
 * undelivered, by the runner's final-failure hook). A message already past `accepted` (a
 * duplicate run) is not sent again.
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

  const processor = async (payload: OutboundSmsPayload, ctx: JobContext) => {
    const message = await loadOutboundSms(db, payload.tenantId, payload.messageId);
    if (!message?.customer_address || !message.channel_id) {
      throw new UnrecoverableError('the message is not part of an SMS conversation');
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
      throw new UnrecoverableError(
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
      throw new UnrecoverableError(`SMS provider ${providerName} is not supported in this version`);
    }
    const text = message.text ?? '';
    const providerContext: ProviderContext = {
      guard,
      timeoutMs: config.webhooks.timeoutMs,
      service: name => services.get(payload.tenantId, name),
      publicUrl,
      callbackSignature: value => callbackSignature(config.secretKey, value),
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
        throw new UnrecoverableError(`blocked by the egress guard: ${error.message}`);
      }
      throw error;
    }
    const events = await ctx.complete(tx =>
      applySmsStatus(
        tx,
        { messageId: message.id },
        {
          status: 'sent',
          reason: null,
          provider: providerName,
          providerMessageId: accepted.providerMessageId,
        },
      ),
    );
    if (events) deps.publisher.events(events);
  };
  return Object.assign(processor, {
    companion: {
      start: () => undefined,
      stop: () => {
        if (!deps.guard) guard.close();
        return Promise.resolve();
      },
    },
  });
}
