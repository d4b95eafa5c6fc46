import { sql } from 'slonik';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { WorkFailure } from '../../lib/errors.js';
import { registry } from '../../lib/metrics.js';
import { inboundQueue, receiptsQueue, type InboundPayload } from '../../queues/index.js';
import { enqueueDurably } from '../../queues/work.js';
import type { Processor } from '../../workers/run-processor.js';
import { selectQueues } from '../../workers/runtime.js';
import { ADMIN_TOKEN, eventually, useHarness, type Harness } from '../helpers/harness.js';

const message = (externalId: string, tenantId = 't1'): InboundPayload => ({
  tenantId,
  channel: 'chat',
  externalId,
  from: 'session-1',
  receivedAt: new Date().toISOString(),
});

const stateOf = (h: Harness, jobId: string) =>
  h.db.maybeOneFirst(
    sql.type(z.object({ state: z.string() }))`SELECT state FROM work WHERE job_id = ${jobId}`,
  );

const undelivered = z.object({
  id: z.number(),
  queue: z.string(),
  job_id: z.string(),
  tenant_id: z.string().nullable(),
  code: z.string(),
  reason: z.string(),
  attempts: z.number(),
  failures: z.number(),
  first_attempt_at: z.string().nullable(),
  replayed_at: z.string().nullable(),
  replays: z.number(),
});
const undeliveredRows = (h: Harness) =>
  h.db.any(sql.type(undelivered)`SELECT * FROM undelivered ORDER BY id`);

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const found = (await registry.getMetricsAsJSON()).find(m => m.name === name);
  return (
    found?.values.find(v => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value ?? 0
  );
}

const admin = (h: Harness) => ({
  get: (path: string) => request(h.app()).get(path).set('Authorization', `Bearer ${ADMIN_TOKEN}`),
  post: (path: string, body?: object) =>
    request(h.app())
      .post(path)
      .set('Authorization', `Bearer ${ADMIN_TOKEN}`)
      .send(body ?? {}),
});

describe('worker pipeline', () => {
  const h = useHarness(
    {},
    { jobOptions: { inbound: { attempts: 3, backoff: { type: 'fixed', delay: 20 } } } },
  );

  it('processes a job with its parsed payload and marks the work done', async () => {
    const seen: InboundPayload[] = [];
    const before = await metric('nexus_jobs_total', { queue: 'inbound', outcome: 'completed' });
    const processInbound: Processor<typeof inboundQueue> = async payload => {
      seen.push(payload);
    };
    await h().startWorkers({ processors: { inbound: processInbound }, select: ['inbound'] });
    const record = await enqueueDurably(h().enqueue, inboundQueue, message('ok-1'));
    await eventually(
      async () => (await stateOf(h(), record.jobId)) === 'done',
      10_000,
      'work done',
    );
    expect(seen).toEqual([expect.objectContaining({ externalId: 'ok-1', channel: 'chat' })]);
    expect(await metric('nexus_jobs_total', { queue: 'inbound', outcome: 'completed' })).toBe(
      before + 1,
    );
    const attempts = await h().db.oneFirst(
      sql.type(
        z.object({ attempts: z.number() }),
      )`SELECT attempts FROM work WHERE job_id = ${record.jobId}`,
    );
    expect(attempts).toBe(1);
  });

  it('skips a job whose work is no longer pending: a stale duplicate does nothing', async () => {
    let calls = 0;
    const record = await enqueueDurably(h().enqueue, inboundQueue, message('stale-1'));
    await h().db.query(sql.unsafe`UPDATE work SET state = 'done' WHERE job_id = ${record.jobId}`);
    const before = await metric('nexus_jobs_total', { queue: 'inbound', outcome: 'stale' });
    await h().startWorkers({
      processors: {
        inbound: async () => {
          calls++;
        },
      },
      select: ['inbound'],
    });
    await eventually(
      async () =>
        (await metric('nexus_jobs_total', { queue: 'inbound', outcome: 'stale' })) === before + 1,
      10_000,
      'stale outcome',
    );
    expect(calls).toBe(0);
  });

  it('rolls back the writes of a run that finishes after another run ended the work', async () => {
    await h().db.query(sql.unsafe`CREATE TABLE side_effects (job_id text NOT NULL)`);
    const record = await enqueueDurably(h().enqueue, inboundQueue, message('race-1'));
    const before = await metric('nexus_jobs_total', { queue: 'inbound', outcome: 'stale' });
    await h().startWorkers({
      processors: {
        inbound: async (_payload, context) => {
          // Another run ends the work while this one is still busy.
          await h().db.query(
            sql.unsafe`UPDATE work SET state = 'done' WHERE job_id = ${record.jobId}`,
          );
          await context.complete(tx =>
            tx.query(sql.unsafe`INSERT INTO side_effects (job_id) VALUES (${record.jobId})`),
          );
        },
      },
      select: ['inbound'],
    });
    await eventually(
      async () =>
        (await metric('nexus_jobs_total', { queue: 'inbound', outcome: 'stale' })) === before + 1,
      10_000,
      'stale outcome',
    );
    expect(
      await h().db.anyFirst(
        sql.type(z.object({ job_id: z.string() }))`SELECT job_id FROM side_effects`,
      ),
    ).toEqual([]);
  });

  it('counts a run as stale when another run ended the work before it finished, with nothing else to commit', async () => {
    // Such runs' completions share one statement with other jobs' (group commit); each still
    // completes its own row only if it is pending.
    const raced = await enqueueDurably(h().enqueue, inboundQueue, message('race-2'));
    const plain = await Promise.all(
      ['plain-1', 'plain-2', 'plain-3'].map(id =>
        enqueueDurably(h().enqueue, inboundQueue, message(id)),
      ),
    );
    const before = await metric('nexus_jobs_total', { queue: 'inbound', outcome: 'stale' });
    await h().startWorkers({
      processors: {
        inbound: async (_payload, context) => {
          if (context.job.id !== raced.jobId) return;
          await h().db.query(
            sql.unsafe`UPDATE work SET state = 'failed' WHERE job_id = ${raced.jobId}`,
          );
        },
      },
      select: ['inbound'],
    });
    await eventually(
      async () =>
        (await metric('nexus_jobs_total', { queue: 'inbound', outcome: 'stale' })) === before + 1,
      10_000,
      'stale outcome',
    );
    for (const record of plain) {
      await eventually(async () => (await stateOf(h(), record.jobId)) === 'done', 10_000, 'done');
    }
    // The run did not overwrite what the other run decided.
    expect(await stateOf(h(), raced.jobId)).toBe('failed');
  });

  it('records a job that always fails as undelivered after its attempts, then replays it', async () => {
    let failing = true;
    const calls: number[] = [];
    const before = await metric('nexus_undelivered_total', { queue: 'inbound' });
    await h().startWorkers({
      processors: {
        inbound: async (_payload, context) => {
          calls.push(context.job.attemptsMade + 1);
          if (failing) throw new Error('provider answered 500');
        },
      },
      select: ['inbound'],
    });
    const record = await enqueueDurably(h().enqueue, inboundQueue, message('fail-1', 'tenant-a'));
    await eventually(
      async () => (await stateOf(h(), record.jobId)) === 'failed',
      10_000,
      'work failed',
    );
    expect(calls).toEqual([1, 2, 3]);
    const [row] = await undeliveredRows(h());
    expect(row).toMatchObject({
      queue: 'inbound',
      job_id: record.jobId,
      tenant_id: 'tenant-a',
      reason: 'provider answered 500',
      attempts: 3,
      failures: 1,
      replayed_at: null,
    });
    expect(row?.first_attempt_at).not.toBeNull();
    // An error without a code of its own is recorded with the generic one.
    expect(row?.code).toBe('NEXUS_ERR_WORK_FAILED');
    expect(await metric('nexus_undelivered_total', { queue: 'inbound' })).toBe(before + 1);

    const listed = await admin(h()).get('/nexus/v3/undelivered?tenant=tenant-a');
    expect(listed.status).toBe(200);
    expect(listed.body).toMatchObject({
      status: { code: 0 },
      data: {
        items: [{ id: row!.id, jobId: record.jobId, reason: 'provider answered 500', attempts: 3 }],
        next: null,
      },
    });
    expect(listed.body.data.items[0].code).toBe('NEXUS_ERR_WORK_FAILED');

    failing = false;
    const replay = await admin(h()).post(`/nexus/v3/undelivered/${row!.id}/replay`);
    expect(replay.status).toBe(202);
    expect(replay.body.data).toEqual({
      id: row!.id,
      queue: 'inbound',
      jobId: record.jobId,
      state: 'pending',
    });
    await eventually(
      async () => (await stateOf(h(), record.jobId)) === 'done',
      10_000,
      'replayed work done',
    );
    expect(calls).toEqual([1, 2, 3, 1]);
    const [after] = await undeliveredRows(h());
    expect(after).toMatchObject({ replays: 1, failures: 1 });
    expect(after?.replayed_at).not.toBeNull();

    const again = await admin(h()).post(`/nexus/v3/undelivered/${row!.id}/replay`);
    expect(again.status).toBe(409);
    expect(again.body.status.code).toBe('NEXUS_ERR_UNDELIVERED_NOT_REPLAYABLE');
  });

  it('fails at once, without retries, on an UnrecoverableError or an invalid payload', async () => {
    const calls: string[] = [];
    await h().startWorkers({
      processors: {
        inbound: async payload => {
          calls.push(payload.externalId);
          const { UnrecoverableError } = await import('bullmq');
          throw new UnrecoverableError('recipient opted out');
        },
      },
      select: ['inbound'],
    });
    const record = await enqueueDurably(h().enqueue, inboundQueue, message('permanent-1'));
    // A work row whose job carries a payload the schema rejects.
    await h().db.query(sql.unsafe`
      INSERT INTO work (queue, job_id, tenant_id, payload, next_sweep_at)
      VALUES ('inbound', 'inbound.bad', 't1', '{}'::jsonb, now() + interval '1 hour')`);
    await h().queues.get('inbound').add('inbound', { tenantId: 't1' }, { jobId: 'inbound.bad' });

    await eventually(
      async () => (await undeliveredRows(h())).length === 2,
      10_000,
      'two undelivered',
    );
    const rows = await undeliveredRows(h());
    expect(rows.find(r => r.job_id === record.jobId)).toMatchObject({
      reason: 'recipient opted out',
      attempts: 1,
    });
    expect(rows.find(r => r.job_id === 'inbound.bad')?.reason).toMatch(
      /^invalid payload: channel /,
    );
    expect(calls).toEqual(['permanent-1']);
    expect(rows.find(r => r.job_id === record.jobId)?.code).toBe('NEXUS_ERR_WORK_FAILED');
    expect(rows.find(r => r.job_id === 'inbound.bad')?.code).toBe('NEXUS_ERR_WORK_INVALID_PAYLOAD');
  });

  it("records a WorkFailure's catalogue code: at once when permanent, after the attempts when retried", async () => {
    await h().startWorkers({
      processors: {
        inbound: payload =>
          Promise.reject(
            payload.externalId === 'coded-permanent'
              ? new WorkFailure('NEXUS_ERR_SMS_OPTED_OUT', 'opted-out: +15550001')
              : new WorkFailure('NEXUS_ERR_SMS_PROVIDER_UNAVAILABLE', 'provider answered 503', {
                  retry: true,
                }),
          ),
      },
      select: ['inbound'],
    });
    const permanent = await enqueueDurably(h().enqueue, inboundQueue, message('coded-permanent'));
    const retried = await enqueueDurably(h().enqueue, inboundQueue, message('coded-retried'));
    await eventually(
      async () => (await undeliveredRows(h())).length === 2,
      10_000,
      'two undelivered',
    );
    const rows = await undeliveredRows(h());
    expect(rows.find(r => r.job_id === permanent.jobId)).toMatchObject({
      code: 'NEXUS_ERR_SMS_OPTED_OUT',
      reason: 'opted-out: +15550001',
      attempts: 1,
    });
    expect(rows.find(r => r.job_id === retried.jobId)).toMatchObject({
      code: 'NEXUS_ERR_SMS_PROVIDER_UNAVAILABLE',
      reason: 'provider answered 503',
      attempts: 3,
    });
  });

  it('replays everything since T, with filters, and counts what remains', async () => {
    await h().startWorkers({
      processors: { inbound: () => Promise.reject(new Error('down')) },
      select: ['inbound'],
    });
    const t0 = new Date(Date.now() - 1000).toISOString();
    const records = await Promise.all(
      ['a', 'b', 'c'].map(id =>
        enqueueDurably(h().enqueue, inboundQueue, message(`bulk-${id}`, `tenant-${id}`)),
      ),
    );
    await eventually(
      async () => (await undeliveredRows(h())).length === 3,
      10_000,
      'three undelivered',
    );

    const none = await admin(h()).post('/nexus/v3/undelivered/replay', {
      since: new Date(Date.now() + 60_000).toISOString(),
    });
    expect(none.body.data).toEqual({ replayed: 0, more: false });

    const one = await admin(h()).post('/nexus/v3/undelivered/replay', {
      since: t0,
      tenant: 'tenant-b',
    });
    expect(one.status).toBe(202);
    expect(one.body.data).toEqual({ replayed: 1, more: false });

    const limited = await admin(h()).post('/nexus/v3/undelivered/replay', {
      since: t0,
      queue: 'inbound',
      limit: 1,
    });
    expect(limited.body.data).toEqual({ replayed: 1, more: true });
    const rest = await admin(h()).post('/nexus/v3/undelivered/replay', { since: t0 });
    expect(rest.body.data).toEqual({ replayed: 1, more: false });

    // Replayed work fails again and is recorded again, on the same rows.
    await eventually(
      async () =>
        (await undeliveredRows(h())).every(r => r.failures === 2 && r.replayed_at === null),
      15_000,
      'replayed work failing again',
    );
    expect((await undeliveredRows(h())).map(r => r.job_id).sort()).toEqual(
      records.map(r => r.jobId).sort(),
    );
  });

  it('answers the admin API with clear errors and stores nothing on bad input', async () => {
    const app = h().app();
    const noAuth = await request(app).get('/nexus/v3/undelivered');
    expect(noAuth.status).toBe(401);
    expect(noAuth.body.status.code).toBe('NEXUS_ERR_UNAUTHORIZED');
    const wrongAuth = await request(app)
      .get('/nexus/v3/undelivered')
      .set('Authorization', 'Bearer nope');
    expect(wrongAuth.status).toBe(401);

    const badQueue = await admin(h()).get('/nexus/v3/undelivered?queue=nope');
    expect(badQueue.status).toBe(400);
    expect(badQueue.body.status).toMatchObject({
      code: 'NEXUS_ERR_VALIDATION',
      field: 'query.queue',
    });

    const badSince = await admin(h()).get('/nexus/v3/undelivered?since=yesterday');
    expect(badSince.body.status).toMatchObject({
      code: 'NEXUS_ERR_VALIDATION',
      field: 'query.since',
    });

    const unknownParam = await admin(h()).get('/nexus/v3/undelivered?tenantId=x');
    expect(unknownParam.status).toBe(400);

    const missingSince = await admin(h()).post('/nexus/v3/undelivered/replay', {});
    expect(missingSince.body.status).toMatchObject({
      code: 'NEXUS_ERR_VALIDATION',
      field: 'body.since',
    });

    const badLimit = await admin(h()).post('/nexus/v3/undelivered/replay', {
      since: new Date().toISOString(),
      limit: 0,
    });
    expect(badLimit.body.status).toMatchObject({
      code: 'NEXUS_ERR_VALIDATION',
      field: 'body.limit',
    });

    const badId = await admin(h()).post('/nexus/v3/undelivered/abc/replay');
    expect(badId.body.status).toMatchObject({ code: 'NEXUS_ERR_VALIDATION', field: 'params.id' });

    const missing = await admin(h()).post('/nexus/v3/undelivered/999999/replay');
    expect(missing.status).toBe(404);
    expect(missing.body.status.code).toBe('NEXUS_ERR_NOT_FOUND');
  });

  it('paginates the undelivered list newest first', async () => {
    for (const status of ['a', 'b', 'c']) {
      await enqueueDurably(h().enqueue, receiptsQueue, {
        tenantId: 't1',
        provider: 'kannel',
        providerMessageId: 'm1',
        status,
      });
    }
    // Three recorded failures, without waiting through the receipts queue's eight attempts.
    await h().db.query(sql.unsafe`
      INSERT INTO undelivered (queue, job_id, tenant_id, reason, attempts, last_attempt_at)
      SELECT queue, job_id, tenant_id, 'x', 1, now() FROM work`);
    const first = await admin(h()).get('/nexus/v3/undelivered?limit=2');
    expect(first.body.data.items).toHaveLength(2);
    const next = first.body.data.next as number;
    expect(next).toBe(first.body.data.items[1].id);
    const second = await admin(h()).get(`/nexus/v3/undelivered?limit=2&before=${next}`);
    expect(second.body.data.items).toHaveLength(1);
    expect(second.body.data.next).toBeNull();
    expect(second.body.data.items[0].id).toBeLessThan(next);
  });
});

describe('worker start-up', () => {
  it('refuses unknown queues and queues without a processor, naming them', () => {
    expect(() =>
      selectQueues(['inbound', 'nope', 'other'], { inbound: async () => undefined }),
    ).toThrow(
      expect.objectContaining({
        code: 'NEXUS_ERR_WORKER_UNKNOWN_QUEUE',
        message: expect.stringContaining('nope, other'),
      }),
    );
    expect(() => selectQueues(['inbound', 'webhooks'], { inbound: async () => undefined })).toThrow(
      expect.objectContaining({
        code: 'NEXUS_ERR_WORKER_NO_PROCESSOR',
        message: expect.stringContaining('webhooks'),
      }),
    );
    expect(() => selectQueues(undefined, { inbound: async () => undefined })).toThrow(
      /no processor for queue\(s\): outbound-sms/,
    );
    const maintenance = async () => undefined;
    expect(
      selectQueues(['inbound', 'inbound'], { inbound: async () => undefined, maintenance }),
    ).toEqual(['inbound', 'maintenance']);
  });
});
