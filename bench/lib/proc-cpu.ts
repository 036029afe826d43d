/**
 * CPU time of processes from /proc (user + system), and of the Postgres backends that
 * serve one database, so a bench can say where its CPU went per request.
 */
import { readFileSync } from "node:fs";
import type { Knex } from "knex";

const TICKS_PER_SECOND = 100; // Linux USER_HZ

/** User + system CPU milliseconds of a live process; 0 when it is gone. */
export function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** Process ids of the backends connected to this database (the caller's own included). */
export async function backendPids(db: Knex, database: string): Promise<number[]> {
  const { rows } = await db.raw("SELECT pid FROM pg_stat_activity WHERE datname = ?", [database]);
  return (rows as { pid: number }[]).map((r) => r.pid);
}

/** CPU milliseconds per role, measured between start() and stop(). */
export class CpuMeter {
  private before = new Map<number, number>();
  private selfBefore = process.cpuUsage();

  constructor(
    private readonly db: Knex,
    private readonly database: string,
    private readonly pids: Record<string, number>,
  ) {}

  async start(): Promise<void> {
    this.before.clear();
    for (const pid of [...Object.values(this.pids), ...(await backendPids(this.db, this.database))]) this.before.set(pid, cpuMsOf(pid));
    this.selfBefore = process.cpuUsage();
  }

  /** Backends that connected meanwhile count from zero; ones that left meanwhile are lost (the API's pool keeps its connections). */
  async stop(): Promise<Record<string, number>> {
    const self = process.cpuUsage(this.selfBefore);
    const out: Record<string, number> = {};
    for (const [role, pid] of Object.entries(this.pids)) out[role] = cpuMsOf(pid) - (this.before.get(pid) ?? 0);
    let postgres = 0;
    for (const pid of await backendPids(this.db, this.database)) postgres += cpuMsOf(pid) - (this.before.get(pid) ?? 0);
    out.postgres = postgres;
    out.loadClient = (self.user + self.system) / 1000;
    return out;
  }
}
