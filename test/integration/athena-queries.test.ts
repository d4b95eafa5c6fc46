import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  findReceivedMessages,
  insertReceivedMessages,
  recordOutcomes,
  type ReceivedMessage,
} from '../../db/queries/athena.js';
import { useHarness } from '../helpers/harness.js';

/** The connector's grouped statements: what concurrent jobs and deliveries share. */
describe('the AI connector queries', () => {
  const h = useHarness();
  const message = (tenantId: string, text: string): ReceivedMessage => ({
    tenantId,
    messageId: randomUUID(),
    connector: 'ai-connector',
    interactionId: randomUUID(),
    eventId: randomUUID(),
    deliveryId: null,
    fromType: 'customer',
    text,
  });

  it('stores a batch once, reads it back by key in order, and records outcomes together', async () => {
    const a = message('t1', 'first');
    const b = message('t2', 'second');
    const stored = await insertReceivedMessages(h().db, [a, b, a]);
    expect(stored.size).toBe(2);
    expect((await insertReceivedMessages(h().db, [a])).size).toBe(0);

    const key = (m: ReceivedMessage) => ({
      tenantId: m.tenantId,
      messageId: m.messageId,
      connector: m.connector,
    });
    const found = await findReceivedMessages(h().db, [
      key(b),
      { ...key(a), tenantId: 't2' }, // another tenant's key: not found
      { ...key(a), messageId: 'not-a-uuid' }, // no message id: not found, the rest still read
      { ...key(a), messageId: a.messageId.toUpperCase() },
    ]);
    expect(found.map(row => row?.text ?? null)).toEqual(['second', null, null, 'first']);
    expect(await findReceivedMessages(h().db, [{ ...key(a), messageId: 'x' }])).toEqual([null]);

    await recordOutcomes(h().db, [
      { ...key(a), outcome: 'suggested', provider: 'builtin', intent: 'greet', confidence: 0.8 },
      { ...key(b), outcome: 'no-match', provider: 'articles', intent: null, confidence: null },
    ]);
    const [first, second] = await findReceivedMessages(h().db, [key(a), key(b)]);
    expect(first?.outcome).toBe('suggested');
    expect(second?.outcome).toBe('no-match');
  });
});
