import { describe, expect, it } from 'vitest';
import { isHardBounce, mergeEmailStatus } from './email-status.js';

describe('mergeEmailStatus', () => {
  it('moves forward and never back', () => {
    expect(mergeEmailStatus('queued', 'sent')).toBe('sent');
    expect(mergeEmailStatus('sent', 'delivered')).toBe('delivered');
    expect(mergeEmailStatus('delivered', 'sent')).toBe('delivered');
    expect(mergeEmailStatus('queued', 'delivered')).toBe('delivered');
  });
  it('takes a bounce or a complaint after delivery', () => {
    expect(mergeEmailStatus('delivered', 'bounced')).toBe('bounced');
    expect(mergeEmailStatus('bounced', 'complained')).toBe('complained');
    expect(mergeEmailStatus('complained', 'bounced')).toBe('complained');
  });
  it('fails a mail only before delivery, and skips one only before it is sent', () => {
    expect(mergeEmailStatus('queued', 'failed')).toBe('failed');
    expect(mergeEmailStatus('queued', 'opted-out')).toBe('opted-out');
    expect(mergeEmailStatus('sent', 'failed')).toBe('failed');
    expect(mergeEmailStatus('delivered', 'failed')).toBe('delivered');
    expect(mergeEmailStatus('bounced', 'failed')).toBe('bounced');
    expect(mergeEmailStatus('sent', 'opted-out')).toBe('sent');
    expect(mergeEmailStatus('failed', 'delivered')).toBe('failed');
    expect(mergeEmailStatus('opted-out', 'sent')).toBe('opted-out');
  });
});

describe('isHardBounce', () => {
  it('reads enhanced status codes', () => {
    expect(isHardBounce('5.1.1')).toBe(true);
    expect(isHardBounce('5.1.10')).toBe(true);
    expect(isHardBounce('5.2.2')).toBe(false);
    expect(isHardBounce('4.1.1')).toBe(false);
  });
  it('falls back on the SMTP reply code', () => {
    expect(isHardBounce(undefined, 550)).toBe(true);
    expect(isHardBounce(undefined, 552)).toBe(false);
    expect(isHardBounce(undefined, 451)).toBe(false);
  });
});
