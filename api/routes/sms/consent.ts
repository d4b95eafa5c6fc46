/**
 * The SMS consent (opt-out) ledger over the API: `GET /nexus/v3/sms/consent/:ccid` answers a
 * customer number's opt-out state per sender and its history. Changes come from keywords in
 * inbound texts (api/sms/keywords.ts); the outbound SMS worker checks it before it sends.
 */
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import { consentOf } from '../../../db/queries/sms.js';
import { assertTenant } from '../../auth/principal.js';
import { reply } from '../../error-handler.js';
import { envelopeOf, type Api } from '../../openapi.js';
import { phone } from './fields.js';

export interface ConsentDeps {
  db: DatabasePool;
}

/** The consent ledger's read route. */
export function consentRoutes(api: Api, deps: ConsentDeps): void {
  api.route({
    method: 'get',
    path: '/nexus/v3/sms/consent/:ccid',
    tag: 'SMS',
    summary: "A customer number's opt-out state and its history",
    description:
      'Per sender (the channel number): whether `address` opted out (STOP) or not; then every change, newest first, with its source and keyword.',
    auth: 'nexus:provisioning:*',
    params: z.object({ ccid: z.string().min(1).max(255) }),
    query: z.object({ address: phone }).strict(),
    responses: {
      200: {
        description: 'The ledger for this number',
        schema: envelopeOf(
          z.object({
            address: z.string(),
            senders: z.array(
              z.object({ sender: z.string(), optedOut: z.boolean(), updated: z.string() }),
            ),
            changes: z.array(
              z.object({
                sender: z.string(),
                action: z.string(),
                source: z.string(),
                keyword: z.string().nullable(),
                at: z.string(),
              }),
            ),
          }),
        ),
      },
    },
    async handle({ params, query, principal, res }) {
      assertTenant(principal, params.ccid);
      const address = query.address;
      const ledger = await consentOf(deps.db, params.ccid, address);
      reply(res, 200, {
        address,
        senders: ledger.senders.map(row => ({
          sender: row.sender,
          optedOut: row.opted_out,
          updated: row.updated_at,
        })),
        changes: ledger.changes.map(row => ({
          sender: row.sender,
          action: row.action,
          source: row.source,
          keyword: row.keyword,
          at: row.created_at,
        })),
      });
    },
  });
}
