/**
 * One status vocabulary for outbound SMS, whatever the provider: `accepted` (the hub took it),
 * `sent` (the provider or SMSC took it), `delivered` (the handset got it), `failed` (with a
 * reason). Receipts arrive late and out of order, so statuses merge without going backwards:
 * a later `sent` never overwrites `delivered`, and a terminal status (`delivered`, `failed`) is
 * final.
 */
export const SMS_STATUSES = ['accepted', 'sent', 'delivered', 'failed'] as const;
export type SmsStatus = (typeof SMS_STATUSES)[number];

/** Why a message failed, across providers. */
export const SMS_FAILURE_REASONS = [
  'invalid-number',
  'unreachable',
  'rejected',
  'opted-out',
  'expired',
  'provider-error',
  'unknown',
] as const;
export type SmsFailureReason = (typeof SMS_FAILURE_REASONS)[number];

const RANK: Record<SmsStatus, number> = { accepted: 0, sent: 1, delivered: 2, failed: 2 };

export const isTerminal = (status: SmsStatus) => status === 'delivered' || status === 'failed';

/** The status after a report of `next` arrives for a message in `current`. */
export function mergeStatus(current: SmsStatus, next: SmsStatus): SmsStatus {
  if (isTerminal(current)) return current;
  return RANK[next] > RANK[current] ? next : current;
}

/**
 * Kannel delivery report types (the `%d` of a `dlr-url`): 1 delivered to the phone, 2 failed at
 * the phone, 4 buffered by the SMSC, 8 accepted by the SMSC, 16 rejected by the SMSC.
 */
export function kannelReportStatus(
  type: number,
): { status: SmsStatus; reason?: SmsFailureReason } | undefined {
  switch (type) {
    case 1:
      return { status: 'delivered' };
    case 2:
      return { status: 'failed', reason: 'unreachable' };
    case 4:
    case 8:
      return { status: 'sent' };
    case 16:
      return { status: 'failed', reason: 'rejected' };
    default:
      return undefined;
  }
}
