/**
 * Reads batched like group commit batches writes: a key asked for while no read runs is
 * read at once (alone); keys asked for while a read runs wait for it to end and are then
 * read together, in one statement. Under no load nothing waits; under load one statement
 * answers many callers. Every key is read by a statement that started after it was asked
 * for, so no answer is older than its question (unlike sharing a read already in flight).
 */
export class ReadBatcher<K, R> {
  private waiting: { key: K; resolve: (r: R) => void; reject: (err: unknown) => void }[] = [];
  private running = false;

  constructor(
    /** Reads every key, answering in the order asked. */
    private readonly readMany: (keys: K[]) => Promise<R[]>,
    private readonly maxBatch = 64,
  ) {}

  load(key: K): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ key, resolve, reject });
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.maxBatch);
      try {
        const results = await this.readMany(batch.map((w) => w.key));
        if (results.length !== batch.length) throw new Error(`read ${results.length} answers for ${batch.length} keys`);
        batch.forEach((w, i) => w.resolve(results[i]!));
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.running = false;
  }
}
