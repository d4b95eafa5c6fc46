import { sql, type QuerySqlToken } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { jobsTotal } from '../../lib/metrics.js';
import { provisionChatTenant } from '../helpers/chat.js';
import { eventually, useHarness } from '../helpers/harness.js';
import { startWorkersBehindProxy } from '../helpers/outage.js';

/**
 * A real PostgreSQL outage for the workers, with the queues' default retry budget (inbound: 8
 * attempts, exponential from 1 s, about 127 s): run by hand, not in CI, e.g.
 *   NEXUS_OUTAGE_SECONDS=150 npx vitest run --project integration test/integration/outage-manual.test.ts
 * Messages arrive throughout the outage (the API's PostgreSQL stays up); the figures are printed.
 */
const OUTAGE_SECONDS = Number(process.env.NEXUS_OUTAGE_SECONDS ?? 0);
const SESSIONS = 20;
/** Messages per second, across the sessions, during the outage. */
const RATE = 4;

const n = z.object({ n: z.number() });

describe.skipIf(!OUTAGE_SECONDS)('a long PostgreSQL outage, by hand', () => {
  const h = useHarness();

  it(
    `PostgreSQL unreachable for the workers ${OUTAGE_SECONDS} s under load`,
    async () => {
      const count = (query: QuerySqlToken<typeof n>) => h().db.oneFirst(query);
      const api = await h().serve();
      const t = await provisionChatTenant(h(), api.app);
      const workers = await startWorkersBehindProxy(h(), {
        sweep: { afterMs: h().config.workers.sweepAfterMs, batch: h().config.workers.sweepBatch },
      });
      const { proxy } = workers;
      try {
        const sessions = await Promise.all(
          Array.from({ length: SESSIONS }, async (_, i) => {
            const started = await request(api.url)
              .post('/nexus/v3/chat/sessions')
              .set('x-api-key', t.chatKey)
              .type('form')
              .send({
                'data[firstName]': `Customer ${i}`,
                'data[endpoint]': 'GlobalChatSwitchboard',
              })
              .expect(201);
            return started.body.data as { selfUri: string; clientToken: string };
          }),
        );
        await proxy.cut();
        const cutAt = Date.now();
        let accepted = 0;
        let refused = 0;
        let i = 0;
        while (Date.now() - cutAt < OUTAGE_SECONDS * 1000) {
          const session = sessions[i % SESSIONS]!;
          const index = i++;
          void request(api.url)
            .post(`${new URL(session.selfUri).pathname}/messages`)
            .set('x-api-key', t.chatKey)
            .set('x-nexus-client-key', session.clientToken)
            .type('form')
            .send({ 'data[text]': `message ${index}`, 'data[clientMessageId]': `c-${index}` })
            .then(response => (response.status === 202 ? accepted++ : refused++));
          await new Promise(resolve => setTimeout(resolve, 1000 / RATE));
        }
        await proxy.restore();
        const restoredAt = Date.now();
        await eventually(
          async () =>
            (await count(
              sql.type(n)`SELECT count(*)::int AS n FROM work WHERE state = 'pending'`,
            )) === 0,
          15 * 60_000,
          'the backlog to drain',
        );
        const drainedMs = Date.now() - restoredAt;
        const delivered = await count(
          sql.type(n)`SELECT count(*)::int AS n FROM messages
            WHERE sender_type = 'customer' AND seq IS NOT NULL`,
        );
        const events = await count(
          sql.type(n)`SELECT count(*)::int AS n FROM events e
            WHERE e.type = 'message.created' AND e.payload #>> '{from,type}' = 'customer'`,
        );
        const undelivered = await count(sql.type(n)`SELECT count(*)::int AS n FROM undelivered`);
        const outcomes = Object.fromEntries(
          (await jobsTotal.get()).values
            .filter(value => value.labels.queue === 'inbound')
            .map(value => [value.labels.outcome, value.value]),
        );
        const figures = {
          outageSeconds: OUTAGE_SECONDS,
          accepted,
          refused,
          delivered,
          duplicates: events - delivered,
          undelivered,
          drainSeconds: drainedMs / 1000,
          inboundOutcomes: outcomes,
        };
        process.stdout.write(`OUTAGE FIGURES ${JSON.stringify(figures)}\n`);
        expect(undelivered).toBe(0);
        expect(delivered).toBe(accepted);
      } finally {
        await workers.close();
      }
    },
    (OUTAGE_SECONDS + 20 * 60) * 1000,
  );
});
