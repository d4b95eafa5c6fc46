import { spawn, type ChildProcess } from 'node:child_process';
import { sql } from 'slonik';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { inboundQueue, type InboundPayload } from '../../queues/index.js';
import { enqueueDurably } from '../../queues/work.js';
import { eventually, useHarness } from '../helpers/harness.js';
import { TEST_REDIS_URL } from '../helpers/services.js';

const message = (externalId: string): InboundPayload => ({
  tenantId: 't1',
  channel: 'chat',
  externalId,
  from: 'session-1',
  receivedAt: new Date().toISOString(),
});

interface Running {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
}

describe('graceful shutdown of a worker process', () => {
  const h = useHarness();
  let running: Running | undefined;

  afterEach(() => {
    if (running?.child.exitCode === null) running.child.kill('SIGKILL');
    running = undefined;
  });

  /** Runs test/fixtures/slow-worker.ts (bin/worker.ts with a slow inbound processor). */
  function startWorkerProcess(env: Record<string, string>): Running {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/slow-worker.ts'], {
      env: {
        ...process.env,
        NODE_ENV: 'test',
        DATABASE_URL: h().dbUrl,
        REDIS_URL: TEST_REDIS_URL,
        NEXUS_QUEUE_PREFIX: h().config.queues.prefix,
        NEXUS_MIGRATE_ON_START: 'false',
        METRICS_PORT: '0',
        LOG_LEVEL: 'warn',
        NEXUS_WORKER_CONCURRENCY: '5',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let buffered = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      lines.push(...parts);
    });
    child.stderr?.on('data', (chunk: Buffer) => lines.push(chunk.toString()));
    const exited = new Promise<number | null>(resolve => child.once('exit', resolve));
    running = { child, lines, exited };
    return running;
  }

  const states = async () =>
    Object.fromEntries(
      (
        await h().db.any(
          sql.type(z.object({ job_id: z.string(), state: z.string() }))`
            SELECT job_id, state FROM work ORDER BY job_id`,
        )
      ).map(row => [row.job_id, row.state]),
    );

  it('finishes active jobs, takes no new ones and exits 0 on SIGTERM', async () => {
    const first = await Promise.all(
      ['a', 'b', 'c'].map(id => enqueueDurably(h().enqueue, inboundQueue, message(id))),
    );
    const worker = startWorkerProcess({ SLOW_WORKER_HOLD_MS: '1500' });
    await eventually(
      () => worker.lines.filter(line => line.startsWith('started ')).length === 3,
      20_000,
      'three jobs started',
    );

    worker.child.kill('SIGTERM');
    // Jobs added after the signal wait for the next worker.
    const late = await Promise.all(
      ['d', 'e'].map(id => enqueueDurably(h().enqueue, inboundQueue, message(id))),
    );

    expect(await worker.exited).toBe(0);
    expect(worker.lines.filter(line => line.startsWith('finished ')).sort()).toEqual([
      'finished a',
      'finished b',
      'finished c',
    ]);
    expect(worker.lines.some(line => /started [de]/.test(line))).toBe(false);
    const byJob = await states();
    for (const record of first) expect(byJob[record.jobId]).toBe('done');
    for (const record of late) {
      expect(byJob[record.jobId]).toBe('pending');
      expect(await h().queues.get('inbound').getJobState(record.jobId)).toBe('waiting');
    }
  });

  it('exits when the grace ends even if a job is still running, leaving its row pending', async () => {
    const record = await enqueueDurably(h().enqueue, inboundQueue, message('slow'));
    const worker = startWorkerProcess({
      SLOW_WORKER_HOLD_MS: '60000',
      NEXUS_SHUTDOWN_GRACE_MS: '500',
    });
    await eventually(() => worker.lines.includes('started slow'), 20_000, 'the job started');

    const signalled = Date.now();
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(10_000);
    expect(worker.lines).not.toContain('finished slow');
    // Its row stays pending: the stall check or the sweeper will hand it to another worker.
    expect((await states())[record.jobId]).toBe('pending');
  });
});
