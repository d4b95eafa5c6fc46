import { claimUndispatched, lockDispatch, type DispatchedDelivery } from '../db/webhooks.js';
import type { Logger } from '../lib/logger.js';
import { webhooksQueue, type WebhookPayload } from '../queues/webhooks.js';
import { dispatchWork, recordWorkBatch, type EnqueueContext } from '../queues/work.js';

const BATCH = 1_000;

/**
 * Turns new deliveries (rows the `events` fan-out trigger wrote) into durable work: in one
 * transaction it takes up to 1,000 off the dispatch queue and records one work row per group of
 * `batchSize` deliveries to the same target, then adds one job per group. A target gets at most
 * `targetBatches` groups pending at once; the rest of its deliveries wait for a later pass, so one
 * target's backlog never fills the queue ahead of the others. The dispatchers (one per webhooks
 * worker process) take turns (an advisory lock; one that finds it taken skips the pass), so a
 * pass never waits on another's rows and reads current counts. A crash between commit and
 * `addBulk` leaves pending work rows, which the sweeper enqueues; a crash before the commit leaves
 * the deliveries undispatched, for the next pass. Either way no delivery is lost and none is in two
 * groups.
 */
export class WebhookDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(
    private readonly ctx: EnqueueContext,
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly fairness: { batchSize: number; targetBatches: number },
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

  /**
   * Dispatches until a pass takes fewer than 1,000 (what is left is newer, or held back by its
   * target's allowance, or another dispatcher's turn); answers how many it dispatched.
   */
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
      if (!(await lockDispatch(tx))) return { records: [], count: 0 };
      const deliveries = await claimUndispatched(tx, BATCH, this.fairness);
      const records = await recordWorkBatch(
        tx,
        webhooksQueue,
        groupByTarget(deliveries, this.fairness.batchSize),
        this.ctx.sweepAfterMs,
      );
      return { records, count: deliveries.length };
    });
    if (records.records.length > 0) await dispatchWork(this.ctx, records.records);
    return records.count;
  }
}

/** Deliveries in id order, grouped by target, in groups of at most `size`. */
export function groupByTarget(
  deliveries: readonly DispatchedDelivery[],
  size: number,
): WebhookPayload[] {
  const open = new Map<string, { tenantId: string; targetId: string; deliveryIds: number[] }>();
  const groups: WebhookPayload[] = [];
  for (const delivery of deliveries) {
    const key = `${delivery.tenant_id}\u0000${delivery.target}`;
    let group = open.get(key);
    if (!group) {
      group = { tenantId: delivery.tenant_id, targetId: delivery.target, deliveryIds: [] };
      open.set(key, group);
      groups.push(group);
    }
    group.deliveryIds.push(delivery.id);
    if (group.deliveryIds.length >= size) open.delete(key);
  }
  return groups;
}
