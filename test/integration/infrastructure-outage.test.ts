import { sql, type QuerySqlToken } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { jobsTotal } from '../../lib/metrics.js';
import { closeRedis, createRedis } from '../../lib/redis.js';
import { recordWork } from '../../queues/work.js';
import { aiConnectorQueue } from '../../queues/index.js';
import { MAX_STALLS, sweepPendingWork } from '../../workers/sweeper.js';
import { Worker } from 'bullmq';
import { provisionChatTenant } from '../helpers/chat.js';
import { eventually, useHarness, type Harness } from '../helpers/harness.js';
import { startWorkersBehindProxy } from '../helpers/outage.js';

const n = z.object({ n: z.number() });
const count = (h: Harness, query: QuerySqlToken<typeof n>) => h.db.oneFirst(query);

const deferred = async (queue: string) =>
  (await jobsTotal.get()).values.find(
    value => value.labels.queue === queue && value.labels.outcome === 'deferred',
  )?.value ?? 0;

/** A chat session through the API (form fields, as the widget sends them). */
async function openSession(url: string, chatKey: string, i: number) {
  const started = await request(url)
    .post('/nexus/v3/chat/sessions')
    .set('x-api-key', chatKey)
    .type('form')
    .send({
      'data[firstName]': `Customer ${i}`,
      'data[email]': `customer${i}@example.com`,
      'data[endpoint]': 'GlobalChatSwitchboard',
    })
    .expect(201);
  return started.body.data as { selfUri: string; clientToken: string; interactionId: string };
}

describe('infrastructure outages do not use up attempts', () => {
  // A retry budget of well under a second (3 attempts, 200 ms apart): an outage of seconds
  // outlasts it many times over, as 150 s outlasts the default budget of about 127 s.
  const h = useHarness(
    {
      NEXUS_SWEEP_INTERVAL_MS: '500',
      NEXUS_SWEEP_AFTER_MS: '1000',
      NEXUS_WORKER_DEFER_MAX_MS: '2000',
    },
    { jobOptions: { inbound: { attempts: 3, backoff: { type: 'fixed', delay: 200 } } } },
  );

  it('PostgreSQL unreachable for the workers longer than the retry budget: every accepted message is delivered, nothing undelivered', async () => {
    const api = await h().serve();
    const t = await provisionChatTenant(h(), api.app);

    // The workers reach PostgreSQL through a proxy that the test cuts; the API does not.
    const workers = await startWorkersBehindProxy(h(), {
      sweep: { afterMs: 1_000, batch: 500 },
      lock: { lockDuration: 2_000, stalledInterval: 1_000 },
    });
    const { proxy } = workers;
    try {
      const before = await deferred('inbound');
      await proxy.cut();
      // Under load while PostgreSQL is away for the workers: 12 chats, 15 messages each, sent
      // concurrently and accepted by the API.
      const sessions = await Promise.all(
        Array.from({ length: 12 }, (_, i) => openSession(api.url, t.chatKey, i)),
      );
      let accepted = 0;
      await Promise.all(
        sessions.map(async (session, s) => {
          for (let i = 0; i < 15; i++) {
            await request(api.url)
              .post(`${new URL(session.selfUri).pathname}/messages`)
              .set('x-api-key', t.chatKey)
              .set('x-nexus-client-key', session.clientToken)
              .type('form')
              .send({
                'data[type]': 'Text',
                'data[text]': `message ${s}/${i}`,
                'data[clientMessageId]': `c-${s}-${i}`,
              })
              .expect(202);
            accepted++;
          }
        }),
      );
      // The outage lasts many retry budgets, and sweeps.
      await new Promise(resolve => setTimeout(resolve, 6_000));
      await proxy.restore();

      // Every job ends (done, or failed for good and recorded undelivered by the runner or the
      // sweeper once PostgreSQL is back).
      await eventually(
        async () =>
          (await count(
            h(),
            sql.type(n)`SELECT count(*)::int AS n FROM work WHERE state = 'pending'`,
          )) === 0,
        60_000,
        'every job to end',
      );
      expect(accepted).toBe(180);
      expect(await count(h(), sql.type(n)`SELECT count(*)::int AS n FROM undelivered`)).toBe(0);
      expect(
        await count(h(), sql.type(n)`SELECT count(*)::int AS n FROM work WHERE state <> 'done'`),
      ).toBe(0);
      // Every accepted message delivered (numbered, with its event), once.
      expect(
        await count(
          h(),
          sql.type(n)`SELECT count(*)::int AS n FROM messages
            WHERE sender_type = 'customer' AND seq IS NOT NULL`,
        ),
      ).toBe(180);
      expect(
        await count(h(), sql.type(n)`SELECT count(*)::int AS n FROM messages WHERE seq IS NULL`),
      ).toBe(0);
      expect(
        await count(
          h(),
          sql.type(n)`SELECT count(*)::int AS n FROM interactions WHERE started_event_at IS NULL`,
        ),
      ).toBe(0);
      expect(await deferred('inbound')).toBeGreaterThan(before);
    } finally {
      await workers.close();
    }
  }, 120_000);

  /**
   * Makes an ai-connector job stall out for real: a worker takes it and loses its lock without
   * finishing (no lock renewal, as when Redis is unreachable); with no stall allowed, BullMQ's
   * stall check marks it to fail, and the next worker to take it fails it without running it.
   */
  async function stallOut(jobId: string) {
    const queue = h().queues.get('ai-connector');
    const options = {
      prefix: h().config.queues.prefix,
      lockDuration: 200,
      maxStalledCount: 0,
      stalledInterval: 200,
    };
    const connections = [1, 2].map(i =>
      createRedis(h().config.redis, 'worker', `stall-test-${i}`, h().log),
    );
    const stalling = new Worker('ai-connector', null, { ...options, connection: connections[0]! });
    try {
      const taken = await stalling.getNextJob('a-token');
      expect(taken?.id).toBe(jobId);
      await stalling.startStalledCheckTimer();
      await eventually(
        async () => (await queue.getJobState(jobId)) === 'waiting',
        10_000,
        'the stall check',
      );
    } finally {
      await stalling.close(true);
    }
    const ran: string[] = [];
    const next = new Worker(
      'ai-connector',
      async job => {
        ran.push(job.id ?? '');
      },
      { ...options, connection: connections[1]! },
    );
    try {
      await eventually(
        async () => (await queue.getJobState(jobId)) === 'failed',
        10_000,
        'the stalled-out failure',
      );
    } finally {
      await next.close();
      await Promise.all(connections.map(connection => closeRedis(connection)));
    }
    expect(ran).toEqual([]);
    expect((await queue.getJob(jobId))?.failedReason).toMatch(/stalled/);
  }

  const stallsOf = (jobId: string) =>
    h().db.oneFirst(
      sql.type(z.object({ stalls: z.number() }))`SELECT stalls FROM work WHERE job_id = ${jobId}`,
    );

  it('a job that stalled out (its lock lapsed, as when Redis is away) is added again while its work has attempts left', async () => {
    const payload = { tenantId: 't1', messageId: 'm-stall', connector: 'bot' };
    const record = await h().db.transaction(tx =>
      recordWork(tx, aiConnectorQueue, payload, { sweepAfterMs: 0 }),
    );
    const queue = h().queues.get('ai-connector');
    await queue.add('ai-connector', payload, { jobId: record.jobId, attempts: 3 });
    await stallOut(record.jobId);

    const result = await sweepPendingWork(
      { db: h().db, queues: h().queues, log: h().log },
      { afterMs: 60_000, batch: 10 },
    );
    expect(result).toMatchObject({ reenqueued: 1, failed: 0 });
    expect(await queue.getJobState(record.jobId)).toBe('waiting');
    expect(await count(h(), sql.type(n)`SELECT count(*)::int AS n FROM undelivered`)).toBe(0);
    expect(await stallsOf(record.jobId)).toBe(1);
  });

  it('a job that keeps stalling out (it crashes its worker) is recorded undelivered, not added again for ever', async () => {
    // Inbound counts its attempt only when its batch commits: a job that crashes its worker
    // every time never uses one, so the stall-outs are what is counted.
    const payload = { tenantId: 't1', messageId: 'm-poison', connector: 'bot' };
    const record = await h().db.transaction(tx =>
      recordWork(tx, aiConnectorQueue, payload, { sweepAfterMs: 0 }),
    );
    // The earlier stall-outs, each re-added by a sweep, as the test above shows for one.
    await h().db.query(
      sql.unsafe`UPDATE work SET stalls = ${MAX_STALLS - 1} WHERE job_id = ${record.jobId}`,
    );
    const queue = h().queues.get('ai-connector');
    const sweep = () =>
      sweepPendingWork({ db: h().db, queues: h().queues, log: h().log }, { afterMs: 0, batch: 10 });
    await queue.add('ai-connector', payload, { jobId: record.jobId, attempts: 3 });
    await stallOut(record.jobId);
    expect(await sweep()).toMatchObject({ reenqueued: 1, failed: 0 });
    expect(await stallsOf(record.jobId)).toBe(MAX_STALLS);
    await stallOut(record.jobId);
    expect(await sweep()).toMatchObject({ reenqueued: 0, failed: 1 });
    const undelivered = await h().db.one(
      sql.type(z.object({ reason: z.string(), job_id: z.string() }))`
        SELECT reason, job_id FROM undelivered`,
    );
    expect(undelivered.job_id).toBe(record.jobId);
    expect(undelivered.reason).toMatch(/stalled out 11 times/);
    const code = await h().db.oneFirst(
      sql.type(z.object({ code: z.string() }))`SELECT code FROM undelivered`,
    );
    expect(code).toBe('NEXUS_ERR_WORK_STALLED');
    expect(await queue.getJobState(record.jobId)).toBe('failed');
  });
});
