/**
 * One status vocabulary for outbound email, whatever the provider: `queued` (the hub took it),
 * `sent` (the provider or relay took it), `delivered` (the recipient's server took it), then the
 * feedback that can follow: `bounced` (a bounce, even after `delivered`: some servers accept and
 * bounce later) and `complained` (the recipient marked it as spam). `failed` (the hub or the
 * provider could not send it) and `opted-out` (the address is suppressed; nothing was sent) end
 * a mail before it leaves. Feedback arrives late and out of order, so statuses only move forward.
 */
export const EMAIL_STATUSES = [
  'queued',
  'sent',
  'delivered',
  'bounced',
  'complained',
  'failed',
  'opted-out',
] as const;
export type EmailStatus = (typeof EMAIL_STATUSES)[number];

const RANK: Record<EmailStatus, number> = {
  queued: 0,
  sent: 1,
  delivered: 2,
  bounced: 3,
  complained: 4,
  failed: 3,
  'opted-out': 3,
};

/** Nothing moves a mail out of these. */
const FINAL: ReadonlySet<EmailStatus> = new Set(['complained', 'failed', 'opted-out']);

/** The status after a report of `next` arrives for a mail in `current`. */
export function mergeEmailStatus(current: EmailStatus, next: EmailStatus): EmailStatus {
  if (FINAL.has(current)) return current;
  // A mail cannot be skipped once it is out, nor fail once a recipient's server has it; a
  // provider that took it (`sent`) may still report that it could not send it.
  if (next === 'opted-out' && current !== 'queued') return current;
  if (next === 'failed' && current !== 'queued' && current !== 'sent') return current;
  return RANK[next] > RANK[current] ? next : current;
}

/**
 * Normalises an address for the suppression list: the domain is case-insensitive (RFC 5321), the
 * local part is kept as written but compared lowercased, as every mailbox provider does.
 */
export const suppressionKey = (address: string): string => address.trim().toLowerCase();

/** SMTP enhanced status codes (RFC 3463) that mean the address will never take mail. */
export function isHardBounce(status: string | undefined, smtpCode?: number): boolean {
  if (status && /^5\.(1\.[0-3]|1\.6|1\.10)$/.test(status)) return true;
  if (!status && smtpCode !== undefined) {
    return smtpCode === 550 || smtpCode === 551 || smtpCode === 553;
  }
  return false;
}
