import type { Request, Response } from 'express';
import { z } from 'zod';
import { AppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { CONNECTOR_TARGET, NexusRefusedError, type NexusClient } from '../nexus-client.js';
import type { Intake } from './intake.js';
import { verifySignature } from '../signature.js';

/** The guide's answer to a delivery whose signature does not verify: HTTP 200 with this status. */
export const SIGNATURE_CHECK_FAILED = 'PAYLOAD_SIGNATURE_CHECK_FAILED';

const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** What the connector reads of a delivery (the hub's `events` format, docs/webhooks.md). */
const delivery = z.object({
  id: z.string().min(1).max(255),
  type: z.string().min(1).max(100),
  tenant: z.string().regex(TENANT_ID),
  interactionId: z.string().uuid().nullable(),
  data: z.record(z.unknown()),
});

const messageCreated = z.object({
  message: z.object({
    id: z.string().uuid(),
    text: z.string().nullable(),
  }),
  from: z.object({ type: z.string() }),
});

export interface WebhookDeps {
  nexus: NexusClient;
  intake: Intake;
  log: Logger;
}

function invalid(field: string, message: string): AppError {
  return new AppError('NEXUS_ERR_VALIDATION', message, field);
}

/**
 * `{apiPrefix}/agent-assist-chat/messages`: the hub's webhook deliveries to the `ai-connector`
 * target. The body's `tenant` names whose secret signs it (read from the hub); a delivery that
 * does not verify answers HTTP 200 `PAYLOAD_SIGNATURE_CHECK_FAILED` (as the guide says: a 2xx,
 * so the hub does not retry it) and stores nothing. A verified customer message is stored and
 * becomes an `ai-connector` job in one transaction (Postgres first, one row and one job per
 * message and connector however often the hub delivers it); every other event is acknowledged
 * and dropped. When the hub cannot be asked for the secret the answer is 503, so the hub
 * delivers again later.
 */
export function agentAssistWebhook(deps: WebhookDeps) {
  return async (req: Request, res: Response): Promise<void> => {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new AppError('NEXUS_ERR_BAD_JSON', 'The request body is not valid JSON');
    }
    const tenant = (body as { tenant?: unknown } | null)?.tenant;
    if (typeof tenant !== 'string' || !TENANT_ID.test(tenant)) {
      throw invalid('tenant', 'tenant must be the tenant id the hub sends (format "events")');
    }
    const request = { body: raw, header: (name: string) => req.get(name) };
    let secrets;
    try {
      secrets = await deps.nexus.signingSecrets(tenant);
      if (!verifySignature(request, secrets.secrets) && secrets.secrets.length > 0) {
        // The secret may have just been rotated: read it again (at most every 5 s per tenant).
        secrets = await deps.nexus.signingSecrets(tenant, true);
      }
    } catch (error) {
      if (error instanceof NexusRefusedError) {
        deps.log.error({ err: error, tenant }, 'the hub refused the signing secret request');
      }
      throw new AppError(
        'NEXUS_ERR_HUB_UNAVAILABLE',
        'The hub cannot be asked for the signing secret; deliver again later',
      );
    }
    if (!verifySignature(request, secrets.secrets)) {
      deps.log.warn({ tenant, path: req.path }, 'delivery refused: signature check failed');
      res.status(200).json({
        status: {
          code: SIGNATURE_CHECK_FAILED,
          message: 'The payload is not signed with the ai-connector target secret of its tenant',
        },
      });
      return;
    }
    const parsed = delivery.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw invalid(issue?.path.join('.') || 'body', issue?.message ?? 'invalid delivery');
    }
    const event = parsed.data;
    const ignored = (reason: string) =>
      res.status(200).json({ status: { code: 0 }, data: { accepted: false, reason } });
    if (event.type !== 'message.created') return void ignored(`${event.type} is not read`);
    const data = messageCreated.safeParse(event.data);
    if (!data.success || !event.interactionId) {
      const issue = data.success ? undefined : data.error.issues[0];
      throw invalid(
        issue ? `data.${issue.path.join('.')}` : 'interactionId',
        issue?.message ?? 'a message event names its interaction',
      );
    }
    const { message, from } = data.data;
    if (from.type !== 'customer') return void ignored(`a message from ${from.type}`);
    const text = message.text?.trim() ?? '';
    if (!text) return void ignored('a message without text');
    const created = await deps.intake.store({
      tenantId: tenant,
      messageId: message.id,
      connector: CONNECTOR_TARGET,
      interactionId: event.interactionId,
      eventId: event.id,
      deliveryId: req.get('webhook-id') ?? null,
      fromType: from.type,
      text: text.slice(0, 10_000),
    });
    res.status(200).json({
      status: { code: 0 },
      data: { accepted: true, duplicate: !created },
    });
  };
}
