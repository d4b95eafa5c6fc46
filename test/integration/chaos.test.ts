import { sql } from 'slonik';
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { countChannel, diagnose } from '../../bench/chaos/accounting.js';
import { faultsNamed } from '../../bench/chaos/faults.js';
import { reportRows } from '../../bench/chaos/report.js';
import { passed, runScenario, type ScenarioOptions } from '../../bench/chaos/scenario.js';
import { Arrivals } from '../../bench/chaos/tenant.js';
import { createDbPool } from '../../db/pool.js';
import { createLogger } from '../../lib/logger.js';
import { createTestDatabase } from '../helpers/harness.js';
import { startPrivatePostgres } from '../helpers/postgres-server.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

/**
 * The short version of `npm run chaos` (bench/chaos): one API and one worker process (from
 * source) on a private PostgreSQL and Redis, a few hundred chat, SMS and webhook deliveries
 * per scenario, one fault each. Whatever the fault, every chat message answered 202 is stored
 * and reaches the agent's socket, every SMS answered 201 reaches the provider, every
 * `message.created` event reaches the webhook receiver; a duplicate keeps its event id, its
 * webhook-id or its message id; no process exits on its own.
 */
const SHORT: ScenarioOptions = {
  apis: 1,
  workers: 1,
  compiled: false,
  durationMs: 8_000,
  rate: 40,
  concurrency: 10,
  sessions: 10,
  smsShare: 0.2,
  outageMs: 3_000,
  freezeMs: 8_000,
  // Generous: the counts usually settle within seconds of the fault's end.
  settleMs: 60_000,
  seed: 7,
  progress: () => undefined,
};

describe('chaos, the short version', () => {
  it.each(['worker-kill', 'redis-flushall', 'postgres-restart', 'postgres-cut', 'api-kill'])(
    '%s: nothing accepted is lost, duplicates keep their ids, no process crashes',
    async name => {
      const [fault] = faultsNamed([name]);
      const result = await runScenario(fault as NonNullable<typeof fault>, SHORT);
      const table = reportRows([result])
        .map(row => row.join(' '))
        .join('\n');
      console.info(`chaos ${name}:\n${table}`);
      expect(result.error, table).toBeUndefined();
      expect(result.unexpectedExits, result.notes.join('\n')).toBe(0);
      expect(result.counts.map(c => c.channel)).toEqual(['chat', 'sms', 'webhooks']);
      for (const c of result.counts) {
        // Enough traffic to mean something: the fault hit work in flight.
        expect(c.accepted, `${c.channel}\n${table}`).toBeGreaterThan(name === 'api-kill' ? 20 : 40);
        expect(c.persisted, `${c.channel}\n${table}`).toBe(c.accepted);
        expect(c.lost, `${c.channel}\n${table}\n${result.notes.join('\n')}`).toBe(0);
        expect(c.unstable, `${c.channel}\n${table}`).toBe(0);
      }
      if (name.startsWith('postgres-')) {
        // Requests while PostgreSQL is away are refused with 503, not answered 2xx.
        const refused = Object.entries(result.answers).filter(([kind]) => kind.startsWith('503 '));
        expect(refused.length, table).toBeGreaterThan(0);
      }
    },
    150_000,
  );
});

describe('chaos accounting', () => {
  it('counts a delivery missing as lost, and a duplicate with another id as unstable', () => {
    const arrivals = new Arrivals();
    arrivals.add({ key: 'm1', stamp: 'e1' });
    arrivals.add({ key: 'm1', stamp: 'e1' });
    arrivals.add({ key: 'm2', stamp: 'e2' });
    arrivals.add({ key: 'm2', stamp: 'e3' });
    const counted = countChannel(
      'chat',
      new Set(['m1', 'm2', 'm3']),
      new Set(['m1', 'm2']),
      arrivals,
    );
    expect(counted).toEqual({
      channel: 'chat',
      accepted: 3,
      persisted: 2,
      delivered: 2,
      lost: 1,
      duplicates: 2,
      unstable: 1,
      lostSample: ['m3'],
    });
    expect(passed({ ...result, counts: [counted] })).toBe(false);
    expect(
      passed({ ...result, counts: [{ ...counted, lost: 0, persisted: 3, unstable: 0 }] }),
    ).toBe(true);
    expect(passed({ ...result, unexpectedExits: 1 })).toBe(false);
  });
});

describe('chaos diagnostics', () => {
  // They run only when a scenario fails: this keeps their queries in step with the schema.
  it('reads where unsettled work stands from the current schema', async () => {
    const database = await createTestDatabase();
    const db = new pg.Pool({ connectionString: database.url, max: 1 });
    try {
      const lines = await diagnose(db, ['00000000-0000-4000-8000-000000000000']);
      expect(lines.map(line => line.split(':')[0])).toEqual([
        'work',
        'webhook deliveries',
        'undispatched',
        'undelivered',
        'lost SMS',
      ]);
    } finally {
      await db.end();
      await database.drop();
    }
  });
});

const result = {
  scenario: 'x',
  counts: [],
  answers: {},
  refused: 0,
  unexpectedExits: 0,
  settleMs: 0,
  notes: [],
};

describe('the PostgreSQL pool across a network cut', () => {
  it('a cut with every connection in a query leaves no connection behind: the next query runs', async () => {
    const postgres = await startPrivatePostgres();
    const proxy = await startTcpProxy(postgres.port);
    const db = await createDbPool(
      {
        url: `postgres://postgres@127.0.0.1:${proxy.port}/postgres`,
        poolSize: 5,
        ssl: false,
        migrateOnStart: false,
        lockTimeoutMs: 5_000,
        idleInTransactionTimeoutMs: 60_000,
      },
      createLogger('silent'),
    );
    try {
      for (let round = 0; round < 3; round++) {
        // Every connection of the pool inside a transaction, in a query, when the network goes.
        const inFlight = Array.from({ length: 5 }, () =>
          db
            .transaction(tx => tx.query(sql.unsafe`SELECT pg_sleep(1)`))
            .then(
              () => 'answered',
              () => 'failed',
            ),
        );
        await new Promise(resolve => setTimeout(resolve, 200));
        await proxy.cut();
        expect(await Promise.all(inFlight)).toEqual(Array(5).fill('failed'));
        await proxy.restore();
        // Before the mend, every place of the pool stayed taken by a dead connection ("pending
        // destroy") and this waited for ever.
        const answer = await Promise.race([
          db.oneFirst(sql.unsafe`SELECT 1 AS one`),
          new Promise(resolve => setTimeout(() => resolve('no answer in 5 s'), 5_000)),
        ]);
        expect(answer, `round ${round}`).toBe(1);
        expect(db.state()).toMatchObject({ pendingDestroyConnections: 0, waitingClients: 0 });
      }
    } finally {
      // A pool left with dead connections never ends: not waited for more than a moment.
      await Promise.race([
        db.end().catch(() => undefined),
        new Promise(resolve => setTimeout(resolve, 2_000)),
      ]);
      await proxy.close();
      await postgres.destroy();
    }
  }, 60_000);
});
