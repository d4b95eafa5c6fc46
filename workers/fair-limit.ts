/**
 * A concurrency limit shared fairly between keys: at most `limit` tasks run at once, and at most
 * `perKey` of them for one key. A freed place goes to the waiting key that was served least
 * recently (a key new to the limit first), skipping keys at their own limit, so a key with
 * thousands of tasks queued does not make the others wait behind all of them. Within a key, tasks
 * start in the order they came.
 */
export class FairLimit {
  private active = 0;
  private readonly running = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();
  /** When each key with tasks running or waiting last got a place (a counter of starts). */
  private readonly servedAt = new Map<string, number>();
  private starts = 0;

  constructor(
    readonly limit: number,
    readonly perKey: number,
  ) {
    if (!(limit >= 1 && perKey >= 1)) throw new RangeError('limits must be at least 1');
  }

  /** Tasks running now. */
  get activeCount(): number {
    return this.active;
  }

  /** Tasks waiting for a place. */
  get pendingCount(): number {
    let count = 0;
    for (const queue of this.waiting.values()) count += queue.length;
    return count;
  }

  /** Tasks of `key` waiting for a place. */
  waitingFor(key: string): number {
    return this.waiting.get(key)?.length ?? 0;
  }

  /** Runs `task` when `key` gets a place; the place is freed when the task settles. */
  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    await new Promise<void>(resolve => {
      const queue = this.waiting.get(key);
      if (queue) queue.push(resolve);
      else this.waiting.set(key, [resolve]);
      this.pump();
    });
    try {
      return await task();
    } finally {
      this.active--;
      const left = (this.running.get(key) ?? 1) - 1;
      if (left > 0) this.running.set(key, left);
      else {
        this.running.delete(key);
        if (!this.waiting.has(key)) this.servedAt.delete(key);
      }
      this.pump();
    }
  }

  private pump(): void {
    while (this.active < this.limit) {
      const key = this.nextKey();
      if (key === undefined) return;
      const queue = this.waiting.get(key) as (() => void)[];
      const start = queue.shift() as () => void;
      if (queue.length === 0) this.waiting.delete(key);
      this.servedAt.set(key, ++this.starts);
      this.active++;
      this.running.set(key, (this.running.get(key) ?? 0) + 1);
      start();
    }
  }

  /** The waiting key under its own limit that was served least recently. */
  private nextKey(): string | undefined {
    let next: string | undefined;
    let nextAt = Infinity;
    for (const key of this.waiting.keys()) {
      const at = this.servedAt.get(key) ?? 0;
      if (at < nextAt && (this.running.get(key) ?? 0) < this.perKey) {
        next = key;
        nextAt = at;
      }
    }
    return next;
  }
}
