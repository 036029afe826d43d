/**
 * Write transactions of one database between two WAL positions, counted from the WAL
 * itself with pg_waldump: the distinct transaction ids whose records touch a relation of
 * that database. Every such transaction is a commit that waits for a WAL flush; read-only
 * transactions (which pg_stat_database counts as commits too) write no WAL and are not
 * counted. Other databases on the same server do not disturb the count.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { access } from "node:fs/promises";
import readline from "node:readline";
import type { Knex } from "knex";
import pg from "pg";

const PG_WALDUMP = "/usr/lib/postgresql/15/bin/pg_waldump";

export interface WalMark {
  lsn: string;
  databaseOid: number;
  walDir: string;
  /**
   * Holds a temporary replication slot that keeps the WAL from the mark on: checkpoints
   * (every DROP DATABASE asks for one) would otherwise recycle it before it is read.
   * Postgres drops the slot when this session ends.
   */
  holder: pg.Client | null;
}

export async function walMark(db: Knex, databaseUrl: string): Promise<WalMark> {
  let holder: pg.Client | null = new pg.Client({ connectionString: databaseUrl });
  try {
    await holder.connect();
    await holder.query("SELECT pg_create_physical_replication_slot($1, true, true)", [`cirrus_bench_${randomBytes(4).toString("hex")}`]);
  } catch {
    await holder.end().catch(() => {});
    holder = null;
  }
  const { rows } = await db.raw(
    "SELECT pg_current_wal_insert_lsn()::text AS lsn, (SELECT oid FROM pg_database WHERE datname = current_database())::int AS oid, current_setting('data_directory') AS dir",
  );
  return { lsn: rows[0].lsn, databaseOid: rows[0].oid, walDir: `${rows[0].dir}/pg_wal`, holder };
}

/** Null when pg_waldump or the WAL cannot be read here. Ends the mark's slot. */
export async function writeTransactionsSince(db: Knex, from: WalMark): Promise<number | null> {
  try {
    return await countWriteTransactions(db, from);
  } finally {
    await from.holder?.end().catch(() => {});
  }
}

async function countWriteTransactions(db: Knex, from: WalMark): Promise<number | null> {
  try {
    await access(PG_WALDUMP);
    await access(from.walDir);
  } catch {
    return null;
  }
  // Up to what is flushed: pg_waldump reads the files.
  const { rows } = await db.raw("SELECT pg_current_wal_flush_lsn()::text AS lsn");
  const to = rows[0].lsn as string;
  const xids = new Set<string>();
  const proc = spawn(PG_WALDUMP, ["-p", from.walDir, "-s", from.lsn, "-e", to], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const ours = new RegExp(`rel \\d+/${from.databaseOid}/`);
  for await (const line of readline.createInterface({ input: proc.stdout })) {
    if (!ours.test(line)) continue;
    const tx = /\btx:\s+(\d+)/.exec(line)?.[1];
    if (tx && tx !== "0") xids.add(tx);
  }
  const code: number = await new Promise((resolve) => proc.on("close", resolve));
  // pg_waldump reports the end of the WAL it was given as an error; only a failure before it counts.
  if (code !== 0 && !/invalid record length|could not find a valid record|end of WAL/i.test(stderr)) {
    process.stderr.write(`pg_waldump failed (${code}): ${stderr.slice(0, 500)}\n`);
    return null;
  }
  return xids.size;
}
