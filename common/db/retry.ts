/**
 * Runs a transaction again when Postgres aborted it for a deadlock or a
 * serialization failure: the work is still valid, only the interleaving was not.
 */
import type { Knex } from "knex";

const RETRYABLE = new Set(["40P01", "40001"]);

export async function transactionWithRetry<T>(db: Knex, work: (trx: Knex.Transaction) => Promise<T>, attempts = 5): Promise<T> {
  return withRetry(() => db.transaction(work), attempts);
}

/** `run` (one whole transaction) again, up to `attempts` times in all, while it fails with a retryable error. */
export async function withRetry<T>(run: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await run();
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (i >= attempts || !code || !RETRYABLE.has(code)) throw err;
      await new Promise((r) => setTimeout(r, 10 * i + Math.random() * 20));
    }
  }
}
