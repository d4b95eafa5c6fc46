import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

export interface CustomerMessageIntake {
  messageId: string;
  tenantId: string;
  interactionId: string;
  participantId: string;
  text: string;
  clientMessageId: string | null;
  /** The inbound work row that goes with it (Postgres-first, design §3). */
  work: { queue: string; jobId: string; payload: unknown; sweepAfterMs: number };
}

const intakeResult = z.object({
  open: z.boolean(),
  message_id: z.string().nullable(),
  work_id: z.number().nullable(),
});

/**
 * Stores a customer message and its work row in one statement (one round trip, one commit): only
 * if the interaction is open, and at most once per client message id. `stored: false` with
 * `open: true` is a retry of a message already stored.
 */
export async function acceptCustomerMessage(
  db: CommonQueryMethods,
  intake: CustomerMessageIntake,
): Promise<{ open: boolean; stored: boolean; workId: number | null }> {
  const row = await db.one(sql.type(intakeResult)`
    WITH open AS (
      SELECT id FROM interactions
      WHERE id = ${intake.interactionId} AND tenant_id = ${intake.tenantId} AND state = 'open'
    ), message AS (
      INSERT INTO messages (id, tenant_id, interaction_id, direction, sender_type, sender_id, text, client_message_id)
      SELECT ${intake.messageId}, ${intake.tenantId}, open.id, 'inbound', 'customer',
             ${intake.participantId}, ${intake.text}, ${intake.clientMessageId}
      FROM open
      ON CONFLICT (interaction_id, sender_id, client_message_id) DO NOTHING
      RETURNING id
    ), work AS (
      INSERT INTO work (queue, job_id, tenant_id, payload, next_sweep_at)
      SELECT ${intake.work.queue}, ${intake.work.jobId}, ${intake.tenantId},
             ${sql.jsonb(intake.work.payload as never)},
             now() + make_interval(secs => ${intake.work.sweepAfterMs / 1000})
      FROM message
      ON CONFLICT (queue, job_id) DO NOTHING
      RETURNING id
    )
    SELECT EXISTS (SELECT 1 FROM open) AS open,
           (SELECT id FROM message) AS message_id,
           (SELECT id FROM work) AS work_id`);
  return { open: row.open, stored: row.message_id !== null, workId: row.work_id };
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
