/**
 * The bodies webhook targets receive. Both are built from the event alone, so every attempt of a
 * delivery sends the same bytes.
 */

export interface WebhookEvent {
  id: string;
  tenantId: string;
  type: string;
  interactionId: string | null;
  seq: number | null;
  occurredAt: string;
  data: Record<string, unknown>;
  /** The interaction's media and subtype (interaction events). */
  media: string | null;
  subtype: string | null;
}

/** Format `events`: the event as the catalogue describes it (docs/events.md). */
export function eventsBody(event: WebhookEvent): string {
  return JSON.stringify({
    id: event.id,
    type: event.type,
    tenant: event.tenantId,
    interactionId: event.interactionId,
    seq: event.seq,
    occurredAt: new Date(event.occurredAt).toISOString(),
    data: event.data,
  });
}

/**
 * Format `interactions`: the guide's Interactions Webhook `EventsPayload`. `operationId` is the
 * event id (stable across retries); `selfUri` is the agent API's URL of the interaction.
 */
export function interactionsBody(
  event: WebhookEvent,
  kind: 'STARTED' | 'FINISHED',
  publicUrl: string,
): string {
  return JSON.stringify({
    operationId: event.id,
    data: {
      entities: [
        {
          event: kind,
          entity: {
            id: event.interactionId,
            mediaType: event.media,
            interactionSubtype: event.subtype,
            selfUri: `${publicUrl}/nexus/v3/agent/interactions/${event.interactionId ?? ''}`,
          },
        },
      ],
    },
  });
}

/** The Standard Webhooks id of a delivery: stable across retries and replays, no ".". */
export const webhookId = (eventId: string, target: string) => `${eventId}_${target}`;

/** A B3 trace id (32 hex) derived from the event, so every attempt of a delivery shares it. */
export const traceIdOf = (eventId: string) => eventId.replace(/-/g, '').slice(0, 32);

/** The event types an Interactions Webhook target (format `interactions`) receives. */
export const INTERACTIONS_WEBHOOK_TYPES: Readonly<Record<string, 'STARTED' | 'FINISHED'>> = {
  'interaction.started': 'STARTED',
  'interaction.finished': 'FINISHED',
};

/** What the fan-out trigger filters on, from a target's `data`. NULL = every event type. */
export function targetEventTypes(data: {
  events?: readonly string[] | undefined;
  format?: string | undefined;
}): string[] | null {
  if (data.format === 'interactions') {
    const types = Object.keys(INTERACTIONS_WEBHOOK_TYPES);
    return data.events ? types.filter(type => data.events?.includes(type)) : types;
  }
  return data.events ? [...data.events] : null;
}
