import { describe, expect, it } from 'vitest';
import { kannelReportStatus, mergeStatus, SMS_STATUSES } from './sms-status.js';

describe('SMS status merge', () => {
  it('moves forward only, and a terminal status is final', () => {
    expect(mergeStatus('accepted', 'sent')).toBe('sent');
    expect(mergeStatus('sent', 'delivered')).toBe('delivered');
    // Out of order: delivered, then a late sent.
    expect(mergeStatus('delivered', 'sent')).toBe('delivered');
    expect(mergeStatus('sent', 'accepted')).toBe('sent');
    expect(mergeStatus('accepted', 'failed')).toBe('failed');
    expect(mergeStatus('failed', 'delivered')).toBe('failed');
    expect(mergeStatus('delivered', 'failed')).toBe('delivered');
    for (const status of SMS_STATUSES) expect(mergeStatus(status, status)).toBe(status);
  });

  it('maps Kannel report types', () => {
    expect(kannelReportStatus(1)).toEqual({ status: 'delivered' });
    expect(kannelReportStatus(8)).toEqual({ status: 'sent' });
    expect(kannelReportStatus(2)).toEqual({ status: 'failed', reason: 'unreachable' });
    expect(kannelReportStatus(16)).toEqual({ status: 'failed', reason: 'rejected' });
    expect(kannelReportStatus(3)).toBeUndefined();
  });
});
