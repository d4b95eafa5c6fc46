/**
 * The SMS routes, one file per concern: aggregators' MO and delivery receipts (aggregator.ts),
 * the opt-out ledger (consent.ts), the Third-Party Messaging API with media (third-party.ts) and
 * campaigns (campaigns.ts). What several of them share is the intake in api/sms/intake.ts
 * (storing an inbound SMS, receipts, sender lookups) and the request fields in fields.ts (phone,
 * text, the media size limit); keywords (STOP / START / HELP) have no routes of their own and
 * apply to every inbound text (api/sms/keywords.ts; a tenant configures them as its
 * `SmsKeywords` service).
 */
import type { DatabasePool } from 'slonik';
import type { Logger } from '../../../lib/logger.js';
import type { SecretBox } from '../../../lib/secrets.js';
import type { EnqueueContext } from '../../../queues/work.js';
import type { Api } from '../../openapi.js';
import { aggregatorRoutes } from './aggregator.js';
import { campaignRoutes } from './campaigns.js';
import { consentRoutes } from './consent.js';
import { thirdPartyRoutes } from './third-party.js';

export interface SmsRouteDeps {
  db: DatabasePool;
  enqueue: EnqueueContext;
  log: Logger;
  /** Signs the Kannel `dlr-url` (NEXUS_SECRET_KEY). */
  secretKey: Buffer;
  /** Opens the `Async` service secret of a tenant (third-party gateways' api secrets). */
  secrets: SecretBox;
  /** NEXUS_SMS_MAX_SEGMENTS. */
  maxSegments: number;
}

/** Declares every SMS route, in the order the API reference lists them. */
export function smsRoutes(api: Api, deps: SmsRouteDeps): void {
  aggregatorRoutes(api, deps);
  consentRoutes(api, deps);
  thirdPartyRoutes(api, deps);
  campaignRoutes(api, deps);
}
