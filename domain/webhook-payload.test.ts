import { describe, expect, it } from 'vitest';
import {
  eventsBody,
  interactionsBody,
  targetEventTypes,
  traceIdOf,
  webhookId,
} from './webhook-payload.js';

const event = {
  id: '5b0c2a8e-1d2f-4c3b-9a7e-0f1e2d3c4b5a',
  tenantId: 'acme',
  type: 'interaction.started',
  interactionId: '8e09e19f-b8ba-4db0-b6e7-dfc8a7776176',
  seq: 1,
  occurredAt: '2026-11-24T10:00:00.000Z',
  data: { interaction: { id: '8e09e19f-b8ba-4db0-b6e7-dfc8a7776176' } },
  media: 'chat',
  subtype: 'InboundNew',
};

describe('webhook payloads', () => {
  it('builds the guide’s Interactions Webhook payload', () => {
    expect(JSON.parse(interactionsBody(event, 'STARTED', 'https://nexus.example.com'))).toEqual({
      operationId: event.id,
      data: {
        entities: [
          {
            event: 'STARTED',
            entity: {
              id: event.interactionId,
              mediaType: 'chat',
              interactionSubtype: 'InboundNew',
              selfUri: `https://nexus.example.com/nexus/v3/agent/interactions/${event.interactionId}`,
            },
          },
        ],
      },
    });
  });

  it('builds the same bytes for the same event', () => {
    expect(eventsBody(event)).toBe(eventsBody({ ...event }));
    expect(JSON.parse(eventsBody(event))).toMatchObject({ id: event.id, seq: 1, tenant: 'acme' });
  });

  it('derives a stable webhook id without "." and a 32-hex trace id', () => {
    const id = webhookId(event.id, 'WebhookTransportTarget-crm');
    expect(id).toBe(`${event.id}_WebhookTransportTarget-crm`);
    expect(id).not.toContain('.');
    expect(traceIdOf(event.id)).toMatch(/^[0-9a-f]{32}$/);
  });

  it('filters what each format receives', () => {
    expect(targetEventTypes({})).toBeNull();
    expect(targetEventTypes({ events: ['message.created'] })).toEqual(['message.created']);
    expect(targetEventTypes({ format: 'interactions' })).toEqual([
      'interaction.started',
      'interaction.finished',
    ]);
    expect(
      targetEventTypes({ format: 'interactions', events: ['interaction.finished', 'read'] }),
    ).toEqual(['interaction.finished']);
  });
});
