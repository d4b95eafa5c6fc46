import { RealtimePublisher } from '../lib/realtime-publisher.js';
import { createProcessors, type ProcessorMap } from '../workers/processors/index.js';
import { startWorkers, type WorkerRuntime } from '../workers/runtime.js';
import { flagCustomerUndelivered } from '../workers/undelivered.js';
import type { Core } from './bootstrap.js';

/**
 * Starts the workers for `select` (all queues when undefined) and adds their shutdown step.
 * `overrides` replaces processors (test fixtures use it to run slow or failing jobs).
 */
export async function runWorkers(
  core: Core,
  select: readonly string[] | undefined,
  overrides: Partial<ProcessorMap> = {},
): Promise<WorkerRuntime> {
  const { config } = core;
  const publisher = new RealtimePublisher(core.redis, config, core.log);
  const processors = {
    ...createProcessors(
      {
        db: core.db,
        queues: core.queues,
        log: core.log,
        publisher,
        bus: core.bus,
        config,
        redis: core.redis,
      },
      { afterMs: config.workers.sweepAfterMs, batch: config.workers.sweepBatch },
    ),
    ...overrides,
  };
  const runtime = await startWorkers({
    config,
    log: core.log,
    db: core.db,
    queues: core.queues,
    processors,
    select,
    onFinalFailure: flagCustomerUndelivered(core.db, events => publisher.events(events), core.log),
  });
  core.shutdown.add('workers', () => runtime.close(config.workers.shutdownGraceMs));
  return runtime;
}
