/**
 * The email routes, one file per concern: campaigns (campaigns.ts), the suppression list with
 * the one-click unsubscribe (consent.ts), providers' feedback (feedback.ts: SparkPost's event
 * webhook and the Async gateway's email receipts) and the gateway's inbound mail (inbound.ts);
 * the request fields they share are api/email/fields.ts.
 */
import type { DatabasePool } from 'slonik';
import type { Logger } from '../../../lib/logger.js';
import type { SecretBox } from '../../../lib/secrets.js';
import type { EnqueueContext } from '../../../queues/work.js';
import type { Api } from '../../openapi.js';
import { emailCampaignRoutes } from './campaigns.js';
import { emailConsentRoutes } from './consent.js';
import { gatewaySignature } from '../../auth/gateway-signature.js';
import { asyncEmailReceiptRoute, emailFeedbackRoutes } from './feedback.js';
import { asyncInboundEmailRoute } from './inbound.js';

export interface EmailRouteDeps {
  db: DatabasePool;
  enqueue: EnqueueContext;
  log: Logger;
  /** Opens the tenant's `SparkPostEmail` and `Async` secrets (webhook credentials, signatures). */
  secrets: SecretBox;
  /** NEXUS_EMAIL_ATTACHMENT_MAX_BYTES. */
  attachmentMaxBytes: number;
  /** NEXUS_EMAIL_MAX_BYTES. */
  maxBytes: number;
  /** Sign and check unsubscribe links (NEXUS_SECRET_KEY, then the previous ones). */
  secretKeys: readonly Buffer[];
}

/** Declares every email route, in the order the API reference lists them. */
export function emailRoutes(api: Api, deps: EmailRouteDeps): void {
  emailCampaignRoutes(api, deps);
  emailConsentRoutes(api, deps);
  emailFeedbackRoutes(api, deps);
  // The Async gateway's calls for an email channel (its channelId is the domain), signed as its
  // other calls to the Third-Party Messaging API.
  const verifySigned = gatewaySignature(deps);
  asyncEmailReceiptRoute(api, deps, verifySigned);
  asyncInboundEmailRoute(api, deps, verifySigned);
}
