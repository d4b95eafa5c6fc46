import {
  claimUndispatched,
  lockDispatch,
  type DispatchedDelivery,
} from '../db/webhook-dispatch.js';
import type { Logger } from '../lib/logger.js';
import { webhooksQueue, type WebhookPayload } from '../queues/webhooks.js';
import { dispatchWork, recordWorkBatch, type EnqueueContext } from '../queues/work.js';

/**
 * The webhook dispatcher, the `webhooks` processor's companion: it runs in every webhooks worker
 * process and turns new deliveries into `webhooks` jobs, fairly across targets.
 */

const BATCH = 1_000;
/** How long a count of the webhooks workers is used before it is read again. */
const WORKERS_REFRESH_MS = 5_000;
/**
 * The shortest time between the starts of two passes when commits wake the dispatcher: under load
 * one pass takes what many commits wrote, instead of one pass per commit.
 */
const MIN_PASS_GAP_MS = 20;

export interface DispatchFairness {
  batchSize: number;
  /** First-attempt batches one target may have pending, per webhooks worker process. */
  targetBatches: number;
}

/**
 * Turns new deliveries (rows the `events` fan-out trigger wrote) into durable work: in one
 * transaction it takes up to 1,000 off the dispatch queue and records one work row per group of
 * `batchSize` deliveries to the same target, then adds one job per group. A target gets at most
 * `targetBatches` groups pending at once per webhooks worker connected to Redis (each has its own
 * places for the target); the rest of its deliveries wait for a later pass, so one target's backlog
 * never fills the queue ahead of the others. The dispatchers (one per webhooks
 * worker process) take turns (an advisory lock; one that finds it taken skips the pass), so a
 * pass never waits on another's rows and reads current counts. A crash between commit and
 * `addBulk` leaves pending work rows, which the sweeper enqueues; a crash before the commit leaves
 * the deliveries undispatched, for the next pass. Either way no delivery is lost and none is in two
 * groups.
 */
export class WebhookDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private passing = false;
  /** Woken during a pass: the next one goes as soon as it may. */
  private woken = false;
  private lastPassAt = -Infinity;
  private stopped = true;
  private workers = { count: 1, readAt: -Infinity, failing: false };

  constructor(
    private readonly ctx: EnqueueContext,
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly fairness: DispatchFairness,
    /** How many webhooks workers are connected (BullMQ's count); read every 5 s at most. */
    private readonly countWorkers: () => Promise<number> = () => Promise.resolve(1),
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

  /**
   * New deliveries were committed (the `nexus_webhook_dispatch` notification): a pass now, or
   * right after the one running.
   */
  wake(): void {
    if (this.stopped) return;
    if (this.passing) {
      this.woken = true;
      return;
    }
    clearTimeout(this.timer);
    this.schedule(this.soonest());
  }

  /** Passes start at least {@link MIN_PASS_GAP_MS} apart, however often deliveries commit. */
  private soonest(): number {
    return Math.max(0, this.lastPassAt + MIN_PASS_GAP_MS - performance.now());
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.passing = true;
      this.woken = false;
      this.lastPassAt = performance.now();
      this.running = this.drain()
        .then(() => undefined)
        .catch((error: unknown) => {
          this.log.warn({ err: error }, 'webhook dispatch failed; retrying');
        })
        .finally(() => {
          this.passing = false;
          this.schedule(this.woken ? this.soonest() : this.intervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }

  /**
   * The webhooks workers connected now (at least 1, this one): the last count read, read again
   * when it is 5 s old. A count that cannot be read (Redis refuses `CLIENT LIST`, say) keeps the
   * last one.
   */
  private async workerCount(): Promise<number> {
    const now = performance.now();
    if (now - this.workers.readAt < WORKERS_REFRESH_MS) return this.workers.count;
    this.workers.readAt = now;
    try {
      const count = Math.max(1, await this.countWorkers());
      if (count !== this.workers.count) {
        this.log.info(
          { workers: count, targetBatches: count * this.fairness.targetBatches },
          'webhooks workers counted; batch allowance per target updated',
        );
      }
      this.workers = { count, readAt: now, failing: false };
    } catch (error) {
      if (!this.workers.failing) {
        this.log.warn(
          { err: error, workers: this.workers.count },
          'cannot count the webhooks workers; keeping the last count',
        );
      }
      this.workers.failing = true;
    }
    return this.workers.count;
  }

  private async dispatchBatch(): Promise<number> {
    const workers = await this.workerCount();
    const records = await this.ctx.db.transaction(async tx => {
      if (!(await lockDispatch(tx))) return { records: [], count: 0 };
      const deliveries = await claimUndispatched(tx, BATCH, {
        batchSize: this.fairness.batchSize,
        targetBatches: workers * this.fairness.targetBatches,
      });
      const records = await recordWorkBatch(
        tx,
        webhooksQueue,
        groupByTarget(deliveries, this.fairness.batchSize),
        this.ctx,
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
