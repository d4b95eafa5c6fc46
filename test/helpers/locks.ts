import { sql } from 'slonik';
import { NUMBERING_LOCK } from '../../db/conversation.js';
import { createDbPool } from '../../db/pool.js';
import type { Harness } from './harness.js';

/** A lock held by another session until `release` (or the hold time): `done` when it ended. */
export interface HeldLocks {
  release(): void;
  readonly done: Promise<void>;
}

/**
 * Locks interactions in a transaction of a pool of its own, as another process would, until
 * `release` is called or `holdMs` passes: `numbering` as the inbound processor does mid-batch
 * (its numbering lock, and an update of the rows), `for-update` a plain `FOR UPDATE` (a stronger
 * lock that intake's key-share lock waits for). Resolves once the locks are taken.
 */
export async function holdLocks(
  h: Harness,
  ids: readonly string[],
  how: 'numbering' | 'for-update',
  holdMs = 20_000,
): Promise<HeldLocks> {
  const holder = await createDbPool(
    { ...h.config.db, lockTimeoutMs: 60_000, idleInTransactionTimeoutMs: 120_000 },
    h.log,
  );
  let release!: () => void;
  const released = new Promise<void>(resolve => {
    release = resolve;
  });
  let locked!: () => void;
  const taken = new Promise<void>(resolve => {
    locked = resolve;
  });
  const lockClause = how === 'numbering' ? NUMBERING_LOCK : sql.fragment`FOR UPDATE`;
  const done = holder
    .transaction(async tx => {
      await tx.query(sql.unsafe`
        SELECT id FROM interactions WHERE id = ANY(${sql.array([...ids], 'uuid')}) ORDER BY id
        ${lockClause}`);
      if (how === 'numbering') {
        await tx.query(sql.unsafe`
          UPDATE interactions SET last_seq = last_seq, updated_at = now()
          WHERE id = ANY(${sql.array([...ids], 'uuid')})`);
      }
      locked();
      await Promise.race([released, new Promise(resolve => setTimeout(resolve, holdMs))]);
    })
    .finally(() => holder.end());
  await taken;
  return { release, done };
}
