import { describe, expect, it } from 'vitest';
import { GroupCommit } from './group-commit.js';

describe('GroupCommit', () => {
  it('flushes the first call alone and gathers the calls made meanwhile', async () => {
    const batches: number[][] = [];
    const group = new GroupCommit<number, number>(async items => {
      batches.push([...items]);
      await new Promise(resolve => setTimeout(resolve, 10));
      return items.map(item => item * 2);
    });
    const results = await Promise.all([1, 2, 3, 4].map(item => group.submit(item)));
    expect(results).toEqual([2, 4, 6, 8]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
  });

  it('fails every call of a failed batch, and keeps serving later ones', async () => {
    let fail = true;
    const group = new GroupCommit<number, number>(async items => {
      if (fail) throw new Error('down');
      return items;
    });
    await expect(group.submit(1)).rejects.toThrow('down');
    fail = false;
    await expect(group.submit(2)).resolves.toBe(2);
  });

  it('flushes the items of one submitAll together', async () => {
    const batches: number[][] = [];
    const group = new GroupCommit<number, number>(
      async items => {
        batches.push([...items]);
        await new Promise(resolve => setTimeout(resolve, 5));
        return items.map(item => item + 1);
      },
      256,
      2,
    );
    const [one, all] = await Promise.all([group.submit(0), group.submitAll([1, 2, 3])]);
    expect(one).toBe(1);
    expect(all).toEqual([2, 3, 4]);
    expect(batches).toEqual([[0], [1, 2, 3]]);
    expect(await group.submitAll([])).toEqual([]);
  });

  it('caps the batch size', async () => {
    const sizes: number[] = [];
    const group = new GroupCommit<number, number>(async items => {
      sizes.push(items.length);
      await new Promise(resolve => setTimeout(resolve, 5));
      return items;
    }, 3);
    await Promise.all(Array.from({ length: 8 }, (_, i) => group.submit(i)));
    expect(sizes).toEqual([1, 3, 3, 1]);
  });
});

describe('GroupCommit with several flushes in flight', () => {
  it('starts up to maxInFlight flushes and batches the rest', async () => {
    let running = 0;
    let most = 0;
    const sizes: number[] = [];
    const group = new GroupCommit<number, number>(
      async items => {
        running++;
        most = Math.max(most, running);
        sizes.push(items.length);
        await new Promise(resolve => setTimeout(resolve, 10));
        running--;
        return items;
      },
      100,
      2,
    );
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => group.submit(i)));
    expect(results).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(most).toBe(2);
    expect(sizes.slice(0, 2)).toEqual([1, 1]);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(10);
  });
});
