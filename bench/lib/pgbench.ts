/** Runs pgbench with a custom script against one database of the bench server; transactions per second. */
import { execFile } from "node:child_process";
import { writeFile, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export async function pgbenchAvailable(): Promise<boolean> {
  try {
    await run("pgbench", ["--version"]);
    return true;
  } catch {
    return false;
  }
}

/** Transactions per second (without connection time) of `script` from `clients` clients over `seconds`. */
export async function pgbenchTps(databaseUrl: string, script: string, clients: number, seconds: number): Promise<number> {
  const url = new URL(databaseUrl);
  const dir = await mkdtemp(path.join(os.tmpdir(), "cirrus-pgbench-"));
  try {
    const file = path.join(dir, "script.sql");
    await writeFile(file, script);
    const args = [
      "-n", "-c", String(clients), "-j", String(Math.min(clients, 2)), "-T", String(seconds), "-f", file,
      "-h", url.hostname, "-p", url.port || "5432", "-U", decodeURIComponent(url.username || "postgres"),
      decodeURIComponent(url.pathname.slice(1)),
    ];
    const { stdout } = await run("pgbench", args, { env: { ...process.env, ...(url.password ? { PGPASSWORD: decodeURIComponent(url.password) } : {}) } });
    const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout)?.[1];
    const failed = /number of failed transactions: (\d+)/.exec(stdout)?.[1];
    if (!tps) throw new Error(`pgbench printed no tps:\n${stdout}`);
    if (failed && failed !== "0") throw new Error(`pgbench: ${failed} transactions failed:\n${stdout}`);
    return Number(tps);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
