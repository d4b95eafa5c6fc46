import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { insertWorkRows, type WorkSettings } from '../work.js';

/**
 * The chat intake's group commit: customer messages and their inbound work rows stored in one
 * statement for a whole batch.
 */

export interface CustomerMessageIntake {
  messageId: string;
  tenantId: string;
  interactionId: string;
  participantId: string;
  text: string;
  clientMessageId: string | null;
  /** The inbound work row that goes with it (Postgres-first, design §3). */
  work: { queue: string; jobId: string; payload: unknown };
}

export interface IntakeOptions {
  /** Skip interactions locked by something stronger than a numbering lock (see below). */
  skipLocked: boolean;
  /** The work settings (the caller's enqueue context). */
  settings: WorkSettings;
}

export interface IntakeResult {
  /** The chat was open: the message was stored, or was stored before (a retry). */
  open: boolean;
  /** Stored now (false for a retry, or a closed chat). */
  stored: boolean;
  workId: number | null;
  /**
   * Nothing was done: the interaction is locked by something stronger than a numbering lock
   * (`FOR UPDATE`, a key change or a delete), and the batch did not wait for it. Store it alone.
   */
  skipped: boolean;
}

const intakeRow = z.object({
  ord: z.number(),
  open: z.boolean(),
  stored: z.boolean(),
  work_id: z.number().nullable(),
  skipped: z.boolean(),
});

/**
 * Stores customer messages and their work rows in one statement (one round trip, one commit) for
 * a whole batch: each only if its interaction is open, and at most once per client message id.
 * Messages keep the batch's order (their arrival order). Results are in the input's order.
 *
 * A batch mixes every tenant's messages, so it must never wait on one interaction's lock: the
 * statement first takes each interaction `FOR KEY SHARE` (the lock the messages' foreign key
 * check needs anyway, which then finds it held and waits for nothing). The numbering lock of the
 * inbound processor and of agent writes (`FOR NO KEY UPDATE`) does not conflict with it, so a
 * worker frozen mid-batch holds nobody's messages up. Only a stronger lock (`FOR UPDATE`, a key
 * change, a delete) does: with `skipLocked` such interactions are skipped (`skipped`, nothing
 * stored for them) and the caller stores their messages alone with `skipLocked: false`, which
 * waits for the lock at most the session's `lock_timeout` (then fails with 55P03).
 */
export async function acceptCustomerMessages(
  db: CommonQueryMethods,
  intakes: readonly CustomerMessageIntake[],
  options: IntakeOptions,
): Promise<IntakeResult[]> {
  if (intakes.length === 0) return [];
  const lock = options.skipLocked
    ? sql.fragment`FOR KEY SHARE SKIP LOCKED`
    : sql.fragment`FOR KEY SHARE`;
  const rows = await db.any(sql.type(intakeRow)`
    WITH input AS (
      SELECT * FROM ${sql.unnest(
        intakes.map((intake, index) => [
          index,
          intake.messageId,
          intake.tenantId,
          intake.interactionId,
          intake.participantId,
          intake.text,
          intake.clientMessageId,
          intake.work.queue,
          intake.work.jobId,
          JSON.stringify(intake.work.payload),
        ]),
        ['int4', 'uuid', 'text', 'uuid', 'text', 'text', 'text', 'text', 'text', 'jsonb'],
      )} AS t(ord, id, tenant_id, interaction_id, participant_id, text, client_message_id, queue,
              job_id, payload)
    ), locked AS (
      SELECT i.id, i.tenant_id, i.state FROM interactions i
      WHERE i.id IN (SELECT interaction_id FROM input)
      ORDER BY i.id
      ${lock}
    ), open AS (
      SELECT input.* FROM input
      JOIN locked i ON i.id = input.interaction_id AND i.tenant_id = input.tenant_id
      WHERE i.state = 'open'
    ), message AS (
      INSERT INTO messages (id, tenant_id, interaction_id, direction, sender_type, sender_id, text, client_message_id)
      SELECT id, tenant_id, interaction_id, 'inbound', 'customer', participant_id, text, client_message_id
      FROM open ORDER BY ord
      ON CONFLICT (interaction_id, sender_id, client_message_id) DO NOTHING
      RETURNING id
    ), work AS (${insertWorkRows(
      sql.fragment`SELECT open.queue, open.job_id, open.tenant_id, open.payload
                   FROM open JOIN message ON message.id = open.id`,
      options.settings,
    )})
    SELECT input.ord, open.id IS NOT NULL AS open, message.id IS NOT NULL AS stored,
           work.id AS work_id,
           locked.id IS NULL AND EXISTS (
             SELECT 1 FROM interactions x WHERE x.id = input.interaction_id
           ) AS skipped
    FROM input
    LEFT JOIN locked ON locked.id = input.interaction_id
    LEFT JOIN open ON open.ord = input.ord
    LEFT JOIN message ON message.id = input.id
    LEFT JOIN work ON work.job_id = input.job_id
    ORDER BY input.ord`);
  return rows.map(row => ({
    open: row.open,
    stored: row.stored,
    workId: row.work_id,
    skipped: row.skipped,
  }));
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
