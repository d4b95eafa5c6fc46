import { sql } from 'slonik';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createDbPool } from '../../db/pool.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import {
  provisionChatTenant,
  sendCustomerMessage,
  startCustomerChat,
  type CustomerChat,
} from '../helpers/chat.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';

/**
 * One busy chat must not stall inbound work for every tenant through the worker's job slots: a
 * chat whose interaction another session holds (a frozen batch of another worker) has many jobs
 * pending, more than the worker's concurrency; another tenant's message is still numbered at
 * once. The hub's settings are the defaults (concurrency 10, pool 10, lock timeout 5 s).
 */

/** The point of the test: the other tenant's message is numbered this fast (unfixed: > 5 s). */
const PROMPT_MS = 3_000;
const BUSY_JOBS = 15;

async function send(url: string, chat: CustomerChat, clientMessageId: string): Promise<void> {
  const { response } = await sendCustomerMessage(url, chat, clientMessageId);
  expect(response.status).toBe(202);
}

const count = z.object({ stored: z.number(), numbered: z.number(), events: z.number() });

/** Customer messages stored, numbered, and their message.created events. */
const storedOf = (h: Harness, interactionId: string) =>
  h.db.one(sql.type(count)`
    SELECT (SELECT count(*)::int FROM messages
            WHERE interaction_id = ${interactionId} AND sender_type = 'customer') AS stored,
           (SELECT count(seq)::int FROM messages
            WHERE interaction_id = ${interactionId} AND sender_type = 'customer') AS numbered,
           (SELECT count(*)::int FROM events
            WHERE interaction_id = ${interactionId} AND type = 'message.created') AS events`);

const pause = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

describe('inbound work while one chat is locked by another session', () => {
  const h = useHarness();

  it(`a chat locked with ${BUSY_JOBS} jobs pending leaves the worker's slots to other tenants`, async () => {
    expect(h().config.workers.concurrency).toBeLessThan(BUSY_JOBS);
    const api = await h().serve();
    const a = await provisionChatTenant(h(), h().app(), 'busy-a');
    const b = await provisionChatTenant(h(), h().app(), 'busy-b');
    await h().startWorkers({
      processors: {
        inbound: createInboundProcessor({
          db: h().db,
          publisher: h().publisher,
          log: h().log,
          config: h().config,
        }),
      },
      select: ['inbound'],
    });
    const busy = await startCustomerChat(api.url, a.chatKey, 'Busy');
    const other = await startCustomerChat(api.url, b.chatKey, 'Other');
    await eventually(
      async () =>
        (await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
          SELECT count(*)::int AS n FROM interactions WHERE started_event_at IS NOT NULL`)) === 2,
      15_000,
      'both chats started',
    );

    // Another session holds the busy chat's numbering lock in an open transaction.
    const holder = await createDbPool(
      { ...h().config.db, lockTimeoutMs: 60_000, idleInTransactionTimeoutMs: 120_000 },
      h().log,
    );
    let release!: () => void;
    const released = new Promise<void>(resolve => (release = resolve));
    let taken!: () => void;
    const locked = new Promise<void>(resolve => (taken = resolve));
    const held = holder
      .transaction(async tx => {
        await tx.query(sql.unsafe`
          SELECT id FROM interactions WHERE id = ${busy.interactionId} FOR NO KEY UPDATE`);
        taken();
        await Promise.race([released, pause(60_000)]);
      })
      .finally(() => holder.end());
    try {
      await locked;
      await Promise.all(
        Array.from({ length: BUSY_JOBS }, (_, i) => send(api.url, busy, `busy-${i}`)),
      );
      // The worker takes the busy chat's jobs.
      await pause(500);

      const sentAt = Date.now();
      await send(api.url, other, 'other-1');
      await eventually(
        async () => (await storedOf(h(), other.interactionId)).numbered === 1,
        20_000,
        "the other tenant's message numbered",
      );
      const tookMs = Date.now() - sentAt;
      console.info(`another tenant's message numbered in ${tookMs} ms while a chat was locked`);
      expect(tookMs).toBeLessThan(PROMPT_MS);
      expect((await storedOf(h(), busy.interactionId)).numbered).toBe(0);
    } finally {
      release();
      await held;
    }

    // The lock goes: every message is numbered, once.
    await eventually(
      async () => (await storedOf(h(), busy.interactionId)).numbered === BUSY_JOBS,
      30_000,
      "the busy chat's messages numbered",
    );
    await eventually(
      async () =>
        (await h().db.oneFirst(sql.type(z.object({ n: z.number() }))`
          SELECT count(*)::int AS n FROM work WHERE queue = 'inbound' AND state <> 'done'`)) === 0,
      30_000,
      'every inbound job done',
    );
    expect(await storedOf(h(), busy.interactionId)).toEqual({
      stored: BUSY_JOBS,
      numbered: BUSY_JOBS,
      events: BUSY_JOBS,
    });
    expect(await storedOf(h(), other.interactionId)).toEqual({
      stored: 1,
      numbered: 1,
      events: 1,
    });
  }, 90_000);
});
