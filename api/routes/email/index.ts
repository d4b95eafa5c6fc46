/**
 * The email routes, one file per concern: campaigns (campaigns.ts) and the suppression list with
 * the one-click unsubscribe (consent.ts); the request fields they share are in fields.ts.
 */
import type { DatabasePool } from 'slonik';
import type { EnqueueContext } from '../../../queues/work.js';
import type { Api } from '../../openapi.js';
import { emailCampaignRoutes } from './campaigns.js';
import { emailConsentRoutes } from './consent.js';

export interface EmailRouteDeps {
  db: DatabasePool;
  enqueue: EnqueueContext;
  /** NEXUS_EMAIL_MAX_BYTES. */
  maxBytes: number;
  /** Sign and check unsubscribe links (NEXUS_SECRET_KEY, then the previous ones). */
  secretKeys: readonly Buffer[];
}

/** Declares every email route, in the order the API reference lists them. */
export function emailRoutes(api: Api, deps: EmailRouteDeps): void {
  emailCampaignRoutes(api, deps);
  emailConsentRoutes(api, deps);
}
