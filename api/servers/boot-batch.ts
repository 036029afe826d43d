/**
 * Group commit for the common boot (boot-write.ts): requests accepted at the same time are
 * written in one statement, so one commit, instead of one each. There is no timer: a boot
 * submitted while the writer is idle is written at once (a batch of one, as without
 * grouping); the boots that arrive while a write is in flight wait for it and then go
 * together, up to MAX_BATCH. So nothing waits under no load, and under load the batches
 * grow with the arrival rate.
 *
 * A batch is all or nothing (writeBoots). When it fails (a subnet short of addresses for
 * the boots together, lost address races ten times in a row, anything else), each of its
 * boots is written alone, concurrently, exactly as an ungrouped boot is, so a boot gets
 * its own answer: its 202, or the error it would have had on its own (the 409 of its full
 * pool), and a boot that failed has written nothing. Nothing is answered before its
 * statement committed.
 *
 * Not grouped: a write inside a caller's transaction (Idempotency-Key: the key row commits
 * with the boot), a boot whose project has a quota limit to check, and the transactional
 * path (api/servers/create.ts).
 *
 * CIRRUS_BOOT_GROUP_COMMIT=0 writes every boot alone (for A/B measurements);
 * CIRRUS_BOOT_GROUP_COMMIT_IN_FLIGHT sets how many batch statements run at once
 * (default 1: measured with bench/ab-boot-group-commit.ts, 16 clients, medians of 3:
 * off 254 req/s p50 61 ms; 1 in flight 413 req/s p50 37 ms; 2 in flight 332 req/s
 * p50 46 ms, its batches are smaller and its two statements compete for the same CPU).
 */
import type { Knex } from "knex";
import { GroupCommit } from "../../common/group-commit.js";
import { writeBoot, writeBoots, type BootRows } from "./boot-write.js";

/** Boot requests per statement; a multi-create counts once. */
export const MAX_BATCH = 64;

const enabled = !/^(0|false|no|off)$/i.test(process.env.CIRRUS_BOOT_GROUP_COMMIT ?? "");
const inFlight = Math.max(1, Number(process.env.CIRRUS_BOOT_GROUP_COMMIT_IN_FLIGHT ?? "") || 1);

export interface BootBatchStats {
  batches: number;
  boots: number;
  failedBatches: number;
}

const committers = new WeakMap<Knex, { gc: GroupCommit<BootRows>; stats: BootBatchStats }>();

function committerFor(db: Knex) {
  let c = committers.get(db);
  if (!c) {
    const stats: BootBatchStats = { batches: 0, boots: 0, failedBatches: 0 };
    const gc = new GroupCommit<BootRows>({
      applyBatch: (boots) => {
        stats.batches++;
        stats.boots += boots.length;
        return writeBoots(db, boots);
      },
      applyOne: (rows) => writeBoot(db, rows),
      maxBatch: MAX_BATCH,
      maxDelayMs: 0,
      maxInFlight: inFlight,
      flushWhenIdle: true,
      onBatchFailed: () => {
        stats.failedBatches++;
      },
    });
    c = { gc, stats };
    committers.set(db, c);
  }
  return c;
}

/** Writes the common boot, grouped with concurrent ones when `db` is not a transaction. */
export function submitBoot(db: Knex | Knex.Transaction, rows: BootRows): Promise<void> {
  if (!enabled || (db as Knex.Transaction).isTransaction) return writeBoot(db, rows);
  return committerFor(db as Knex).gc.submit(rows);
}

/** Batches and boots written through `db`'s group commit so far (tests, diagnostics). */
export function bootBatchStats(db: Knex): BootBatchStats {
  return { ...(committers.get(db)?.stats ?? { batches: 0, boots: 0, failedBatches: 0 }) };
}
