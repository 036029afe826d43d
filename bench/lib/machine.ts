/** What a result was measured on: machine, versions, commit and date. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import { Redis } from "ioredis";
import pg from "pg";

export interface MachineInfo {
  date: string;
  commit: string;
  /** Files changed in the working tree against the commit (others' work in progress included). */
  uncommittedFiles: number;
  cpuModel: string;
  cores: number;
  ramGb: number;
  node: string;
  postgres: string;
  redis: string;
  loadAverage1m: number;
  /**
   * What one system call costs here now, in ns (syscallCostNs), at the start of the run and,
   * once it is over, at its end. These VMs' speed for kernel work moves by a factor of two
   * within an hour while their speed for plain computation moves much less; most of the
   * stack's time per boot is socket writes and wake-ups, so this says which phase a run
   * met. Absent in results written before 27 November.
   */
  syscallNs?: { start: number; end?: number };
}

/**
 * The median cost of one system call over three probes of 400,000 (dd copying 200,000 single
 * bytes from /dev/zero to /dev/null: a read and a write each), in ns; null without dd.
 */
export function syscallCostNs(): number | null {
  const probes: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = process.hrtime.bigint();
    try {
      execFileSync("dd", ["if=/dev/zero", "of=/dev/null", "bs=1", "count=200000"], { stdio: "ignore" });
    } catch {
      return null;
    }
    probes.push(Number(process.hrtime.bigint() - started) / 400_000);
  }
  return Math.round(probes.sort((a, b) => a - b)[1]!);
}

function git(args: string[], cwd: string): string {
  try {
    return execFileSync("git", args, { cwd, encoding: "utf8" }).trim();
  } catch {
    return "";
  }
}

export async function machineInfo(repoRoot: string, databaseRoot: string, redisUrl: string): Promise<MachineInfo> {
  const cpuModel = /model name\s*:\s*(.+)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown";
  const client = new pg.Client({ connectionString: databaseRoot });
  await client.connect();
  const postgres = (await client.query("SHOW server_version")).rows[0].server_version as string;
  await client.end();
  const redis = new Redis(redisUrl, { lazyConnect: true });
  await redis.connect();
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info("server"))?.[1] ?? "unknown";
  redis.disconnect();
  const syscallNs = syscallCostNs();
  return {
    date: new Date().toISOString(),
    commit: git(["rev-parse", "--short", "HEAD"], repoRoot) || "unknown",
    uncommittedFiles: git(["status", "--porcelain"], repoRoot).split("\n").filter(Boolean).length,
    cpuModel,
    cores: os.cpus().length,
    ramGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    postgres,
    redis: redisVersion,
    loadAverage1m: Math.round(os.loadavg()[0]! * 100) / 100,
    ...(syscallNs !== null ? { syscallNs: { start: syscallNs } } : {}),
  };
}
