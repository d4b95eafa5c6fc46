import { randomUUID } from 'node:crypto';
import { sql } from 'slonik';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  acceptCustomerMessages,
  IntakeConflictError,
  type CustomerMessageIntake,
} from '../../db/queries/intake.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { createDbPool } from '../../db/pool.js';
import {
  connect,
  provisionChatTenant,
  sendCustomerMessage,
  startCustomerChat,
  type CustomerChat,
} from '../helpers/chat.js';
import { holdLocks } from '../helpers/locks.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';

/**
 * Chat intake numbers a customer message of a running chat in the statement that stores it
 * (db/queries/intake.ts): the message is final when the API answers, and reaches the sockets with
 * no worker; a chat that is new, or has messages waiting for the inbound processor, numbers
 * nothing at intake, so no message overtakes one sent before it.
 */

const messageRows = (h: Harness, interactionId: string) =>
  h.db.any(sql.type(z.object({ client_message_id: z.string(), seq: z.number().nullable() }))`
    SELECT client_message_id, seq FROM messages
    WHERE interaction_id = ${interactionId} AND sender_type = 'customer'
    ORDER BY received`);

const workOf = (h: Harness, messageId: string) =>
  h.db.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM work WHERE queue = 'inbound' AND payload->>'messageId' = ${messageId}`);

/** The interaction's events are numbered 1..last_seq, each once. */
async function expectNoGaps(h: Harness, interactionId: string): Promise<number> {
  const { n, max, last } = await h.db.one(sql.type(
    z.object({ n: z.number(), max: z.number(), last: z.number() }),
  )`
    SELECT count(*)::int AS n, coalesce(max(seq), 0)::int AS max,
           (SELECT last_seq FROM interactions WHERE id = ${interactionId})::int AS last
    FROM events WHERE interaction_id = ${interactionId}`);
  expect({ n, max }).toEqual({ n: last, max: last });
  return last;
}

/** Starts the inbound workers, waits until the chat is started, and stops them again. */
async function startChatWithWorkers(h: Harness, chat: CustomerChat): Promise<void> {
  const runtime = await h.startWorkers({
    processors: { inbound: createInboundProcessor({ db: h.db, publisher: h.publisher }) },
    select: ['inbound'],
  });
  await eventually(
    async () =>
      (await h.db.oneFirst(sql.type(z.object({ started: z.boolean() }))`
        SELECT started_event_at IS NOT NULL AS started FROM interactions
        WHERE id = ${chat.interactionId}`)) === true,
    10_000,
    'the chat started',
  );
  await runtime.close(5_000);
}

describe('chat intake numbering', () => {
  const h = useHarness();

  it('numbers a running chat’s message when it commits, with no work row, and the socket has it with no worker running', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), h().app());
    const chat = await startCustomerChat(api.url, t.chatKey, 'Dora');
    await startChatWithWorkers(h(), chat);
    const customer = connect(api.url, '/chat', { token: chat.token });
    await customer.connected;

    const sent = [];
    for (let i = 0; i < 5; i++) sent.push(await sendCustomerMessage(api.url, chat, `m${i}`));
    for (const one of sent) {
      expect(one.response.status).toBe(202);
      expect(one.response.body.data.duplicate).toBe(false);
    }
    // Final when answered: numbered, in order, with its event, and nothing left for a worker.
    const rows = await messageRows(h(), chat.interactionId);
    expect(rows.map(row => row.client_message_id)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    const seqs = rows.map(row => row.seq as number);
    expect(seqs.every(seq => seq !== null)).toBe(true);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    for (const one of sent) expect(await workOf(h(), one.response.body.data.id)).toBe(0);
    await expectNoGaps(h(), chat.interactionId);
    // Published by the API replica: the socket has every message, once, in order.
    const texts = () =>
      customer.received
        .filter(event => event.type === 'message.created')
        .map(event => (event.data as { message: { text: string } }).message.text);
    await eventually(() => texts().length === 5, 10_000, 'the socket has the messages');
    expect(texts()).toEqual(['text m0', 'text m1', 'text m2', 'text m3', 'text m4']);
    // As the event log has them (the event read back equals the event published).
    const history = await h().db.any(sql.type(z.object({ payload: z.record(z.unknown()) }))`
      SELECT payload FROM events WHERE interaction_id = ${chat.interactionId}
        AND type = 'message.created' ORDER BY seq`);
    const published = customer.received
      .filter(event => event.type === 'message.created')
      .map(event => event.data);
    expect(published).toEqual(history.map(row => row.payload));
    expect((published[0] as { from: { nickname: string } }).from.nickname).toBe('Dora');

    // A retry is a duplicate with the first id, and takes no number.
    const again = await sendCustomerMessage(api.url, chat, 'm2');
    expect(again.response.body.data).toEqual({
      id: sent[2]?.response.body.data.id,
      duplicate: true,
    });
    await expectNoGaps(h(), chat.interactionId);
    customer.socket.disconnect();
  });

  it('numbers nothing at intake while a message waits for the inbound processor: none overtakes it', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), h().app());
    const chat = await startCustomerChat(api.url, t.chatKey, 'Eve');
    // New chat, no worker: stored for the processor.
    expect((await sendCustomerMessage(api.url, chat, 'a')).response.status).toBe(202);
    await startChatWithWorkers(h(), chat);
    // Running chat whose numbering lock a frozen writer holds: stored for the processor too.
    const hold = await holdLocks(h(), [chat.interactionId], 'numbering');
    expect((await sendCustomerMessage(api.url, chat, 'b')).response.status).toBe(202);
    hold.release();
    await hold.done;
    // The lock is free, but "b" waits: later messages wait behind it.
    expect((await sendCustomerMessage(api.url, chat, 'c')).response.status).toBe(202);
    expect((await sendCustomerMessage(api.url, chat, 'd')).response.status).toBe(202);
    expect((await messageRows(h(), chat.interactionId)).map(row => row.seq)).toEqual([
      expect.any(Number),
      null,
      null,
      null,
    ]);
    await h().startWorkers({
      processors: { inbound: createInboundProcessor({ db: h().db, publisher: h().publisher }) },
      select: ['inbound'],
    });
    await eventually(
      async () => (await messageRows(h(), chat.interactionId)).every(row => row.seq !== null),
      10_000,
      'every message numbered',
    );
    // Numbered in the order sent; once caught up, the chat numbers at intake again.
    expect((await sendCustomerMessage(api.url, chat, 'e')).response.status).toBe(202);
    const rows = await messageRows(h(), chat.interactionId);
    expect(rows.map(row => row.client_message_id)).toEqual(['a', 'b', 'c', 'd', 'e']);
    const seqs = rows.map(row => row.seq as number);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(rows.at(-1)?.seq).not.toBeNull();
    await expectNoGaps(h(), chat.interactionId);
  });

  it('rolls a batch back whole when a message it numbered was a retry committed meanwhile, and stores it as a duplicate on the second run', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), h().app());
    const chat = await startCustomerChat(api.url, t.chatKey, 'Finn');
    await startChatWithWorkers(h(), chat);
    const { participantId } = await h().db.one(sql.type(z.object({ participantId: z.string() }))`
      SELECT participant_id::text AS "participantId" FROM chat_sessions
      WHERE interaction_id = ${chat.interactionId}`);
    const intake = (clientMessageId: string): CustomerMessageIntake => {
      const id = randomUUID();
      return {
        messageId: id,
        tenantId: t.tenant,
        interactionId: chat.interactionId,
        participantId,
        text: `text ${clientMessageId}`,
        clientMessageId,
        work: {
          queue: 'inbound',
          jobId: `test-${id}`,
          payload: { tenantId: t.tenant, channel: 'chat', kind: 'message', messageId: id },
        },
      };
    };
    const settings = h().enqueue;
    const before = await expectNoGaps(h(), chat.interactionId);
    // Another session stores "dup" first and commits only after the batch took its snapshot.
    const other = await createDbPool(h().config.db, h().log);
    try {
      let inserted!: () => void;
      const ready = new Promise<void>(resolve => {
        inserted = resolve;
      });
      let release!: () => void;
      const released = new Promise<void>(resolve => {
        release = resolve;
      });
      const first = other.transaction(async tx => {
        await tx.query(sql.unsafe`
          INSERT INTO messages (id, tenant_id, interaction_id, direction, sender_type, sender_id,
                                text, client_message_id)
          VALUES (${randomUUID()}, ${t.tenant}, ${chat.interactionId}, 'inbound', 'customer',
                  ${participantId}, 'first', 'dup')`);
        inserted();
        await released;
      });
      await ready;
      const batch = acceptCustomerMessages(h().db, [intake('x'), intake('dup'), intake('y')], {
        skipLocked: true,
        settings,
      });
      await new Promise(resolve => setTimeout(resolve, 300));
      release();
      await first;
      await expect(batch).rejects.toBeInstanceOf(IntakeConflictError);
    } finally {
      await other.end();
    }
    // Nothing of the batch was stored, no number taken.
    expect(await expectNoGaps(h(), chat.interactionId)).toBe(before);
    const rows = await messageRows(h(), chat.interactionId);
    expect(rows.map(row => row.client_message_id)).toEqual(['dup']);
    // Stored again without numbering (what the API does): "dup" is a duplicate, the others wait
    // for the processor behind the waiting "dup".
    const again = await acceptCustomerMessages(h().db, [intake('x'), intake('dup'), intake('y')], {
      skipLocked: true,
      settings,
      number: false,
    });
    expect(again.map(result => [result.stored, result.event])).toEqual([
      [true, null],
      [false, null],
      [true, null],
    ]);
    expect(again[0]?.workId).not.toBeNull();
    expect(again[1]?.workId).toBeNull();
  });
});
