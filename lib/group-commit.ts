/**
 * Group commit: calls made while a flush is in flight are gathered and flushed together, so N
 * concurrent requests cost one database round trip instead of N. The first call flushes at once
 * (a batch of one): batching adds no delay when there is no concurrency.
 */
export class GroupCommit<I, O> {
  private pending: { item: I; resolve: (out: O) => void; reject: (error: unknown) => void }[] = [];
  private flushing = false;

  constructor(
    /** Handles a batch; answers one result per item, in order. */
    private readonly flush: (items: readonly I[]) => Promise<readonly O[]>,
    private readonly maxBatch = 256,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (!this.flushing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.flushing = true;
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
      this.flushing = false;
    }
  }
}
