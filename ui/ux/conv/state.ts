import type { HubEvent, Participant } from '../../shared/events.js';

/** The signed-in agent (`GET /nexus/v3/agent/me`). */
export interface Me {
  id: string;
  username: string;
  name: string;
  tenant: string;
}

export interface ConversationState {
  /** A key of strings.state. */
  key: string;
  joined: boolean;
  offeredToMe: boolean;
  offerSecondsLeft: number | undefined;
  assignedToMe: boolean;
  done: boolean;
}

/**
 * Where the conversation stands for this agent, read from its events in seq order (the
 * interaction's routing state is not a field of the API: its events are the record).
 */
export function deriveState(
  events: readonly HubEvent[],
  me: Me | undefined,
  now: number,
): ConversationState {
  let key = 'open';
  let joined = false;
  let offer: { agentId: string; expiresAt: number } | undefined;
  let assignedTo: string | undefined;
  let done = false;
  for (const event of events) {
    const data = event.data;
    const agentId = (data.agent as { id?: string } | undefined)?.id;
    switch (event.type) {
      case 'participant.joined':
        if ((data.participant as Participant).id === me?.id) joined = true;
        break;
      case 'participant.left':
        if ((data.participant as Participant).id === me?.id) joined = false;
        break;
      case 'interaction.queued':
        key = 'queued';
        offer = undefined;
        assignedTo = undefined;
        break;
      case 'interaction.offered':
        offer = { agentId: agentId ?? '', expiresAt: Date.parse(String(data.expiresAt)) };
        key = agentId === me?.id ? 'offered' : 'offeredOther';
        break;
      case 'interaction.assigned':
        offer = undefined;
        assignedTo = agentId;
        key = agentId === me?.id ? 'assigned' : 'assignedOther';
        break;
      case 'interaction.parked':
        key = 'parked';
        break;
      case 'interaction.bot':
        key = 'bot';
        break;
      case 'interaction.finished':
        key = 'done';
        done = true;
        break;
      default:
        break;
    }
  }
  const offerOpen = offer !== undefined && offer.expiresAt > now && !done;
  const offeredToMe = offerOpen && offer?.agentId === me?.id;
  if (key === 'offered' && !offeredToMe) key = 'queued';
  return {
    key,
    joined,
    offeredToMe,
    offerSecondsLeft:
      offeredToMe && offer ? Math.max(0, Math.ceil((offer.expiresAt - now) / 1000)) : undefined,
    assignedToMe: assignedTo !== undefined && assignedTo === me?.id && !done,
    done,
  };
}
