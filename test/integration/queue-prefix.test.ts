import { createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { sql } from 'slonik';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { stampPrefixAtStart } from '../../bin/bootstrap.js';
import { createDbPool } from '../../db/pool.js';
import { deploymentId } from '../../db/queries/deployment.js';
import { AppError } from '../../lib/errors.js';
import { createLogger } from '../../lib/logger.js';
import { jobsTotal } from '../../lib/metrics.js';
import { prefixStampKey } from '../../lib/queue-prefix.js';
import { closeRedis, createRedis } from '../../lib/redis.js';
import { aiConnectorQueue, type AiConnectorPayload } from '../../queues/index.js';
import { dispatchWork, recordWork } from '../../queues/work.js';
import { createMaintenanceProcessor } from '../../workers/processors/maintenance.js';
import type { Processor } from '../../workers/run-processor.js';
import { startWorkers, type WorkerRuntime } from '../../workers/runtime.js';
import { createHarness, eventually, testConfig, type Harness } from '../helpers/harness.js';

/** Log lines (parsed), for the warnings the workers write. */
function logSink() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { lines, log: createLogger('info', stream) };
}

const foreignCount = async (queue: string) =>
  (await jobsTotal.get()).values.find(
    value => value.labels.queue === queue && value.labels.outcome === 'foreign',
  )?.value ?? 0;

describe('one deployment per queue prefix', () => {
  const harnesses: Harness[] = [];
  const runtimes: WorkerRuntime[] = [];
  afterEach(async () => {
    await Promise.all(runtimes.splice(0).map(runtime => runtime.close(2_000)));
    for (const h of harnesses.splice(0).reverse()) await h.close();
  });

  /** The workers of a deployment (a harness: its database), with the given `ai-connector` processor. */
  const workersOf = async (
    h: Harness,
    processor: Processor<typeof aiConnectorQueue>,
    log = h.log,
  ) => {
    const runtime = await startWorkers({
      config: h.config,
      log,
      db: h.db,
      queues: h.queues,
      processors: {
        'ai-connector': processor,
        maintenance: createMaintenanceProcessor(
          { db: h.db, queues: h.queues, log },
          { afterMs: 60_000, batch: 10 },
        ),
      },
      select: ['ai-connector'],
      lock: { lockDuration: 2_000, stalledInterval: 1_000 },
    });
    runtimes.push(runtime);
    return runtime;
  };

  it('a second deployment (another database) on the same prefix refuses to start; the stamp comes back after Redis lost it', async () => {
    const env = { NEXUS_SWEEP_INTERVAL_MS: '300' };
    const first = await createHarness(env);
    harnesses.push(first);
    const prefix = first.config.queues.prefix;
    const second = await createHarness({ ...env, NEXUS_QUEUE_PREFIX: prefix });
    harnesses.push(second);
    expect(second.dbUrl).not.toBe(first.dbUrl);

    const idle: Processor<typeof aiConnectorQueue> = async () => undefined;
    await workersOf(first, idle);
    const refused = await workersOf(second, idle).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(AppError);
    expect(refused).toMatchObject({ code: 'NEXUS_ERR_QUEUE_PREFIX_TAKEN' });
    expect((refused as Error).message).toContain(`"${prefix}"`);
    expect((refused as Error).message).toContain('NEXUS_QUEUE_PREFIX');

    // A second process of the first deployment (same database) shares the prefix.
    await workersOf(first, idle);

    // Redis lost the stamp (a flush): the running workers write it again.
    const key = prefixStampKey(prefix);
    const stamp = await first.redis.get(key);
    expect(stamp).toMatch(/^[0-9a-f-]{36}$/);
    await first.redis.del(key);
    await eventually(async () => (await first.redis.get(key)) === stamp, 10_000, 'the stamp');
  });

  it("workers that could not stamp the prefix at start take no job until it is stamped; another deployment's stamp keeps them waiting", async () => {
    const h = await createHarness({ NEXUS_SWEEP_INTERVAL_MS: '60000', DB_LOCK_TIMEOUT_MS: '300' });
    harnesses.push(h);
    const key = prefixStampKey(h.config.queues.prefix);
    await h.redis.set(key, '00000000-0000-4000-8000-000000000000');
    // PostgreSQL cannot say which deployment this is yet: its table is locked by another session.
    const holder = await createDbPool(
      { ...h.config.db, lockTimeoutMs: 60_000, idleInTransactionTimeoutMs: 120_000 },
      h.log,
    );
    let release: () => void = () => undefined;
    const released = new Promise<void>(resolve => (release = resolve));
    let locked: () => void = () => undefined;
    const taken = new Promise<void>(resolve => (locked = resolve));
    const held = holder
      .transaction(async tx => {
        await tx.query(sql.unsafe`LOCK TABLE deployment IN ACCESS EXCLUSIVE MODE`);
        locked();
        await released;
      })
      .finally(() => holder.end());
    await taken;

    const sink = logSink();
    const ran: string[] = [];
    const payload: AiConnectorPayload = { tenantId: 't1', messageId: 'm-1', connector: 'bot' };
    let jobId = '';
    try {
      await workersOf(
        h,
        async p => {
          ran.push(p.messageId);
        },
        sink.log,
      );
      const record = await h.db.transaction(tx =>
        recordWork(tx, aiConnectorQueue, payload, { sweepAfterMs: 60_000 }),
      );
      jobId = record.jobId;
      await dispatchWork(h.enqueue, [record]);
      await new Promise(resolve => setTimeout(resolve, 1_500));
      expect(ran).toEqual([]);
      expect(await (await h.queues.get('ai-connector').getJob(jobId))?.getState()).toBe('waiting');
    } finally {
      release();
      await held;
    }

    // PostgreSQL answers: the stamp is another deployment's, so the workers keep waiting.
    const refused = await eventually(
      () =>
        sink.lines.find(
          line =>
            line.level === 'error' && String(line.msg).includes('NEXUS_ERR_QUEUE_PREFIX_TAKEN'),
        ),
      15_000,
      'the prefix error',
    );
    expect(refused).toMatchObject({ prefix: h.config.queues.prefix });
    await new Promise(resolve => setTimeout(resolve, 1_000));
    expect(ran).toEqual([]);
    expect(await (await h.queues.get('ai-connector').getJob(jobId))?.getState()).toBe('waiting');

    // The other deployment's stamp goes: the workers stamp the prefix and run the job.
    await h.redis.del(key);
    await eventually(
      async () =>
        (await h.db.oneFirst(
          sql.type(z.object({ state: z.string() }))`SELECT state FROM work WHERE job_id = ${jobId}`,
        )) === 'done',
      20_000,
      'the job run',
    );
    expect(ran).toEqual(['m-1']);
    expect(await h.redis.get(key)).toBe(await deploymentId(h.db));
  });

  it('a stamp at start given up on (Redis not answering) leaves no listener on the connection', async () => {
    const h = await createHarness();
    harnesses.push(h);
    // A port nothing listens on: the connection never gets ready.
    const closedPort = await new Promise<number>(resolve => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const config = testConfig({ REDIS_URL: `redis://127.0.0.1:${closedPort}` });
    const redis = createRedis(config.redis, 'producer', 'test-unreachable', h.log);
    try {
      const before = redis.listenerCount('ready');
      await expect(stampPrefixAtStart(h.db, redis, h.config.queues.prefix, 500)).rejects.toThrow(
        /did not answer/,
      );
      expect(redis.listenerCount('ready')).toBe(before);
    } finally {
      await closeRedis(redis);
    }
  });

  it('two processes starting together on a fresh database read one deployment id', async () => {
    const h = await createHarness();
    harnesses.push(h);
    // The first process's insert is not committed yet when the second asks: the second waits on
    // it, inserts nothing, and must still answer the first one's id (no error).
    let release: () => void = () => undefined;
    const held = new Promise<void>(resolve => (release = resolve));
    let inserted: (id: string) => void = () => undefined;
    const firstId = new Promise<string>(resolve => (inserted = resolve));
    const first = h.db.transaction(async tx => {
      inserted(await deploymentId(tx));
      await held;
    });
    const id = await firstId;
    const second = deploymentId(h.db);
    await new Promise(resolve => setTimeout(resolve, 300));
    release();
    await first;
    expect(await second).toBe(id);
  });

  it("a job without a work row is left for its owner, loudly, and its owner's workers run it", async () => {
    // The owner deployment recorded the work; an intruder's workers (another database) share
    // the prefix: they stamped it first, as a deployment started before the stamp existed would.
    const intruder = await createHarness();
    harnesses.push(intruder);
    const prefix = intruder.config.queues.prefix;
    const owner = await createHarness({ NEXUS_QUEUE_PREFIX: prefix });
    harnesses.push(owner);

    const sink = logSink();
    const intruderRan: string[] = [];
    await workersOf(
      intruder,
      async payload => {
        intruderRan.push(payload.messageId);
      },
      sink.log,
    );
    const before = await foreignCount('ai-connector');

    const payload: AiConnectorPayload = { tenantId: 't1', messageId: 'm-1', connector: 'bot' };
    const record = await owner.db.transaction(tx =>
      recordWork(tx, aiConnectorQueue, payload, { sweepAfterMs: 60_000 }),
    );
    await dispatchWork(owner.enqueue, [record]);

    const warning = await eventually(
      () => sink.lines.find(line => String(line.msg).includes('without a work row')),
      15_000,
      'the warning',
    );
    expect(warning).toMatchObject({
      level: 'warn',
      queue: 'ai-connector',
      jobId: record.jobId,
      prefix,
    });
    expect(await foreignCount('ai-connector')).toBeGreaterThan(before);
    // Left for its owner: not completed, no attempt used, nothing written on either side.
    const job = await owner.queues.get('ai-connector').getJob(record.jobId);
    expect(['delayed', 'waiting', 'active']).toContain(await job?.getState());
    expect(job?.attemptsMade).toBe(0);
    expect(intruderRan).toEqual([]);
    const count = z.object({ n: z.number() });
    expect(await intruder.db.oneFirst(sql.type(count)`SELECT count(*)::int AS n FROM work`)).toBe(
      0,
    );

    // The intruder goes away (and its stamp with it); the owner's workers run the job.
    await Promise.all(runtimes.splice(0).map(runtime => runtime.close(2_000)));
    await owner.redis.del(prefixStampKey(prefix));
    const ownerRan: string[] = [];
    await workersOf(owner, async p => {
      ownerRan.push(p.messageId);
    });
    await eventually(
      async () =>
        (await owner.db.oneFirst(
          sql.type(z.object({ state: z.string() }))`
            SELECT state FROM work WHERE job_id = ${record.jobId}`,
        )) === 'done',
      20_000,
      "the owner's run",
    );
    expect(ownerRan).toEqual(['m-1']);
  });
});
