/**
 * The signature third-party gateways (`Async`) put on their calls to the Third-Party Messaging
 * API, whatever they carry (texts, receipts, media, email): `x-ccid` names the tenant and
 * `X-Hub-Signature: sha1=<hex HMAC-SHA1(raw body, the channel's api secret)>` is compared in
 * constant time. Every failure is the same 401, whatever was wrong.
 */
import { createHmac } from 'node:crypto';
import type { Request } from 'express';
import type { DatabasePool } from 'slonik';
import { findService } from '../../db/queries/services.js';
import { serviceSecretContext } from '../../db/service-directory.js';
import { AppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { SecretBox } from '../../lib/secrets.js';
import { secretsEqual } from '../admin-auth.js';

export interface GatewaySignatureDeps {
  db: DatabasePool;
  log: Logger;
  /** Opens the tenant's `Async` service secret (the channels' api secrets). */
  secrets: SecretBox;
}

/** A route's `verify` for calls signed by the gateway of the path's `channelId`. */
export function gatewaySignature(deps: GatewaySignatureDeps): (req: Request) => Promise<void> {
  /** The channel's api secret from the tenant's `Async` service, if the channel is there. */
  const apiSecretOf = async (tenant: string, channelId: string): Promise<string | undefined> => {
    const service = await findService(deps.db, tenant, 'Async');
    if (!service?.secret_sealed) return undefined;
    const secret = deps.secrets.open(
      service.secret_sealed,
      serviceSecretContext(tenant, 'Async'),
    ) as {
      channels?: { channelId: string; api?: { secret?: string } }[];
    };
    return secret.channels?.find(channel => channel.channelId === channelId)?.api?.secret;
  };

  return async (req: Request): Promise<void> => {
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
}
