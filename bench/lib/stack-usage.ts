/**
 * CPU time and resident memory of every process of a running stack, read from /proc:
 * the stack's own processes with their children (tsx keeps an esbuild service), every
 * Postgres process of the cluster except backends of other databases, and redis-server.
 * The machine's total busy time is read too, so a figure can say how much CPU went to
 * processes outside the stack (other work on a shared machine) meanwhile.
 */
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100; // Linux USER_HZ (getconf CLK_TCK)

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  cpuSec: number;
}

function readProc(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    // Fields after the command name start at field 3 (state); utime and stime are fields 14 and 15.
    const f = stat.slice(close + 2).split(" ");
    return { pid, ppid: Number(f[1]), comm, cpuSec: (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND };
  } catch {
    return null;
  }
}

function allProcs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (p) out.push(p);
  }
  return out;
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
  } catch {
    return "";
  }
}

/** Busy CPU seconds of the whole machine (all cores, idle and iowait excluded). */
export function machineBusySec(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = line;
  return (user! + nice! + system! + irq! + softirq! + steal!) / TICKS_PER_SECOND;
}

/** Resident set size in MB, from VmRSS. */
export function rssMb(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb ? Math.round(Number(kb) / 102.4) / 10 : 0;
  } catch {
    return 0;
  }
}

/** Process ids by role: the stack's roles (with descendants), postgres and redis. */
export function stackProcessesByRole(stackPids: Record<string, number[]>, database: string): Record<string, number[]> {
  const procs = allProcs();
  const children = new Map<number, number[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const withDescendants = (pid: number): number[] => [pid, ...(children.get(pid) ?? []).flatMap(withDescendants)];
  const out: Record<string, number[]> = {};
  for (const [role, pids] of Object.entries(stackPids)) out[role] = pids.flatMap(withDescendants);
  out.postgres = procs
    .filter((p) => p.comm === "postgres")
    .filter((p) => {
      // A backend's title is "postgres: <cluster>: <user> <database> <client> <state>"; keep ours and the shared background processes.
      const title = cmdline(p.pid);
      const m = /^postgres: (?:[^:]+: )?(\S+) (\S+) \d+\.\d+\.\d+\.\d+\(\d+\)/.exec(title) ?? /^postgres: (?:[^:]+: )?(\S+) (\S+) \[local\]/.exec(title);
      if (m) return m[2] === database;
      const autovacuum = /autovacuum worker (\S+)/.exec(title);
      return autovacuum ? autovacuum[1] === database : true;
    })
    .map((p) => p.pid);
  out.redis = procs.filter((p) => p.comm === "redis-server").map((p) => p.pid);
  return out;
}

export interface CpuSample {
  at: number;
  byPid: Map<number, number>;
  machineBusySec: number;
}

export function sampleCpu(pids: number[]): CpuSample {
  const byPid = new Map<number, number>();
  for (const pid of pids) byPid.set(pid, readProc(pid)?.cpuSec ?? 0);
  return { at: Date.now(), byPid, machineBusySec: machineBusySec() };
}

/**
 * CPU seconds per role between two samples. A process that started in between counts
 * from zero; one that ended in between is lost (the stack's pools keep their connections).
 */
export function cpuByRole(before: CpuSample, after: CpuSample, roles: Record<string, number[]>): { byRole: Record<string, number>; stackSec: number; otherSec: number; wallSec: number } {
  const byRole: Record<string, number> = {};
  let stackSec = 0;
  for (const [role, pids] of Object.entries(roles)) {
    let sec = 0;
    for (const pid of pids) sec += Math.max(0, (after.byPid.get(pid) ?? 0) - (before.byPid.get(pid) ?? 0));
    byRole[role] = Math.round(sec * 100) / 100;
    stackSec += sec;
  }
  const machine = after.machineBusySec - before.machineBusySec;
  return {
    byRole,
    stackSec: Math.round(stackSec * 100) / 100,
    otherSec: Math.round(Math.max(0, machine - stackSec) * 100) / 100,
    wallSec: (after.at - before.at) / 1000,
  };
}
