import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { NUMBERING_LOCK } from '../conversation.js';
import { interactionRow, type InteractionRow } from './interactions.js';

/**
 * The numbering lock on `interactions` (NUMBERING_LOCK): events are numbered under it, so
 * whoever holds it numbers after whatever was committed before.
 */

/**
 * An interaction's state and last seq, locked for the rest of the transaction (so events
 * written next are numbered after whatever was committed before). Undefined when it does not
 * exist or belongs to another tenant.
 */
export async function interactionState(
  tx: CommonQueryMethods,
  interactionId: string,
  tenantId?: string,
): Promise<{ state: 'open' | 'done'; lastSeq: number } | undefined> {
  const row = await tx.maybeOne(
    sql.type(
      z.object({ state: z.enum(['open', 'done']), last_seq: z.number(), tenant_id: z.string() }),
    )`SELECT state, last_seq, tenant_id FROM interactions WHERE id = ${interactionId} ${NUMBERING_LOCK}`,
  );
  if (!row || (tenantId !== undefined && row.tenant_id !== tenantId)) return undefined;
  return { state: row.state, lastSeq: row.last_seq };
}

/**
 * The inbound processor's batch: these interactions, in id order, each with whether its STARTED
 * event was written, locked with the numbering lock for the rest of the transaction. With `skipLocked`, interactions locked by someone else are left out instead
 * of waited for; with `lockTimeoutMs`, the transaction waits for a lock at most that long.
 */
export async function lockInteractionsForNumbering(
  tx: CommonQueryMethods,
  ids: readonly string[],
  options: { skipLocked: boolean; lockTimeoutMs?: number | undefined },
): Promise<readonly (InteractionRow & { started: boolean })[]> {
  if (options.lockTimeoutMs !== undefined) {
    await tx.query(
      sql.unsafe`SELECT set_config('lock_timeout', ${`${options.lockTimeoutMs}ms`}, true)`,
    );
  }
  return tx.any(
    sql.type(interactionRow.extend({ started: z.boolean() }))`
      SELECT id, tenant_id, media, subtype, state, endpoint, contact_id, last_seq, created_at,
             updated_at, finished_at, started_event_at IS NOT NULL AS started
      FROM interactions WHERE id = ANY(${sql.array([...ids], 'uuid')}) ORDER BY id
      ${NUMBERING_LOCK} ${options.skipLocked ? sql.fragment`SKIP LOCKED` : sql.fragment``}`,
  );
}
