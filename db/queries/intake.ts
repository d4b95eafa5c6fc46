import { randomUUID } from 'node:crypto';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { InteractionEvent } from '../conversation.js';
import { insertWorkRows, type WorkSettings } from '../work.js';

/**
 * The chat intake's group commit: customer messages stored in one statement for a whole batch,
 * numbered with their events where the chat allows it, else with their inbound work rows.
 */

export interface CustomerMessageIntake {
  messageId: string;
  tenantId: string;
  interactionId: string;
  participantId: string;
  text: string;
  clientMessageId: string | null;
  /** The inbound work row that goes with it when it is not numbered at intake (design §3). */
  work: { queue: string; jobId: string; payload: unknown };
}

export interface IntakeOptions {
  /** Skip interactions locked by something stronger than a numbering lock (see below). */
  skipLocked: boolean;
  /** The work settings (the caller's enqueue context). */
  settings: WorkSettings;
  /**
   * Number messages at intake where the chat allows it (default true); false stores every
   * message for the inbound processor to number, as a retry after {@link IntakeConflictError}.
   */
  number?: boolean;
}

export interface IntakeResult {
  /** The chat was open: the message was stored, or was stored before (a retry). */
  open: boolean;
  /** Stored now (false for a retry, or a closed chat). */
  stored: boolean;
  /** The inbound work row of a message stored for the inbound processor to number. */
  workId: number | null;
  /** The message's event, when it was numbered at intake (published by the caller). */
  event: InteractionEvent | null;
  /**
   * Nothing was done: the interaction is locked by something stronger than a numbering lock
   * (`FOR UPDATE`, a key change or a delete), and the batch did not wait for it. Store it alone.
   */
  skipped: boolean;
}

/** A batch rolled back because a message it numbered was a retry committed meanwhile: run again. */
export class IntakeConflictError extends Error {
  constructor(cause: unknown) {
    super('a numbered customer message was a retry committed meanwhile', { cause });
  }
}

const intakeRow = z.object({
  ord: z.number(),
  open: z.boolean(),
  stored: z.boolean(),
  work_id: z.number().nullable(),
  skipped: z.boolean(),
  event_id: z.string().nullable(),
  seq: z.number().nullable(),
  payload: z.record(z.unknown()).nullable(),
  occurred_at: z.string().nullable(),
});

/**
 * Stores customer messages in one statement (one round trip, one commit) for a whole batch: each
 * only if its interaction is open, and at most once per client message id. Messages keep the
 * batch's order (their arrival order). Results are in the input's order.
 *
 * **Numbered at intake.** Where the chat is started, not parked and has no message waiting for
 * its number, the statement takes the interaction's numbering lock (`FOR NO KEY UPDATE SKIP
 * LOCKED`, the lock of every writer of its events), numbers the messages from `last_seq` and
 * writes their `message.created` events: the message is final when it commits, and the caller
 * publishes its event. No work row and no job: nothing follows a message in a running chat (the
 * events' fan-out trigger records its webhooks). Otherwise (a new chat, a parked one, one whose
 * lock a worker or an agent's write holds, one with messages already waiting) the message is
 * stored without its number, with its inbound work row, and the inbound processor numbers it
 * after those before it (see db/conversation.ts), starting or requeueing the chat first.
 *
 * Order: a chat's messages waiting for their number are numbered before any later one, since a
 * chat with one waiting numbers nothing at intake. A message stored after the statement's
 * snapshot by a concurrent request of the same chat (sent before this one was answered) may be
 * numbered after this one: sent concurrently, they have no order to keep.
 *
 * A batch mixes every tenant's messages, so it never waits on one interaction's lock: the
 * numbering lock is only taken where it is free, and an interaction it is not taken on is
 * taken `FOR KEY SHARE` (the lock the messages' foreign key check needs anyway), which the
 * numbering lock of the inbound processor and of agent writes does not conflict with, so a worker
 * frozen mid-batch holds nobody's messages up. Only a stronger lock (`FOR UPDATE`, a key change, a
 * delete) does: with `skipLocked` such interactions are skipped (`skipped`, nothing stored for
 * them) and the caller stores their messages alone with `skipLocked: false`, which waits for the
 * lock at most the session's `lock_timeout` (then fails with 55P03).
 *
 * Throws {@link IntakeConflictError} (nothing stored) when a message it numbered turned out to be
 * a retry committed after its snapshot: its number would leave a gap. Run the batch again.
 */
export async function acceptCustomerMessages(
  db: CommonQueryMethods,
  intakes: readonly CustomerMessageIntake[],
  options: IntakeOptions,
): Promise<IntakeResult[]> {
  if (intakes.length === 0) return [];
  const keyShare = options.skipLocked
    ? sql.fragment`FOR KEY SHARE SKIP LOCKED`
    : sql.fragment`FOR KEY SHARE`;
  const numbering = options.number === false ? sql.fragment`false` : sql.fragment`true`;
  let rows;
  try {
    rows = await db.any(sql.type(intakeRow)`
      WITH input AS (
        SELECT * FROM ${sql.unnest(
          intakes.map((intake, index) => [
            index,
            intake.messageId,
            randomUUID(),
            intake.tenantId,
            intake.interactionId,
            intake.participantId,
            intake.text,
            intake.clientMessageId,
            intake.work.queue,
            intake.work.jobId,
            JSON.stringify(intake.work.payload),
          ]),
          ['int4', 'uuid', 'uuid', 'text', 'uuid', 'text', 'text', 'text', 'text', 'text', 'jsonb'],
        )} AS t(ord, id, event_id, tenant_id, interaction_id, participant_id, text,
                client_message_id, queue, job_id, payload)
      ), numbering AS (
        SELECT i.id, i.tenant_id, i.state,
               i.started_event_at IS NOT NULL AND i.routing_state IS DISTINCT FROM 'parked'
                 AND NOT EXISTS (
                   SELECT 1 FROM messages m WHERE m.interaction_id = i.id AND m.seq IS NULL
                 ) AS direct
        FROM interactions i
        WHERE i.id IN (SELECT interaction_id FROM input) AND ${numbering}
        ORDER BY i.id
        FOR NO KEY UPDATE OF i SKIP LOCKED
      ), shared AS (
        SELECT i.id, i.tenant_id, i.state, false AS direct FROM interactions i
        WHERE i.id IN (SELECT interaction_id FROM input)
          AND i.id NOT IN (SELECT id FROM numbering)
        ORDER BY i.id
        ${keyShare}
      ), locked AS (
        SELECT * FROM numbering UNION ALL SELECT * FROM shared
      ), open AS (
        SELECT input.*, i.direct FROM input
        JOIN locked i ON i.id = input.interaction_id AND i.tenant_id = input.tenant_id
        WHERE i.state = 'open'
      ), candidate AS (
        -- Numbered here: the messages of direct chats, each client message id's first, not
        -- stored before (as far as the statement's snapshot shows).
        SELECT o.ord, o.interaction_id,
               row_number() OVER (PARTITION BY o.interaction_id ORDER BY o.ord) AS rank
        FROM open o
        WHERE o.direct AND (o.client_message_id IS NULL OR (
          o.ord = (SELECT min(x.ord) FROM open x
                   WHERE x.interaction_id = o.interaction_id
                     AND x.participant_id = o.participant_id
                     AND x.client_message_id = o.client_message_id)
          AND NOT EXISTS (SELECT 1 FROM messages m
                          WHERE m.interaction_id = o.interaction_id
                            AND m.sender_id = o.participant_id
                            AND m.client_message_id = o.client_message_id)))
      ), counted AS (
        UPDATE interactions i SET last_seq = i.last_seq + c.k, updated_at = now()
        FROM (SELECT interaction_id, count(*) AS k FROM candidate GROUP BY interaction_id) c
        WHERE i.id = c.interaction_id
        RETURNING i.id, i.last_seq - c.k AS base
      ), message AS (
        INSERT INTO messages (id, tenant_id, interaction_id, seq, direction, sender_type, sender_id,
                              text, client_message_id, created_at)
        SELECT o.id, o.tenant_id, o.interaction_id, counted.base + c.rank, 'inbound', 'customer',
               o.participant_id, o.text, o.client_message_id, now()
        FROM open o
        LEFT JOIN candidate c ON c.ord = o.ord
        LEFT JOIN counted ON counted.id = c.interaction_id
        ORDER BY o.ord
        ON CONFLICT (interaction_id, sender_id, client_message_id) DO NOTHING
        RETURNING id, seq, created_at
      ), event AS (
        INSERT INTO events (id, tenant_id, interaction_id, seq, type, payload, occurred_at)
        SELECT o.event_id, o.tenant_id, o.interaction_id, m.seq, 'message.created',
               jsonb_build_object(
                 'message', jsonb_build_object(
                   'id', m.id, 'type', 'Text', 'text', o.text,
                   'clientMessageId', o.client_message_id,
                   'createdAt', to_char(m.created_at AT TIME ZONE 'UTC',
                                        'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
                 'from', jsonb_build_object(
                   'type', 'customer', 'id', o.participant_id, 'nickname', s.nickname)),
               m.created_at
        FROM message m
        JOIN open o ON o.id = m.id
        LEFT JOIN chat_sessions s ON s.interaction_id = o.interaction_id
        WHERE m.seq IS NOT NULL
        RETURNING id, seq, payload, occurred_at
      ), work AS (${insertWorkRows(
        sql.fragment`SELECT open.queue, open.job_id, open.tenant_id, open.payload
                     FROM open JOIN message ON message.id = open.id
                     WHERE message.seq IS NULL`,
        options.settings,
      )})
      SELECT input.ord, open.id IS NOT NULL AS open, message.id IS NOT NULL AS stored,
             work.id AS work_id,
             locked.id IS NULL AND EXISTS (
               SELECT 1 FROM interactions x WHERE x.id = input.interaction_id
             ) AS skipped,
             event.id AS event_id, event.seq, event.payload, event.occurred_at
      FROM input
      LEFT JOIN locked ON locked.id = input.interaction_id
      LEFT JOIN open ON open.ord = input.ord
      LEFT JOIN message ON message.id = input.id
      LEFT JOIN work ON work.job_id = input.job_id
      LEFT JOIN event ON event.id = input.event_id
      WHERE nexus_intake_assert(
        (SELECT count(*) FROM candidate) = (SELECT count(*) FROM event)
      )
      ORDER BY input.ord`);
  } catch (error) {
    if (hasCode(error, 'NX409')) throw new IntakeConflictError(error);
    throw error;
  }
  return rows.map(row => {
    const intake = intakes[row.ord] as CustomerMessageIntake;
    return {
      open: row.open,
      stored: row.stored,
      workId: row.work_id,
      skipped: row.skipped,
      event:
        row.event_id !== null && row.seq !== null && row.payload && row.occurred_at !== null
          ? {
              id: row.event_id,
              tenantId: intake.tenantId,
              interactionId: intake.interactionId,
              seq: row.seq,
              type: 'message.created',
              occurredAt: row.occurred_at,
              data: row.payload,
            }
          : null,
    };
  });
}

/** Whether an error or one of its causes (slonik wraps the driver's) carries a SQLSTATE. */
function hasCode(error: unknown, code: string): boolean {
  for (let e = error, depth = 0; e instanceof Object && depth < 6; depth++) {
    if ((e as { code?: unknown }).code === code) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** The id of a message already stored under a client message id. */
export async function findCustomerMessageId(
  db: CommonQueryMethods,
  interactionId: string,
  participantId: string,
  clientMessageId: string,
): Promise<string | undefined> {
  const row = await db.maybeOne(sql.type(z.object({ id: z.string() }))`
    SELECT id FROM messages
    WHERE interaction_id = ${interactionId} AND sender_id = ${participantId}
      AND client_message_id = ${clientMessageId}`);
  return row?.id;
}
