import { describe, expect, it } from 'vitest';
import { jobIdFrom, type QueueDefinition } from './definition.js';
import {
  QUEUES,
  aiConnectorQueue,
  deliveryJobIds,
  inboundQueue,
  outboundEmailQueue,
  outboundSmsQueue,
  receiptsQueue,
  webhooksQueue,
} from './index.js';

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
    const delivery = { tenantId: 't1', eventId: 'e1', targetId: 'w1', deliveryId: 1 };
    expect(webhooksQueue.jobId(delivery)).toBe('webhooks.delivery.t1.e1.w1');
    expect(webhooksQueue.jobId({ tenantId: 't1', targetId: 'w1', deliveryIds: [7, 8] })).toBe(
      'webhooks.batch.t1.7',
    );
    // Work recorded before the tenant was part of the key is replayed under its stored id.
    expect(deliveryJobIds(delivery)).toEqual(['webhooks.delivery.t1.e1.w1', 'webhooks.e1.w1']);
    expect(
      receiptsQueue.jobId({
        tenantId: 't1',
        provider: 'Async',
        providerMessageId: 'p-1',
        status: 'delivered',
      }),
    ).toBe('receipts.t1.Async.p-1.delivered');
    expect(outboundSmsQueue.jobId({ tenantId: 't1', messageId: 'm1' })).toBe('outbound-sms.t1.m1');
    expect(outboundEmailQueue.jobId({ tenantId: 't1', recordId: 'r1' })).toBe(
      'outbound-email.t1.r1',
    );
    expect(aiConnectorQueue.jobId({ tenantId: 't1', messageId: 'm1', connector: 'bot' })).toBe(
      'ai-connector.t1.m1.bot',
    );
  });

  it('carry the tenant in every tenant-owned queue: the same work of two tenants is two jobs', () => {
    const samples: Record<string, (tenantId: string) => unknown> = {
      inbound: tenantId => ({
        tenantId,
        channel: 'sms',
        externalId: 'x',
        from: '+15550001',
        receivedAt: new Date(0).toISOString(),
      }),
      'outbound-sms': tenantId => ({ tenantId, messageId: 'm1' }),
      'outbound-email': tenantId => ({ tenantId, recordId: 'r1' }),
      webhooks: tenantId => ({ tenantId, eventId: 'e1', targetId: 'w1', deliveryId: 1 }),
      'ai-connector': tenantId => ({ tenantId, messageId: 'm1', connector: 'bot' }),
      receipts: tenantId => ({
        tenantId,
        provider: 'aggregator',
        providerMessageId: 'p-1',
        status: 'delivered',
      }),
    };
    for (const definition of Object.values(QUEUES) as QueueDefinition[]) {
      if (definition.name === 'maintenance') continue;
      const sample = samples[definition.name];
      expect(sample, definition.name).toBeDefined();
      if (!sample) continue;
      const a = definition.schema.parse(sample('tenant-a'));
      const b = definition.schema.parse(sample('tenant-b'));
      expect(definition.tenantOf(a), definition.name).toBe('tenant-a');
      expect(definition.jobId(a), definition.name).not.toBe(definition.jobId(b));
    }
    // A single delivery never reads as a batch, whatever the tenant is called.
    expect(
      webhooksQueue.jobId({ tenantId: 'batch', eventId: 'e1', targetId: 'w1', deliveryId: 1 }),
    ).not.toMatch(/^webhooks\.batch\./);
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
