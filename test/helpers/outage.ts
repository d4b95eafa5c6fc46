import type { DatabasePool } from 'slonik';
import { createDbPool } from '../../db/pool.js';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { createMaintenanceProcessor } from '../../workers/processors/maintenance.js';
import { startWorkers, type WorkerRuntime } from '../../workers/runtime.js';
import type { Harness } from './harness.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

/** Inbound workers whose PostgreSQL connections go through a proxy the test can cut. */
export interface WorkersBehindProxy {
  readonly proxy: TcpProxy;
  readonly db: DatabasePool;
  readonly runtime: WorkerRuntime;
  close(): Promise<void>;
}

/**
 * Starts the inbound and maintenance workers on the harness's queues, reaching PostgreSQL through
 * a TCP proxy (`proxy.cut()` / `proxy.restore()`), while the harness's API keeps its own direct
 * connection: an outage of PostgreSQL for the workers only.
 */
export async function startWorkersBehindProxy(
  h: Harness,
  options: {
    sweep: { afterMs: number; batch: number };
    lock?: { lockDuration: number; stalledInterval: number };
  },
): Promise<WorkersBehindProxy> {
  const url = new URL(h.dbUrl);
  const proxy = await startTcpProxy(Number(url.port || 5432));
  url.port = String(proxy.port);
  const db = await createDbPool({ ...h.config.db, url: url.toString() }, h.log);
  const deps = { db, queues: h.queues, log: h.log, publisher: h.publisher };
  const runtime = await startWorkers({
    config: h.config,
    log: h.log,
    db,
    queues: h.queues,
    processors: {
      inbound: createInboundProcessor(deps),
      maintenance: createMaintenanceProcessor(deps, options.sweep),
    },
    select: ['inbound'],
    ...(options.lock ? { lock: options.lock } : {}),
  });
  return {
    proxy,
    db,
    runtime,
    async close() {
      await runtime.close(5_000);
      // A pool that lived through an outage may answer its end with a connection's old error.
      await db.end().catch(() => undefined);
      await proxy.close();
    },
  };
}
