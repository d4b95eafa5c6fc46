import { claimUndispatched } from '../db/webhooks.js';
import type { Logger } from '../lib/logger.js';
import { webhooksQueue } from '../queues/webhooks.js';
import { dispatchWork, recordWorkBatch, type EnqueueContext } from '../queues/work.js';

const BATCH = 1_000;

/**
 * Turns new deliveries (rows the `events` fan-out trigger wrote) into durable work: in one
 * transaction it marks a batch dispatched and records their work rows, then adds the jobs.
 * Several dispatchers (one per webhooks worker process) skip each other's rows. A crash between
 * commit and `addBulk` leaves pending work rows, which the sweeper enqueues; a crash before the
 * commit leaves the deliveries undispatched, for the next pass. Either way no delivery is lost and
 * none gets a second work row (the job id is the delivery's key).
 */
export class WebhookDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(
    private readonly ctx: EnqueueContext,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Dispatches until no new delivery is left; answers how many it dispatched. */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const count = await this.dispatchBatch();
      total += count;
      if (count < BATCH) return total;
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.drain()
        .then(() => undefined)
        .catch((error: unknown) => {
          this.log.warn({ err: error }, 'webhook dispatch failed; retrying');
        })
        .finally(() => this.schedule(this.intervalMs));
    }, delayMs);
    this.timer.unref();
  }

  private async dispatchBatch(): Promise<number> {
    const records = await this.ctx.db.transaction(async tx => {
      const deliveries = await claimUndispatched(tx, BATCH);
      return recordWorkBatch(
        tx,
        webhooksQueue,
        deliveries.map(delivery => ({
          tenantId: delivery.tenant_id,
          eventId: delivery.event_id,
          targetId: delivery.target,
          deliveryId: delivery.id,
        })),
        this.ctx.sweepAfterMs,
      );
    });
    if (records.length > 0) await dispatchWork(this.ctx, records);
    return records.length;
  }
}
