import { DelayedError } from 'bullmq';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { GroupCommit } from '../lib/group-commit.js';
import type { RedisConnection } from '../lib/redis.js';
import type { JobContext } from './run-processor.js';

interface Take {
  readonly perSecond: number;
  readonly key: string;
}

/**
 * A provider's send rate, shared by every worker: rate-limiter-flexible's one-second windows in
 * Redis, one counter per key (provider, tenant, sender) and rate. The sends of concurrent jobs
 * take their points together, one Redis call per key and group instead of one per send (the
 * outbound-email worker at 600 mails/s made 600 calls a second before). A group that overflows
 * the window lets through the sends that fit, in order; the others wait for the next window, and
 * their points count as a single send's would (rate-limiter-flexible counts refused points too).
 */
export class SendRate {
  private readonly limiters = new Map<number, RateLimiterRedis>();
  private readonly takes = new GroupCommit<Take, number>(items => this.take(items), 1_000, 1);

  constructor(
    private readonly redis: RedisConnection,
    /** Keys are `<keyPrefix>:<perSecond>` then the key. */
    private readonly keyPrefix: string,
  ) {}

  /** 0 when the send may go now, else how many milliseconds until a window with room. */
  wait(perSecond: number, key: string): Promise<number> {
    return this.takes.submit({ perSecond, key });
  }

  private limiter(perSecond: number): RateLimiterRedis {
    let limiter = this.limiters.get(perSecond);
    if (!limiter) {
      limiter = new RateLimiterRedis({
        storeClient: this.redis,
        keyPrefix: `${this.keyPrefix}:${perSecond}`,
        points: perSecond,
        duration: 1,
      });
      this.limiters.set(perSecond, limiter);
    }
    return limiter;
  }

  private async take(items: readonly Take[]): Promise<number[]> {
    const groups = new Map<string, number[]>();
    items.forEach((item, index) => {
      const id = `${item.perSecond}\n${item.key}`;
      const group = groups.get(id);
      if (group) group.push(index);
      else groups.set(id, [index]);
    });
    const waits = new Array<number>(items.length).fill(0);
    await Promise.all(
      [...groups.values()].map(async indexes => {
        const { perSecond, key } = items[indexes[0] as number] as Take;
        try {
          await this.limiter(perSecond).consume(key, indexes.length);
        } catch (refused) {
          if (!(refused instanceof RateLimiterRes)) throw refused;
          // The window held `before` points before this group: the first sends that fit go.
          const before = refused.consumedPoints - indexes.length;
          const fit = Math.max(0, perSecond - before);
          const ms = Math.max(refused.msBeforeNext, 10);
          indexes.slice(fit).forEach(index => (waits[index] = ms));
        }
      }),
    );
    return waits;
  }
}

/** Runs the job again in `ms` without using an attempt (a send rate, a provider's 420 or 429). */
export async function later(ctx: JobContext, ms: number, why: string): Promise<never> {
  ctx.log.info({ delayMs: ms }, why);
  await ctx.job.moveToDelayed(Date.now() + ms, ctx.token);
  throw new DelayedError();
}
