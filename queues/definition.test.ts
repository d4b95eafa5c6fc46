import { describe, expect, it } from 'vitest';
import { jobIdFrom } from './definition.js';
import { QUEUES, inboundQueue, webhooksQueue } from './index.js';

describe('job ids', () => {
  it('never contain ":" and are never all digits', () => {
    const id = jobIdFrom('inbound', 'tenant:1', 'sms', '12345');
    expect(id).not.toContain(':');
    expect(id).not.toMatch(/^\d+$/);
    expect(jobIdFrom('x', '1')).toBe('x.1');
  });

  it('keep distinct part lists distinct', () => {
    expect(jobIdFrom('q', 'a.b', 'c')).not.toBe(jobIdFrom('q', 'a', 'b.c'));
    expect(jobIdFrom('q', 'a%2Eb')).not.toBe(jobIdFrom('q', 'a.b'));
  });

  it('follow the idempotency keys of design §3', () => {
    const inbound = {
      tenantId: 't1',
      channel: 'sms' as const,
      externalId: 'SM:42',
      from: '+15550001',
      receivedAt: new Date(0).toISOString(),
    };
    expect(inboundQueue.jobId(inbound)).toBe('inbound.t1.sms.SM%3A42');
    expect(
      webhooksQueue.jobId({ tenantId: 't1', eventId: 'e1', targetId: 'w1', deliveryId: 1 }),
    ).toBe('webhooks.e1.w1');
  });

  it('every queue has bounded retention and at least one attempt', () => {
    for (const definition of Object.values(QUEUES)) {
      expect(definition.name).toMatch(/^[a-z][a-z0-9-]*$/);
      expect(definition.jobOptions.attempts).toBeGreaterThanOrEqual(1);
      expect(definition.jobOptions.removeOnComplete).toMatchObject({
        count: expect.any(Number) as number,
      });
      expect(definition.jobOptions.removeOnFail).toMatchObject({
        count: expect.any(Number) as number,
      });
    }
  });
});
