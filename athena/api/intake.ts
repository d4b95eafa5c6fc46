import {
  insertReceivedMessages,
  receivedKey,
  type ReceivedMessage,
} from '../../db/queries/athena.js';
import { GroupCommit } from '../../lib/group-commit.js';
import { aiConnectorQueue } from '../../queues/ai-connector.js';
import { dispatchWork, recordWorkBatch, type EnqueueContext } from '../../queues/work.js';

/** Deliveries stored together, at most, and transactions in flight at once. */
const MAX_BATCH = 200;
const MAX_IN_FLIGHT = 2;

/**
 * The connector's intake: the messages of the deliveries that arrive together are stored, with
 * their `ai-connector` work rows, in one transaction (Postgres first), and their jobs added with
 * one `addBulk` after it commits. Answers per message whether it is new; a message delivered
 * twice (in one batch or across batches) is stored and enqueued once. A failed transaction fails
 * every delivery of its batch, which the hub delivers again.
 */
export function createIntake(enqueue: EnqueueContext) {
  const group = new GroupCommit<ReceivedMessage, boolean>(
    async messages => {
      const keyOf = (m: ReceivedMessage) => receivedKey(m.tenantId, m.messageId, m.connector);
      const distinct = [...new Map(messages.map(m => [keyOf(m), m])).values()];
      const { stored, records } = await enqueue.db.transaction(async tx => {
        const stored = await insertReceivedMessages(tx, distinct);
        const records = await recordWorkBatch(
          tx,
          aiConnectorQueue,
          distinct.map(m => ({
            tenantId: m.tenantId,
            messageId: m.messageId,
            connector: m.connector,
          })),
          enqueue,
        );
        return { stored, records };
      });
      await dispatchWork(enqueue, records);
      // The first of a key's deliveries in the batch is the new one, when it is.
      const answered = new Set<string>();
      return messages.map(m => {
        const key = keyOf(m);
        const isNew = stored.has(key) && !answered.has(key);
        answered.add(key);
        return isNew;
      });
    },
    MAX_BATCH,
    MAX_IN_FLIGHT,
  );
  return { store: (message: ReceivedMessage) => group.submit(message) };
}
export type Intake = ReturnType<typeof createIntake>;
