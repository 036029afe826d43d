/**
 * Watches the database until a condition on the servers holds, recording when it first
 * did. One small aggregate query per poll (a sequential scan of the instances table of a
 * bench database, about a millisecond per thousand rows), charged to Postgres like
 * everything else the bench causes.
 */
import type { Knex } from "knex";

export interface ServerCounts {
  live: number;
  active: number;
  error: number;
  /** Instances holding an allocation (counted only when asked for). */
  allocations: number;
}

export async function serverCounts(db: Knex, withAllocations = false): Promise<ServerCounts> {
  const { rows } = await db.raw(`
    SELECT count(*) FILTER (WHERE vm_state <> 'deleted')::int AS live,
           count(*) FILTER (WHERE vm_state = 'active')::int AS active,
           count(*) FILTER (WHERE vm_state = 'error')::int AS error,
           ${withAllocations ? "(SELECT count(DISTINCT consumer_id) FROM allocations)::int" : "-1"} AS allocations
      FROM instances`);
  return rows[0] as ServerCounts;
}

/** Polls until done(counts) holds; resolves with the milliseconds since `since` and the last counts. */
export async function waitForCounts(
  db: Knex,
  since: number,
  done: (c: ServerCounts) => boolean,
  opts: { everyMs: number; timeoutMs: number; what: string; allocations?: boolean },
): Promise<{ ms: number; counts: ServerCounts; polls: number }> {
  const deadline = Date.now() + opts.timeoutMs;
  for (let polls = 1; ; polls++) {
    const counts = await serverCounts(db, opts.allocations);
    if (done(counts)) return { ms: Date.now() - since, counts, polls };
    if (Date.now() > deadline) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}: ${JSON.stringify(counts)}`);
    await new Promise((r) => setTimeout(r, opts.everyMs));
  }
}
