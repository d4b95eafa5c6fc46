import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { GroupCommit } from './group-commit.js';

/** A flush that records its batches and takes `ms`. */
function recording(ms: number) {
  const batches: number[][] = [];
  let running = 0;
  let most = 0;
  const flush = async (items: readonly number[]) => {
    running++;
    most = Math.max(most, running);
    batches.push([...items]);
    await new Promise(resolve => setTimeout(resolve, ms));
    running--;
    return items.map(item => item * 2);
  };
  return { flush, batches, most: () => most };
}

describe('GroupCommit', () => {
  it('flushes the calls of one turn together, and gathers the calls made meanwhile', async () => {
    const { flush, batches } = recording(10);
    const group = new GroupCommit<number, number>(flush);
    const first = [1, 2].map(item => group.submit(item));
    await nextTurn();
    expect(batches).toEqual([[1, 2]]);
    const later = [3, 4, 5].map(item => group.submit(item));
    expect(await Promise.all([...first, ...later])).toEqual([2, 4, 6, 8, 10]);
    expect(batches).toEqual([
      [1, 2],
      [3, 4, 5],
    ]);
  });

  it('flushes a lone call in the next turn, without waiting for a timer', async () => {
    const { flush, batches } = recording(0);
    const group = new GroupCommit<number, number>(flush);
    const result = group.submit(7);
    await nextTurn();
    expect(batches).toEqual([[7]]);
    expect(await result).toBe(14);
  });

  it('fails every call of a failed batch, and keeps serving later ones', async () => {
    let fail = true;
    const group = new GroupCommit<number, number>(async items => {
      if (fail) throw new Error('down');
      return items;
    });
    await expect(Promise.all([group.submit(1), group.submit(2)])).rejects.toThrow('down');
    fail = false;
    await expect(group.submit(3)).resolves.toBe(3);
  });

  it('flushes the items of one submitAll together', async () => {
    const { flush, batches } = recording(5);
    const group = new GroupCommit<number, number>(flush, 3, 2);
    const all = group.submitAll([1, 2, 3]);
    const other = group.submit(4);
    expect(await all).toEqual([2, 4, 6]);
    expect(await other).toBe(8);
    expect(batches).toEqual([[1, 2, 3], [4]]);
    expect(await group.submitAll([])).toEqual([]);
  });

  it('caps the batch size', async () => {
    const { flush, batches } = recording(5);
    const group = new GroupCommit<number, number>(flush, 3);
    await Promise.all(Array.from({ length: 8 }, (_, i) => group.submit(i)));
    expect(batches.map(batch => batch.length)).toEqual([3, 3, 2]);
  });
});

describe('GroupCommit with several flushes in flight', () => {
  it('starts up to maxInFlight flushes and batches the rest', async () => {
    const recorder = recording(10);
    const group = new GroupCommit<number, number>(recorder.flush, 100, 2);
    const calls = [group.submit(0)];
    await nextTurn();
    // A slot is free: a call of the next turn starts the second flush at once.
    calls.push(group.submit(1), group.submit(2));
    await nextTurn();
    // Both slots are taken: these wait for one and share it.
    for (let i = 3; i < 10; i++) calls.push(group.submit(i));
    expect(await Promise.all(calls)).toEqual([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    expect(recorder.most()).toBe(2);
    expect(recorder.batches).toEqual([[0], [1, 2], [3, 4, 5, 6, 7, 8, 9]]);
  });

  it('gives a batch beyond the cap the other slot straight away', async () => {
    const recorder = recording(10);
    const group = new GroupCommit<number, number>(recorder.flush, 4, 2);
    await Promise.all(Array.from({ length: 10 }, (_, i) => group.submit(i)));
    expect(recorder.most()).toBe(2);
    expect(recorder.batches.map(batch => batch.length)).toEqual([4, 4, 2]);
  });
});
