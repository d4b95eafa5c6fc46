/**
 * The interaction events the pages read (the hub's event catalogue, domain/event-catalogue.ts,
 * published in /nexus/v3/openapi.json): `{id, seq, type, interactionId, occurredAt, data}`.
 */

export interface Participant {
  id: string;
  type: 'customer' | 'agent' | 'bot' | 'system';
  nickname: string | null;
}

export interface HubEvent {
  id: string;
  seq: number;
  type: string;
  interactionId: string;
  occurredAt: string;
  data: Record<string, unknown>;
}

export interface MessageData {
  message: {
    id: string;
    type: string;
    text: string | null;
    clientMessageId: string | null;
    createdAt: string;
  };
  from: Participant;
}

export interface Suggestion {
  type: 'reply' | 'article';
  text: string;
  confidence: number;
  title?: string;
  url?: string;
}

export interface SuggestionData {
  messageId: string;
  connector: string;
  provider: string;
  intent: { name: string; confidence: number } | null;
  sentiment: { score: number; label: string } | null;
  suggestions: Suggestion[];
}

/** A typing notice (not stored, no seq). */
export interface TypingNotice {
  interactionId: string;
  participant: Participant;
  typing: boolean;
  expiresInMs: number;
}

/**
 * The events of one interaction in seq order, each once: adds what is new, keeps the order, and
 * says whether a gap remains before the newest (the page then reads the missing ones).
 */
export function merge(current: readonly HubEvent[], incoming: readonly HubEvent[]): HubEvent[] {
  const bySeq = new Map(current.map(event => [event.seq, event]));
  for (const event of incoming) if (!bySeq.has(event.seq)) bySeq.set(event.seq, event);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** The highest seq such that every seq from 1 to it is present (0 when none). */
export function contiguousHead(events: readonly HubEvent[]): number {
  let head = 0;
  for (const event of events) {
    if (event.seq === head + 1) head = event.seq;
    else if (event.seq > head + 1) break;
  }
  return head;
}
