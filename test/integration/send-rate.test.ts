import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/logger.js';
import { closeRedis, createRedis, type RedisConnection } from '../../lib/redis.js';
import { SendRate } from '../../workers/send-rate.js';
import { deleteKeys, testConfig, waitReady } from '../helpers/harness.js';

describe('SendRate (grouped points, real Redis)', () => {
  const prefix = `{send-rate-test-${randomUUID().slice(0, 8)}}`;
  let redis: RedisConnection;
  beforeAll(async () => {
    const config = testConfig();
    redis = createRedis(config.redis, 'producer', 'send-rate-test', createLogger('silent'));
    await waitReady(redis);
  });
  afterAll(async () => {
    await deleteKeys(redis, prefix);
    await closeRedis(redis);
  });

  it('lets through what fits the window, in order, and tells the rest how long to wait', async () => {
    const rate = new SendRate(redis, `${prefix}:a`);
    const waits = await Promise.all(Array.from({ length: 25 }, () => rate.wait(10, 'tenant:x')));
    expect(waits.slice(0, 10)).toEqual(Array(10).fill(0));
    for (const ms of waits.slice(10)) {
      expect(ms).toBeGreaterThanOrEqual(10);
      expect(ms).toBeLessThanOrEqual(1_000);
    }
    // The same window is full: one more waits too.
    expect(await rate.wait(10, 'tenant:x')).toBeGreaterThan(0);
  });

  it('counts each key and rate apart, and a window shared by two workers', async () => {
    const one = new SendRate(redis, `${prefix}:b`);
    const two = new SendRate(redis, `${prefix}:b`);
    const [a, b, c] = await Promise.all([
      Promise.all(Array.from({ length: 3 }, () => one.wait(4, 'k1'))),
      Promise.all(Array.from({ length: 3 }, () => two.wait(4, 'k1'))),
      Promise.all(Array.from({ length: 3 }, () => one.wait(4, 'k2'))),
    ]);
    // Two workers, one window of 4 on k1: four of the six go, whichever worker asked first.
    expect([...a, ...b].filter(ms => ms === 0)).toHaveLength(4);
    expect(c).toEqual([0, 0, 0]);
  });

  it('a group larger than the whole rate lets the rate through and holds the rest', async () => {
    const rate = new SendRate(redis, `${prefix}:c`);
    const waits = await Promise.all(Array.from({ length: 7 }, () => rate.wait(3, 'k')));
    expect(waits.filter(ms => ms === 0)).toHaveLength(3);
    expect(waits.slice(0, 3)).toEqual([0, 0, 0]);
  });
});
