import { createHash } from 'node:crypto';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { RedisConnection } from '../../lib/redis.js';

/**
 * Failed agent sign-ins, counted per account (tenant and username) and per client address in
 * Redis, so every replica shares the budgets (rate-limiter-flexible's fixed windows, as the API
 * keys' limits). An attempt is counted before the password is checked, so parallel guesses
 * cannot overrun a budget, and given back when it succeeds: only failures count. While Redis is
 * away each replica counts in memory with the same budgets.
 */

export interface SignInLimits {
  /** Failures per account per window. @defaultValue 10 per 900 s */
  account: { points: number; seconds: number };
  /** Failures per client address per window. @defaultValue 50 per 900 s */
  address: { points: number; seconds: number };
}

export const SIGN_IN_LIMITS: SignInLimits = {
  account: { points: 10, seconds: 900 },
  address: { points: 50, seconds: 900 },
};

/** An attempt that was let through: {@link succeeded} gives its counts back. */
export interface SignInAttempt {
  succeeded(): Promise<void>;
}

export class SignInThrottle {
  private readonly account: RateLimiterRedis;
  private readonly address: RateLimiterRedis;

  constructor(
    redis: RedisConnection,
    prefix: string,
    private readonly log: Logger,
    limits: SignInLimits = SIGN_IN_LIMITS,
  ) {
    const limiter = (name: string, limit: { points: number; seconds: number }) =>
      new RateLimiterRedis({
        storeClient: redis,
        keyPrefix: `${prefix}:signin:${name}`,
        points: limit.points,
        duration: limit.seconds,
        insuranceLimiter: new RateLimiterMemory({ points: limit.points, duration: limit.seconds }),
      });
    this.account = limiter('account', limits.account);
    this.address = limiter('address', limits.address);
  }

  /**
   * Counts an attempt for the account and the address; throws 429 `NEXUS_ERR_SIGNIN_THROTTLED`
   * (with `retryAfter`) when either has no failures left, without counting it.
   */
  async begin(tenant: string, username: string, address: string): Promise<SignInAttempt> {
    const accountKey = createHash('sha256')
      .update(JSON.stringify([tenant, username]))
      .digest('hex');
    const counted: [RateLimiterRedis, string][] = [
      [this.account, accountKey],
      [this.address, address],
    ];
    const results = await Promise.allSettled(counted.map(([limiter, key]) => limiter.consume(key)));
    const refused = results.flatMap(result =>
      result.status === 'rejected' && result.reason instanceof RateLimiterRes
        ? [result.reason]
        : [],
    );
    for (const result of results) {
      if (result.status === 'rejected' && !(result.reason instanceof RateLimiterRes)) {
        // Neither Redis nor the in-memory limiter answered: let the attempt through.
        this.log.warn({ err: result.reason }, 'sign-in throttle unavailable');
      }
    }
    const giveBack = async () => {
      await Promise.all(
        counted
          .filter((_, i) => results[i]?.status === 'fulfilled')
          .map(([limiter, key]) => limiter.reward(key).catch(() => undefined)),
      );
    };
    if (refused.length > 0) {
      await giveBack();
      const retryAfter = Math.max(1, ...refused.map(res => Math.ceil(res.msBeforeNext / 1000)));
      throw Object.assign(
        new AppError(
          'NEXUS_ERR_SIGNIN_THROTTLED',
          `Too many failed sign-ins; retry in ${retryAfter} s`,
        ),
        { retryAfter },
      );
    }
    return { succeeded: giveBack };
  }
}
