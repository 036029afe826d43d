/**
 * What the database did between two points, from Postgres' cumulative statistics of
 * the bench database: commits, rollbacks, rows written, and per table the sequential
 * scans and rows they read. Backends flush their statistics about once a second, so a
 * reading waits for that first.
 */
import type { Knex } from "knex";

export interface DbActivity {
  commits: number;
  rollbacks: number;
  rowsInserted: number;
  rowsUpdated: number;
  rowsDeleted: number;
  /** Per table: sequential scans, rows they read, index scans. */
  tables: Record<string, { seqScans: number; seqRowsRead: number; indexScans: number }>;
}

async function read(db: Knex): Promise<DbActivity> {
  await new Promise((r) => setTimeout(r, 1_100));
  await db.raw("SELECT pg_stat_clear_snapshot()");
  const { rows: [d] } = await db.raw(
    "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database WHERE datname = current_database()",
  );
  const { rows: tables } = await db.raw("SELECT relname, seq_scan, seq_tup_read, idx_scan FROM pg_stat_user_tables");
  return {
    commits: Number(d.xact_commit),
    rollbacks: Number(d.xact_rollback),
    rowsInserted: Number(d.tup_inserted),
    rowsUpdated: Number(d.tup_updated),
    rowsDeleted: Number(d.tup_deleted),
    tables: Object.fromEntries(
      (tables as { relname: string; seq_scan: string; seq_tup_read: string; idx_scan: string | null }[]).map((t) => [
        t.relname,
        { seqScans: Number(t.seq_scan), seqRowsRead: Number(t.seq_tup_read), indexScans: Number(t.idx_scan ?? 0) },
      ]),
    ),
  };
}

/** Starts a measurement; the returned function gives the activity per unit of work (e.g. per server). */
export async function dbActivity(db: Knex): Promise<(per: number) => Promise<Record<string, unknown>>> {
  const before = await read(db);
  return async (per: number) => {
    const after = await read(db);
    const r = (x: number) => Math.round((x / per) * 100) / 100;
    const tables: Record<string, { seqScans: number; seqRowsRead: number; indexScans: number }> = {};
    for (const [name, t] of Object.entries(after.tables)) {
      const b = before.tables[name] ?? { seqScans: 0, seqRowsRead: 0, indexScans: 0 };
      const d = { seqScans: r(t.seqScans - b.seqScans), seqRowsRead: r(t.seqRowsRead - b.seqRowsRead), indexScans: r(t.indexScans - b.indexScans) };
      if (d.seqScans || d.indexScans) tables[name] = d;
    }
    return {
      commits: r(after.commits - before.commits),
      rollbacks: r(after.rollbacks - before.rollbacks),
      rowsInserted: r(after.rowsInserted - before.rowsInserted),
      rowsUpdated: r(after.rowsUpdated - before.rowsUpdated),
      rowsDeleted: r(after.rowsDeleted - before.rowsDeleted),
      tables,
    };
  };
}
