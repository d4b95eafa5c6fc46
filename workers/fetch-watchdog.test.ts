import { describe, expect, it } from 'vitest';
import { tracked } from './fetch-watchdog.js';

describe('tracked', () => {
  it('counts every job run and running, whether it resolves or throws', async () => {
    let release: () => void = () => undefined;
    const { processor, usage } = tracked(async (fail: boolean) => {
      await new Promise<void>(resolve => (release = resolve));
      if (fail) throw new Error('delayed, stale or failed');
      return 'done';
    });
    const first = processor(false);
    expect(usage).toEqual({ taken: 1, running: 1 });
    release();
    await expect(first).resolves.toBe('done');
    const second = processor(true);
    expect(usage).toEqual({ taken: 2, running: 1 });
    release();
    await expect(second).rejects.toThrow('delayed, stale or failed');
    expect(usage).toEqual({ taken: 2, running: 0 });
  });

  it('keeps the processor’s arity (BullMQ passes the abort signal only to three parameters)', () => {
    const three = async (_job: unknown, _token?: string, _signal?: AbortSignal) => undefined;
    expect(tracked(three).processor.length).toBe(3);
  });
});
