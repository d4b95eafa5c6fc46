import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { NUMBERING_LOCK } from '../conversation.js';

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
