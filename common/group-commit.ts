/**
 * Group commit: items submitted close together are applied in one batch (one database
 * transaction, one commit) instead of one each. A batch is run when it is full or
 * when the first item in it has waited `maxDelayMs`, and only while fewer than
 * `maxInFlight` batches run (batches that lock the same rows would only queue behind
 * each other). If the batch fails, each of its items is applied alone, so one bad item
 * fails only its own submitter.
 *
 * With `flushWhenIdle`, there is no timer: an item submitted while fewer than
 * `maxInFlight` batches run is written at once (a batch of what waits, usually itself),
 * and what arrives while batches run waits for the next one to end, then goes as one
 * batch. Under no load nothing waits; under load the batches grow by themselves.
 */
export interface GroupCommitOptions<T> {
  applyBatch: (items: T[]) => Promise<void>;
  applyOne: (item: T) => Promise<void>;
  maxBatch: number;
  maxDelayMs: number;
  /** Batches running at once (default: no limit). */
  maxInFlight?: number;
  /** No timer: run at once when fewer than maxInFlight batches run (maxDelayMs is then unused). */
  flushWhenIdle?: boolean;
  onBatchFailed?: (err: unknown, size: number) => void;
}

interface Waiter<T> {
  item: T;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class GroupCommit<T> {
  private waiting: Waiter<T>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private inFlight = 0;

  constructor(private readonly opts: GroupCommitOptions<T>) {}

  submit(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (this.waiting.length >= this.opts.maxBatch) this.flush();
      else if (this.opts.flushWhenIdle) {
        if (this.inFlight < (this.opts.maxInFlight ?? Infinity)) this.flush();
      } else this.timer ??= setTimeout(() => this.flush(), this.opts.maxDelayMs);
    });
  }

  /** Runs what is waiting now (or as soon as a running batch ends). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.inFlight >= (this.opts.maxInFlight ?? Infinity)) return;
    const batch = this.waiting.splice(0, this.opts.maxBatch);
    if (batch.length === 0) return;
    this.inFlight++;
    void this.run(batch).finally(() => {
      this.inFlight--;
      if (this.waiting.length > 0) this.flush();
    });
  }

  private async run(batch: Waiter<T>[]): Promise<void> {
    try {
      await this.opts.applyBatch(batch.map((w) => w.item));
      for (const w of batch) w.resolve();
      return;
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      this.opts.onBatchFailed?.(err, batch.length);
    }
    await Promise.all(
      batch.map(async (w) => {
        try {
          await this.opts.applyOne(w.item);
          w.resolve();
        } catch (err) {
          w.reject(err);
        }
      }),
    );
  }
}
