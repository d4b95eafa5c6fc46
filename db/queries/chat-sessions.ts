import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/** Queries on `chat_sessions`: a customer's chat session (the client token's subject). */

export const sessionRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  interaction_id: z.string(),
  participant_id: z.string(),
  nickname: z.string(),
  first_name: z.string().nullable(),
  last_name: z.string().nullable(),
  email: z.string().nullable(),
  phone: z.string().nullable(),
  stream: z.string().nullable(),
  user_data: z.record(z.unknown()),
  state: z.enum(['open', 'ended']),
  created_at: z.string(),
  ended_at: z.string().nullable(),
});
export type SessionRow = z.infer<typeof sessionRow>;
const sessionColumns = sql.fragment`id, tenant_id, interaction_id, participant_id, nickname,
  first_name, last_name, email, phone, stream, user_data, state, created_at, ended_at`;

export interface NewSession {
  id: string;
  tenantId: string;
  interactionId: string;
  participantId: string;
  nickname: string;
  firstName: string | null;
  lastName: string | null;
  email: string | null;
  phone: string | null;
  stream: string | null;
  userData: Record<string, string>;
}

export async function insertSession(
  tx: CommonQueryMethods,
  session: NewSession,
): Promise<SessionRow> {
  return tx.one(sql.type(sessionRow)`
    INSERT INTO chat_sessions (id, tenant_id, interaction_id, participant_id, nickname, first_name,
                               last_name, email, phone, stream, user_data)
    VALUES (${session.id}, ${session.tenantId}, ${session.interactionId}, ${session.participantId},
            ${session.nickname}, ${session.firstName}, ${session.lastName}, ${session.email},
            ${session.phone}, ${session.stream}, ${sql.jsonb(session.userData)})
    RETURNING ${sessionColumns}`);
}

export async function findSession(
  db: CommonQueryMethods,
  id: string,
): Promise<SessionRow | undefined> {
  const row = await db.maybeOne(sql.type(sessionRow)`
    SELECT ${sessionColumns} FROM chat_sessions WHERE id = ${id}`);
  return row ?? undefined;
}

export async function findSessionByInteraction(
  db: CommonQueryMethods,
  interactionId: string,
): Promise<SessionRow | undefined> {
  const row = await db.maybeOne(sql.type(sessionRow)`
    SELECT ${sessionColumns} FROM chat_sessions WHERE interaction_id = ${interactionId}`);
  return row ?? undefined;
}

/** Ends the chat session of an interaction (the given one, when known). */
export async function endSessionOf(
  tx: CommonQueryMethods,
  interactionId: string,
  sessionId?: string,
): Promise<boolean> {
  const result = await tx.query(sql.unsafe`
    UPDATE chat_sessions SET state = 'ended', ended_at = now()
    WHERE interaction_id = ${interactionId} AND state = 'open'
      ${sessionId === undefined ? sql.fragment`` : sql.fragment`AND id = ${sessionId}`}`);
  return result.rowCount > 0;
}
