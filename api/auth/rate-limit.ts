import type { Response } from 'express';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { RedisConnection } from '../../lib/redis.js';

/**
 * Per-key rate limits (`capacity` requests per `frequency` seconds), counted in Redis so every
 * replica shares one budget per key (rate-limiter-flexible's fixed window). While Redis is away
 * each replica falls back to an in-memory limiter with the same budget, so the API keeps
 * answering and still limits.
 */
export class KeyRateLimiter {
  private readonly limiters = new Map<string, RateLimiterRedis>();

  constructor(
    private readonly redis: RedisConnection,
    private readonly prefix: string,
    private readonly log: Logger,
  ) {}

  /** Counts one request; sets the `RateLimit-*` headers; throws 429 over the limit. */
  async consume(
    key: { id: string; capacity: number; frequency: number },
    res: Response,
  ): Promise<void> {
    const limiter = this.limiter(key.capacity, key.frequency);
    let result: RateLimiterRes;
    let limited = false;
    try {
      result = await limiter.consume(key.id, 1);
    } catch (thrown) {
      if (!(thrown instanceof RateLimiterRes)) {
        // Neither Redis nor the insurance limiter answered: let the request through.
        this.log.warn({ err: thrown }, 'rate limiter unavailable');
        return;
      }
      result = thrown;
      limited = true;
    }
    const resetSeconds = Math.max(1, Math.ceil(result.msBeforeNext / 1000));
    res.setHeader('RateLimit-Policy', `${key.capacity};w=${key.frequency}`);
    res.setHeader('RateLimit-Limit', String(key.capacity));
    res.setHeader('RateLimit-Remaining', String(Math.max(0, result.remainingPoints)));
    res.setHeader('RateLimit-Reset', String(resetSeconds));
    if (limited) {
      res.setHeader('Retry-After', String(resetSeconds));
      throw new AppError(
        'NEXUS_ERR_RATE_LIMITED',
        `Rate limit of ${key.capacity} requests per ${key.frequency} s exceeded; retry in ${resetSeconds} s`,
      );
    }
  }

  private limiter(capacity: number, frequency: number): RateLimiterRedis {
    const id = `${capacity}/${frequency}`;
    let limiter = this.limiters.get(id);
    if (!limiter) {
      limiter = new RateLimiterRedis({
        storeClient: this.redis,
        keyPrefix: `${this.prefix}:ratelimit:${capacity}:${frequency}`,
        points: capacity,
        duration: frequency,
        insuranceLimiter: new RateLimiterMemory({ points: capacity, duration: frequency }),
      });
      this.limiters.set(id, limiter);
    }
    return limiter;
  }
}
