/**
 * The email suppression list over the API, and the one-click unsubscribe (RFC 8058) that
 * campaign mail links to. Operators list the suppressed addresses, look one up with its history,
 * add one and lift one; every change is audited (`email_consent_changes`). Hard bounces and
 * complaints add addresses through the feedback routes and the bounce listener.
 */
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import {
  changeEmailConsent,
  emailConsentOf,
  listSuppressions,
  SUPPRESSION_REASONS,
} from '../../../db/queries/email-consent.js';
import { applyEmailStatus, findEmail } from '../../../db/queries/email.js';
import { verifyUnsubscribeSignature } from '../../../domain/email-links.js';
import { AppError } from '../../../lib/errors.js';
import { emailFeedbackTotal } from '../../../lib/metrics.js';
import { assertTenant } from '../../auth/principal.js';
import { reply } from '../../error-handler.js';
import { envelopeOf, type Api } from '../../openapi.js';
import { emailAddress, headerText } from '../../email/fields.js';

export interface EmailConsentDeps {
  db: DatabasePool;
  /** The keys that sign unsubscribe links (NEXUS_SECRET_KEY, then the previous ones). */
  secretKeys: readonly Buffer[];
}

const tenantParams = z.object({ ccid: z.string().min(1).max(255) });

const change = z.object({
  address: z.string(),
  action: z.string(),
  reason: z.string(),
  source: z.string(),
  detail: z.string().nullable(),
  at: z.string(),
});

export function emailConsentRoutes(api: Api, deps: EmailConsentDeps): void {
  const { db } = deps;

  api.route({
    method: 'get',
    path: '/nexus/v3/email/suppressions/:ccid',
    tag: 'Email',
    summary: 'Suppressed email addresses',
    description:
      'Addresses no campaign mail goes to, by address, with why (`hard-bounce`, `complaint`, `unsubscribe`, `manual`); page with `after` (the last address of the previous page).',
    auth: 'nexus:provisioning:*',
    params: tenantParams,
    query: z
      .object({
        after: z.string().max(254).optional(),
        limit: z.coerce.number().int().min(1).max(1_000).default(100),
      })
      .strict(),
    responses: {
      200: {
        description: 'Suppressed addresses',
        schema: envelopeOf(
          z.object({
            items: z.array(
              z.object({ address: z.string(), reason: z.string(), since: z.string() }),
            ),
            next: z.string().nullable(),
          }),
        ),
      },
    },
    async handle({ params, query, principal, res }) {
      assertTenant(principal, params.ccid);
      const rows = await listSuppressions(db, params.ccid, {
        after: query.after,
        limit: query.limit,
      });
      const last = rows.at(-1);
      reply(res, 200, {
        items: rows.map(row => ({
          address: row.address,
          reason: row.reason,
          since: row.updated_at,
        })),
        next: rows.length === query.limit && last ? last.address : null,
      });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/email/suppressions/:ccid/:address',
    tag: 'Email',
    summary: "An address's suppression state and its history",
    description:
      'Whether campaign mail to `address` is suppressed and why; every change, newest first.',
    auth: 'nexus:provisioning:*',
    params: tenantParams.extend({ address: emailAddress }),
    responses: {
      200: {
        description: 'The address',
        schema: envelopeOf(
          z.object({
            address: z.string(),
            suppressed: z.boolean(),
            reason: z.string().nullable(),
            changes: z.array(change),
          }),
        ),
      },
    },
    async handle({ params, principal, res }) {
      assertTenant(principal, params.ccid);
      const state = await emailConsentOf(db, params.ccid, params.address);
      reply(res, 200, {
        address: params.address.toLowerCase(),
        suppressed: state.suppressed,
        reason: state.reason,
        changes: state.changes.map(row => ({
          address: row.address,
          action: row.action,
          reason: row.reason,
          source: row.source,
          detail: row.detail,
          at: row.created_at,
        })),
      });
    },
  });

  api.route({
    method: 'put',
    path: '/nexus/v3/email/suppressions/:ccid/:address',
    tag: 'Email',
    summary: 'Suppress an address',
    description:
      'Campaign mail to the address is no longer sent (`opted-out`). `reason` defaults to `manual`; `detail` is kept in the audit.',
    auth: 'nexus:provisioning:*',
    params: tenantParams.extend({ address: emailAddress }),
    body: z
      .object({
        reason: z.enum(SUPPRESSION_REASONS).default('manual'),
        detail: headerText(500).optional(),
      })
      .strict()
      .default({}),
    responses: {
      200: {
        description: 'Suppressed',
        schema: envelopeOf(z.object({ address: z.string(), changed: z.boolean() })),
      },
    },
    async handle({ params, body, principal, res }) {
      assertTenant(principal, params.ccid);
      const changed = await db.transaction(tx =>
        changeEmailConsent(tx, {
          tenantId: params.ccid,
          address: params.address,
          action: 'suppress',
          reason: body.reason,
          source: 'api',
          detail: body.detail ?? null,
        }),
      );
      reply(res, 200, { address: params.address.toLowerCase(), changed });
    },
  });

  api.route({
    method: 'delete',
    path: '/nexus/v3/email/suppressions/:ccid/:address',
    tag: 'Email',
    summary: 'Lift the suppression of an address',
    description:
      'Campaign mail to the address is sent again. The lifting is audited (`detail` in the query says why); it does not resend the mails skipped meanwhile.',
    auth: 'nexus:provisioning:*',
    params: tenantParams.extend({ address: emailAddress }),
    query: z.object({ detail: headerText(500).optional() }).strict(),
    responses: {
      200: {
        description: 'Lifted',
        schema: envelopeOf(z.object({ address: z.string(), changed: z.boolean() })),
      },
    },
    async handle({ params, query, principal, res }) {
      assertTenant(principal, params.ccid);
      const changed = await db.transaction(tx =>
        changeEmailConsent(tx, {
          tenantId: params.ccid,
          address: params.address,
          action: 'lift',
          reason: 'manual',
          source: 'api',
          detail: query.detail ?? null,
        }),
      );
      reply(res, 200, { address: params.address.toLowerCase(), changed });
    },
  });

  const unsubscribeParams = z.object({
    ccid: z.string().min(1).max(255),
    id: z.string().uuid(),
  });
  const signed = z.object({ sig: z.string().regex(/^[0-9a-f]{32}$/) }).passthrough();
  const checkLink = async (params: z.infer<typeof unsubscribeParams>, sig: string) => {
    if (!verifyUnsubscribeSignature(deps.secretKeys, params.ccid, params.id, sig)) {
      throw new AppError('NEXUS_ERR_NOT_FOUND', 'no such unsubscribe link');
    }
    const mail = await findEmail(db, params.ccid, params.id);
    if (!mail) throw new AppError('NEXUS_ERR_NOT_FOUND', 'no such unsubscribe link');
    return mail;
  };

  api.route({
    method: 'post',
    path: '/nexus/v3/email/unsubscribe/:ccid/:id',
    tag: 'Email',
    summary: 'One-click unsubscribe (RFC 8058)',
    description:
      "The `List-Unsubscribe` URL of a campaign mail, signed for that mail: a POST (a mailbox provider's one-click, body `List-Unsubscribe=One-Click`, or the confirmation page's button) suppresses the mail's recipient with reason `unsubscribe`. Repeating it changes nothing.",
    auth: 'public',
    params: unsubscribeParams,
    query: signed,
    responses: {
      200: {
        description: 'Unsubscribed',
        schema: envelopeOf(z.object({ unsubscribed: z.boolean() })),
      },
    },
    async handle({ params, query, res }) {
      const mail = await checkLink(params, query.sig);
      await db.transaction(async tx => {
        for (const recipient of mail.to_addresses) {
          if (
            await changeEmailConsent(tx, {
              tenantId: params.ccid,
              address: recipient.address,
              action: 'suppress',
              reason: 'unsubscribe',
              source: 'unsubscribe',
              detail: `${mail.campaign ?? 'mail'} ${mail.message_id}`,
            })
          ) {
            emailFeedbackTotal.inc({ domain: mail.domain, kind: 'unsubscribed' });
          }
        }
        // A click on the mail's link proves it arrived: a mail still `sent` becomes `delivered`.
        await applyEmailStatus(
          tx,
          { tenantId: params.ccid, id: mail.id },
          { status: 'delivered', reason: null },
        );
      });
      reply(res, 200, { unsubscribed: true });
    },
  });

  api.route({
    method: 'get',
    path: '/nexus/v3/email/unsubscribe/:ccid/:id',
    tag: 'Email',
    summary: 'The unsubscribe confirmation page',
    description:
      'A person following the link gets a page with one button that POSTs to the same URL; a GET changes nothing (mail scanners follow links).',
    auth: 'public',
    params: unsubscribeParams,
    query: signed,
    responses: { 200: { description: 'An HTML page', schema: z.string() } },
    async handle({ params, query, res }) {
      await checkLink(params, query.sig);
      res
        .status(200)
        .type('html')
        .send(
          `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Unsubscribe</title></head>` +
            `<body><form method="post"><p>Stop receiving these emails?</p>` +
            `<button type="submit">Unsubscribe</button></form></body></html>`,
        );
    },
  });
}
