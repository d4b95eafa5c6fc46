import { randomUUID } from 'node:crypto';
import { sql, type DatabasePool } from 'slonik';

/**
 * Writes `count` `read` events of one new interaction of `tenant` in one statement, as a burst
 * of conversation writes would: the fan-out trigger turns them into deliveries at once. Each
 * event's payload carries its `seq`.
 */
export async function writeReadEvents(
  db: DatabasePool,
  tenant: string,
  count: number,
): Promise<void> {
  const interaction = randomUUID();
  await db.transaction(async tx => {
    await tx.query(sql.unsafe`
      INSERT INTO interactions (id, tenant_id, media, subtype, last_seq)
      VALUES (${interaction}, ${tenant}, 'chat', 'InboundNew', ${count})`);
    await tx.query(sql.unsafe`
      INSERT INTO events (id, tenant_id, interaction_id, seq, type, payload)
      SELECT gen_random_uuid(), ${tenant}, ${interaction}, g, 'read',
             jsonb_build_object('participant', jsonb_build_object('id', 'c', 'type', 'customer',
               'nickname', NULL), 'seq', g)
      FROM generate_series(1, ${count}) g`);
  });
}
