import { randomUUID } from 'node:crypto';
import type { CommonQueryMethods } from 'slonik';
import { sql } from 'slonik';
import { z } from 'zod';
import {
  addIdentifiers,
  findContactId,
  findSessionByInteraction,
  insertContact,
  markStarted,
  setInteractionContact,
  type Identifier,
  type InteractionRow,
  interactionRow,
} from '../../db/queries/chat.js';
import {
  appendEvents,
  sequencePendingMessages,
  type InteractionEvent,
} from '../../db/conversation.js';
import type { RealtimePublisher } from '../../lib/realtime-publisher.js';
import { inboundQueue, type InboundPayload } from '../../queues/index.js';
import type { Processor } from '../run-processor.js';
import { parkUntilBuilt } from './unbuilt.js';

/** Normalised identifiers a chat customer gave: email lower-cased, phone digits (and "+"). */
export function identifiersOf(session: {
  email: string | null;
  phone: string | null;
  user_data: Record<string, unknown>;
}): Identifier[] {
  const identifiers: Identifier[] = [];
  const email = session.email?.trim().toLowerCase();
  if (email) identifiers.push({ kind: 'email', value: email });
  const phone = session.phone?.replace(/[^\d+]/g, '');
  if (phone && /\d{4,}/.test(phone)) identifiers.push({ kind: 'phone', value: phone });
  const external = session.user_data.customerId;
  if (typeof external === 'string' && external.trim()) {
    identifiers.push({ kind: 'external', value: external.trim() });
  }
  return identifiers;
}

/**
 * Once per interaction, under its lock: matches or creates the contact (by email, phone or
 * external id, per tenant) and writes the STARTED and customer-joined events. Idempotent.
 */
async function startChat(
  tx: CommonQueryMethods,
  interaction: InteractionRow,
): Promise<InteractionEvent[]> {
  if (!(await markStarted(tx, interaction.id))) return [];
  const session = await findSessionByInteraction(tx, interaction.id);
  if (!session) return [];
  const identifiers = identifiersOf(session);
  let contactId = await findContactId(tx, interaction.tenant_id, identifiers);
  const returning = contactId !== undefined;
  if (!contactId) {
    contactId = randomUUID();
    await insertContact(tx, {
      id: contactId,
      tenantId: interaction.tenant_id,
      firstName: session.first_name,
      lastName: session.last_name,
      nickname: session.nickname,
    });
  }
  await addIdentifiers(tx, interaction.tenant_id, contactId, identifiers);
  await setInteractionContact(tx, interaction.id, contactId);
  return appendEvents(tx, interaction.id, [
    {
      type: 'interaction.started',
      payload: {
        interaction: {
          id: interaction.id,
          mediaType: interaction.media,
          interactionSubtype: interaction.subtype,
          endpoint: interaction.endpoint,
          contactId,
          returningContact: returning,
        },
      },
    },
    {
      type: 'participant.joined',
      payload: {
        participant: { id: session.participant_id, type: 'customer', nickname: session.nickname },
      },
    },
  ]);
}

/**
 * The inbound processor. Web chat: the API stored the session or message; here the interaction
 * is started once (contact matched, STARTED event), pending messages are numbered in arrival
 * order with their events, all in the job's completing transaction, and the events are then
 * published to every API replica. Other channels arrive with the SMS and third-party features.
 */
export function createInboundProcessor(deps: {
  publisher: RealtimePublisher;
}): Processor<typeof inboundQueue> {
  const notBuilt = parkUntilBuilt(inboundQueue, 'inbound SMS, third-party and email');
  return async (payload: InboundPayload, ctx) => {
    if (payload.channel !== 'chat' || !payload.interactionId) return notBuilt(payload, ctx);
    const interactionId = payload.interactionId;
    const events = await ctx.complete(async tx => {
      const interaction = await tx.maybeOne(
        sql.type(interactionRow.extend({ started: z.boolean() }))`
          SELECT id, tenant_id, media, subtype, state, endpoint, contact_id, last_seq, created_at,
                 updated_at, finished_at, started_event_at IS NOT NULL AS started
          FROM interactions WHERE id = ${interactionId} FOR UPDATE`,
      );
      if (!interaction) return [];
      return [
        ...(interaction.started ? [] : await startChat(tx, interaction)),
        ...(await sequencePendingMessages(tx, interactionId, { locked: true })),
      ];
    });
    if (events?.length) deps.publisher.events(events);
  };
}
