/**
 * Group commit: calls made while flushes are in flight are gathered and flushed together, so N
 * concurrent requests cost one database round trip instead of N. Up to `maxInFlight` flushes run
 * at once (commits overlap their fsync waits); a call flushes at once when a slot is free, so
 * batching adds no delay when there is no concurrency. Calls in different flushes have no order
 * between them.
 */
export class GroupCommit<I, O> {
  private pending: { item: I; resolve: (out: O) => void; reject: (error: unknown) => void }[] = [];
  private inFlight = 0;

  constructor(
    /** Handles a batch; answers one result per item, in order. */
    private readonly flush: (items: readonly I[]) => Promise<readonly O[]>,
    private readonly maxBatch = 256,
    private readonly maxInFlight = 1,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (this.inFlight < this.maxInFlight) void this.drain();
    });
  }

  /** Several items that should share a flush (they do when they fit in one batch). */
  submitAll(items: readonly I[]): Promise<O[]> {
    const results = items.map(
      item => new Promise<O>((resolve, reject) => this.pending.push({ item, resolve, reject })),
    );
    if (items.length > 0 && this.inFlight < this.maxInFlight) void this.drain();
    return Promise.all(results);
  }

  private async drain(): Promise<void> {
    this.inFlight++;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, this.maxBatch);
        try {
          const results = await this.flush(batch.map(entry => entry.item));
          batch.forEach((entry, index) => entry.resolve(results[index] as O));
        } catch (error) {
          for (const entry of batch) entry.reject(error);
        }
      }
    } finally {
      this.inFlight--;
    }
  }
}
