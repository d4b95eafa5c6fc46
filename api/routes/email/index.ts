/**
 * The email routes, one file per concern: campaigns (campaigns.ts), the suppression list with
 * the one-click unsubscribe (consent.ts) and providers' feedback (feedback.ts: SparkPost's event
 * webhook; the Async gateway's email receipts are declared with the Third-Party Messaging API);
 * the request fields they share are in fields.ts.
 */
import type { DatabasePool } from 'slonik';
import type { Logger } from '../../../lib/logger.js';
import type { SecretBox } from '../../../lib/secrets.js';
import type { EnqueueContext } from '../../../queues/work.js';
import type { Api } from '../../openapi.js';
import { emailCampaignRoutes } from './campaigns.js';
import { emailConsentRoutes } from './consent.js';
import { emailFeedbackRoutes } from './feedback.js';

export interface EmailRouteDeps {
  db: DatabasePool;
  enqueue: EnqueueContext;
  log: Logger;
  /** Opens the tenant's `SparkPostEmail` secret (the event webhook's credentials). */
  secrets: SecretBox;
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
}
