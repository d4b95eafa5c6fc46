import { describe, expect, it } from 'vitest';
import { FairLimit } from './fair-limit.js';

/** A task that records its start and ends when released. */
function gate() {
  const started: string[] = [];
  const releases = new Map<string, () => void>();
  const task = (name: string) => () =>
    new Promise<string>(resolve => {
      started.push(name);
      releases.set(name, () => resolve(name));
    });
  const release = async (name: string) => {
    const done = releases.get(name);
    if (!done) throw new Error(`${name} has not started`);
    done();
    await new Promise(resolve => setImmediate(resolve));
  };
  return { started, task, release };
}

const settle = () => new Promise(resolve => setImmediate(resolve));

describe('FairLimit', () => {
  it('runs at most `limit` tasks, and a key at most `perKey`', async () => {
    const limit = new FairLimit(3, 2);
    const { started, task, release } = gate();
    const results = [
      limit.run('a', task('a1')),
      limit.run('a', task('a2')),
      limit.run('a', task('a3')),
      limit.run('b', task('b1')),
      limit.run('b', task('b2')),
    ];
    await settle();
    expect(started).toEqual(['a1', 'a2', 'b1']);
    expect([limit.activeCount, limit.pendingCount]).toEqual([3, 2]);
    expect([limit.waitingFor('a'), limit.waitingFor('b'), limit.waitingFor('c')]).toEqual([
      1, 1, 0,
    ]);
    await release('b1');
    // b's turn comes before a's: a was served last.
    expect(started).toEqual(['a1', 'a2', 'b1', 'b2']);
    await release('a1');
    expect(started).toEqual(['a1', 'a2', 'b1', 'b2', 'a3']);
    for (const name of ['a2', 'a3', 'b2']) await release(name);
    await expect(Promise.all(results)).resolves.toEqual(['a1', 'a2', 'a3', 'b1', 'b2']);
    expect([limit.activeCount, limit.pendingCount]).toEqual([0, 0]);
  });

  it('gives freed places to the keys in turn, not to the longest queue', async () => {
    const limit = new FairLimit(2, 2);
    const { started, task, release } = gate();
    for (let i = 1; i <= 6; i++) void limit.run('busy', task(`busy${i}`));
    await settle();
    void limit.run('quiet', task('quiet1'));
    void limit.run('quiet', task('quiet2'));
    await settle();
    expect(started).toEqual(['busy1', 'busy2']);
    await release('busy1');
    await release('busy2');
    // Without turns, quiet1 would wait for busy3..busy6.
    expect(started).toEqual(['busy1', 'busy2', 'quiet1', 'busy3']);
    await release('busy3');
    expect(started.at(-1)).toBe('quiet2');
  });

  it('frees the place of a task that fails', async () => {
    const limit = new FairLimit(1, 1);
    await expect(limit.run('a', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(limit.run('a', () => Promise.resolve(1))).resolves.toBe(1);
    expect(limit.activeCount).toBe(0);
  });

  it('refuses limits below 1', () => {
    expect(() => new FairLimit(0, 1)).toThrow(RangeError);
    expect(() => new FairLimit(1, 0)).toThrow(RangeError);
  });
});
