import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The links and addresses the hub puts in outbound mail so that answers find their mail again:
 * the one-click unsubscribe URL (RFC 8058), signed so that only the mail's recipient can use it,
 * and the VERP return path `bounces+<mail id>@<bounce domain>` that bounce reports come back to.
 */

/** HMAC-SHA256 of the tenant and mail id with the hub's secret key, 32 hex characters. */
export function unsubscribeSignature(secretKey: Buffer, tenantId: string, mailId: string): string {
  return createHmac('sha256', secretKey)
    .update(`email-unsubscribe:${tenantId}:${mailId}`)
    .digest('hex')
    .slice(0, 32);
}

export function verifyUnsubscribeSignature(
  secretKeys: readonly Buffer[],
  tenantId: string,
  mailId: string,
  signature: string,
): boolean {
  const given = Buffer.from(signature);
  return secretKeys.some(key => {
    const expected = Buffer.from(unsubscribeSignature(key, tenantId, mailId));
    return expected.length === given.length && timingSafeEqual(expected, given);
  });
}

export function unsubscribeUrl(
  publicUrl: string,
  secretKey: Buffer,
  tenantId: string,
  mailId: string,
): string {
  const url = new URL(
    `${publicUrl.replace(/\/+$/, '')}/nexus/v3/email/unsubscribe/${encodeURIComponent(tenantId)}/${mailId}`,
  );
  url.searchParams.set('sig', unsubscribeSignature(secretKey, tenantId, mailId));
  return url.toString();
}

const VERP = /^bounces\+([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})@(.+)$/i;

export const returnPath = (mailId: string, bounceDomain: string): string =>
  `bounces+${mailId}@${bounceDomain}`;

/** The mail id a VERP return path names, when it is one on `bounceDomain`. */
export function mailIdOfReturnPath(address: string, bounceDomain: string): string | undefined {
  const match = VERP.exec(address.trim());
  if (!match || match[2]?.toLowerCase() !== bounceDomain.toLowerCase()) return undefined;
  return match[1]?.toLowerCase();
}
