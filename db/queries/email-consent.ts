import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { suppressionKey } from '../../domain/email-status.js';

/**
 * The email suppression list (`email_consent`, audited in `email_consent_changes`): addresses no
 * campaign mail goes to, per tenant. Hard bounces, complaints and one-click unsubscribes add an
 * address; an operator adds or lifts one through the API. Addresses are compared lowercased.
 */

export const SUPPRESSION_REASONS = ['hard-bounce', 'complaint', 'unsubscribe', 'manual'] as const;
export type SuppressionReason = (typeof SUPPRESSION_REASONS)[number];

export interface ConsentChange {
  tenantId: string;
  address: string;
  action: 'suppress' | 'lift';
  reason: SuppressionReason;
  /** Who changed it: `sparkpost`, `smtp-bounce`, `async`, `unsubscribe`, `api`. */
  source: string;
  detail: string | null;
}

/**
 * Records a suppression or its lifting, and its audit row (in the caller's transaction). Answers
 * whether the address's state changed (suppressing a suppressed address changes nothing, and is
 * not audited again).
 */
export async function changeEmailConsent(
  tx: CommonQueryMethods,
  change: ConsentChange,
): Promise<boolean> {
  const address = suppressionKey(change.address);
  const suppressed = change.action === 'suppress';
  const before = await tx.maybeOneFirst(sql.type(z.object({ suppressed: z.boolean() }))`
    SELECT suppressed FROM email_consent
    WHERE tenant_id = ${change.tenantId} AND address = ${address} FOR UPDATE`);
  if ((before ?? false) === suppressed) return false;
  await tx.query(sql.unsafe`
    INSERT INTO email_consent (tenant_id, address, suppressed, reason)
    VALUES (${change.tenantId}, ${address}, ${suppressed}, ${change.reason})
    ON CONFLICT (tenant_id, address) DO UPDATE SET
      suppressed = EXCLUDED.suppressed, reason = EXCLUDED.reason, updated_at = now()`);
  await tx.query(sql.unsafe`
    INSERT INTO email_consent_changes (tenant_id, address, action, reason, source, detail)
    VALUES (${change.tenantId}, ${address}, ${change.action}, ${change.reason}, ${change.source},
            ${change.detail})`);
  return true;
}

/** The addresses of a list that are suppressed. */
export async function suppressedAmong(
  db: CommonQueryMethods,
  tenantId: string,
  addresses: readonly string[],
): Promise<Set<string>> {
  if (addresses.length === 0) return new Set();
  const rows = await db.anyFirst(sql.type(z.object({ address: z.string() }))`
    SELECT address FROM email_consent
    WHERE tenant_id = ${tenantId} AND suppressed
      AND address = ANY(${sql.array(addresses.map(suppressionKey), 'text')})`);
  return new Set(rows);
}

export const suppressionRow = z.object({
  address: z.string(),
  reason: z.string(),
  updated_at: z.string(),
});

/** The suppressed addresses of a list, with why and since when (keys lowercased). */
export async function suppressionsAmong(
  db: CommonQueryMethods,
  tenantId: string,
  addresses: readonly string[],
): Promise<ReadonlyMap<string, z.infer<typeof suppressionRow>>> {
  if (addresses.length === 0) return new Map();
  const rows = await db.any(sql.type(suppressionRow)`
    SELECT address, reason, updated_at FROM email_consent
    WHERE tenant_id = ${tenantId} AND suppressed
      AND address = ANY(${sql.array(addresses.map(suppressionKey), 'text')})`);
  return new Map(rows.map(row => [row.address, row]));
}

/** The suppressed addresses of a tenant by address; page with `after`. */
export async function listSuppressions(
  db: CommonQueryMethods,
  tenantId: string,
  page: { after: string | undefined; limit: number },
): Promise<readonly z.infer<typeof suppressionRow>[]> {
  return db.any(sql.type(suppressionRow)`
    SELECT address, reason, updated_at FROM email_consent
    WHERE tenant_id = ${tenantId} AND suppressed
      ${page.after === undefined ? sql.fragment`` : sql.fragment`AND address > ${page.after}`}
    ORDER BY address LIMIT ${page.limit}`);
}

export const emailConsentChangeRow = z.object({
  address: z.string(),
  action: z.string(),
  reason: z.string(),
  source: z.string(),
  detail: z.string().nullable(),
  created_at: z.string(),
});

/** An address's state and its changes, newest first. */
export async function emailConsentOf(
  db: CommonQueryMethods,
  tenantId: string,
  address: string,
): Promise<{
  suppressed: boolean;
  reason: string | null;
  changes: readonly z.infer<typeof emailConsentChangeRow>[];
}> {
  const key = suppressionKey(address);
  const state = await db.maybeOne(
    sql.type(
      z.object({ suppressed: z.boolean(), reason: z.string() }),
    )`SELECT suppressed, reason FROM email_consent WHERE tenant_id = ${tenantId} AND address = ${key}`,
  );
  const changes = await db.any(sql.type(emailConsentChangeRow)`
    SELECT address, action, reason, source, detail, created_at FROM email_consent_changes
    WHERE tenant_id = ${tenantId} AND address = ${key} ORDER BY id DESC LIMIT 200`);
  return {
    suppressed: state?.suppressed ?? false,
    reason: state?.suppressed ? state.reason : null,
    changes,
  };
}

/** How many addresses are suppressed, across tenants (the metric). */
export async function countSuppressed(db: CommonQueryMethods): Promise<number> {
  return db.oneFirst(sql.type(z.object({ count: z.number() }))`
    SELECT count(*)::int AS count FROM email_consent WHERE suppressed`);
}
