/**
 * The real stack for benchmarks, as separate processes: the API (dev auth, quotas and
 * rate limiting off), S scheduler processes and the simulated agents
 * (compute-agent/sim/main.ts) with H hosts, on a database of its own (created fresh,
 * dropped by stop()) and a queue prefix of its own. Processes log to files under
 * logsDir, at LOG_LEVEL=warn unless asked otherwise.
 */
import { API_NODE_OPTIONS, buildCompiled, compiledPath } from "../bin/compiled.js";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import type { Knex } from "knex";
import { createDb, dropDatabase, ensureDatabase } from "../common/db/knex.js";
import { migrateLatest } from "../common/db/migrations.js";
import { freePort } from "./lib/api-process.js";
import { apiCall } from "./lib/boot-fixtures.js";
import { logEveryStatement } from "./lib/pg-statements.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export interface Stack {
  apiUrl: string;
  headers: Record<string, string>;
  db: Knex;
  databaseUrl: string;
  redisUrl: string;
  queuePrefix: string;
  /** Live process ids by role: api, scheduler, sim (one entry per process). */
  pids(): Record<string, number[]>;
  stop(): Promise<void>;
  /** What a boot request needs, seeded through the API (absent with api: false). */
  fixtures: BenchFixtures | null;
  /** Where every process writes its log (and its .cpuprofile with cpuProf). */
  logsDir: string;
}

export interface BenchFixtures {
  flavorRef: string;
  imageRef: string;
  networkId: string;
}

export interface StackOptions {
  /** Simulated hosts, spread over simProcesses sim processes. */
  hosts: number;
  schedulers?: number;
  /** Start the API process (default true). */
  api?: boolean;
  simProcesses?: number;
  /** Hosts per sim process that keep a dedicated worker; the rest take jobs on demand (docs/benchmarks.md). */
  dedicatedWorkers?: number;
  hostVcpus?: number;
  hostRamMb?: number;
  hostDiskGb?: number;
  /** Roles to run under `node --cpu-prof` (profiles land in logsDir/<process>.cpuprofiles/ when it exits). */
  cpuProf?: ("api" | "scheduler" | "sim")[];
  logLevel?: string;
  /**
   * Run compiled JavaScript, as `npm start` does (bin/compiled.ts: transpiled into
   * .cirrus/dist, the API with npm start's Node options); the default. false: TypeScript
   * through tsx, as `npm run api` and the tests do.
   */
  compiled?: boolean;
  /** Log every statement of the bench database (bench/lib/pg-statements.ts); slows Postgres down. */
  logStatements?: boolean;
  /** Extra environment for every process. */
  env?: Record<string, string>;
  /** Postgres server root URL (default the local one). */
  databaseRoot?: string;
  redisUrl?: string;
}

interface Child {
  role: string;
  proc: ChildProcess;
}

export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, everyMs = 250): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ""}`);
}

/** Every child of every stack still running: stopped when this process exits, however it exits. */
const liveChildren = new Set<ChildProcess>();
let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once("exit", () => {
    for (const proc of liveChildren) proc.kill("SIGTERM");
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));
}

/** The host names of sim process i: <prefix>-<i>-<n>. */
export const simHostPrefix = (i: number) => `sim${i}`;

export async function startStack(opts: StackOptions): Promise<Stack> {
  const tag = `${Date.now().toString(36)}${randomBytes(2).toString("hex")}`;
  const root = new URL(opts.databaseRoot ?? process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres");
  root.pathname = `/cirrus_bench_${tag}`;
  const databaseUrl = root.toString();
  const redisUrl = opts.redisUrl ?? process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
  const queuePrefix = `bench-${tag}`;
  const token = `bench-${randomBytes(12).toString("hex")}`;
  const logsDir = await mkdtemp(path.join(os.tmpdir(), "cirrus-bench-"));
  const port = await freePort();
  const apiUrl = `http://127.0.0.1:${port}`;
  // Only the credential: a bodiless request with a JSON content type is a 400.
  const headers = { "x-auth-token": token };

  await dropDatabase(databaseUrl);
  await ensureDatabase(databaseUrl);
  if (opts.logStatements) {
    const admin = new URL(databaseUrl);
    admin.pathname = "/postgres";
    await logEveryStatement(admin.toString(), `cirrus_bench_${tag}`);
  }
  const db = createDb(databaseUrl, { min: 0, max: 4 });
  await migrateLatest(db);

  const env: Record<string, string | undefined> = {
    ...process.env,
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    CIRRUS_QUEUE_PREFIX: queuePrefix,
    CIRRUS_API_PORT: String(port),
    CIRRUS_AUTH_MODE: "dev",
    CIRRUS_DEV_TOKEN: token,
    CIRRUS_QUOTA_ENFORCE: "false",
    CIRRUS_RATE_LIMIT: "0",
    CIRRUS_STATE_DIR: logsDir,
    CIRRUS_IMAGE_STORE: path.join(logsDir, "images"),
    CIRRUS_AGENT_DRIVER: "fake",
    CIRRUS_HEARTBEAT_INTERVAL: "10",
    // Nova's sync_power_state_interval: a 60 s sync per host is 170 reports/s at 10,000 hosts.
    CIRRUS_POWER_SYNC_INTERVAL: "600",
    LOG_LEVEL: opts.logLevel ?? "warn",
    ...opts.env,
  };
  const children: Child[] = [];
  const compiledDir = opts.compiled === false ? null : await buildCompiled();
  const start = (role: string, name: string, script: string, args: string[] = []) => {
    const log = createWriteStream(path.join(logsDir, `${name}.log`), { flags: "a" });
    // A folder per process: tsx's loader thread writes a profile of its own next to the main thread's.
    const prof = opts.cpuProf?.includes(role as "api") ? ["--cpu-prof", `--cpu-prof-dir=${path.join(logsDir, `${name}.cpuprofiles`)}`] : [];
    const entry = compiledDir ? [compiledPath(compiledDir, script)] : ["--import", "tsx", path.join(repoRoot, script)];
    const nodeOptions = compiledDir && role === "api" ? API_NODE_OPTIONS : [];
    // BENCH_PERF_MAP=1: each process writes /tmp/perf-<pid>.map, so `perf record -p` names its JS functions.
    const perfMap = process.env.BENCH_PERF_MAP ? ["--perf-basic-prof-only-functions"] : [];
    const proc = spawn(process.execPath, [...nodeOptions, ...perfMap, ...prof, ...entry, ...args], {
      env: role === "sim" ? { ...env, UV_THREADPOOL_SIZE: "4" } : env,
      stdio: ["ignore", "pipe", "pipe"],
      cwd: repoRoot,
    });
    proc.stdout!.pipe(log);
    proc.stderr!.pipe(log);
    children.push({ role, proc });
    liveChildren.add(proc);
    proc.once("exit", () => liveChildren.delete(proc));
    hookExit();
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(
      children.map(
        ({ proc }) =>
          new Promise<void>((resolve) => {
            if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
            const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
            proc.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
            proc.kill("SIGTERM");
          }),
      ),
    );
    await db.destroy();
    await dropDatabase(databaseUrl).catch(() => {});
    await deleteKeys(redisUrl, queuePrefix);
    if (!process.env.BENCH_KEEP_LOGS && !opts.cpuProf?.length) await rm(logsDir, { recursive: true, force: true });
  };

  let fixtures: BenchFixtures | null = null;
  try {
    if (opts.api ?? true) {
      start("api", "api", "api/server.ts");
      await waitUntil("the API", async () => (await fetch(`${apiUrl}/v2.1/`)).ok, 60_000);
      fixtures = await seedFixtures(apiUrl, headers);
    }
    for (let i = 0; i < (opts.schedulers ?? 1); i++) start("scheduler", `scheduler-${i}`, "scheduler/main.ts");
    const processes = Math.max(1, Math.min(opts.simProcesses ?? 1, opts.hosts));
    for (let i = 0; i < processes; i++) {
      const hosts = Math.floor(opts.hosts / processes) + (i < opts.hosts % processes ? 1 : 0);
      if (hosts === 0) continue;
      const args = ["--hosts", String(hosts), "--prefix", simHostPrefix(i)];
      if (opts.hostVcpus) args.push("--vcpus", String(opts.hostVcpus));
      if (opts.hostRamMb) args.push("--ram-mb", String(opts.hostRamMb));
      if (opts.hostDiskGb) args.push("--disk-gb", String(opts.hostDiskGb));
      if (opts.dedicatedWorkers !== undefined) args.push("--dedicated-workers", String(opts.dedicatedWorkers));
      start("sim", `sim-${i}`, "compute-agent/sim/main.ts", args);
    }
    // Up: every host registered and its heartbeat copied into the database by a scheduler.
    await waitUntil(
      `${opts.hosts} simulated hosts to register and heartbeat`,
      async () => {
        for (const c of children) if (c.proc.exitCode !== null) throw new Error(`${c.role} (pid ${c.proc.pid}) exited with ${c.proc.exitCode}; logs in ${logsDir}`);
        const [row] = await db("compute_services").where("last_seen_at", ">", db.raw("now() - interval '60 seconds'")).count<{ n: number }[]>("* as n");
        return Number(row!.n) >= opts.hosts;
      },
      60_000 + opts.hosts * 50,
      500,
    );
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    apiUrl,
    headers,
    db,
    databaseUrl,
    redisUrl,
    queuePrefix,
    logsDir,
    fixtures,
    pids: () => {
      const out: Record<string, number[]> = {};
      for (const c of children) {
        if (c.proc.pid === undefined || c.proc.exitCode !== null) continue;
        (out[c.role] ??= []).push(c.proc.pid);
      }
      return out;
    },
    stop,
  };
}

async function deleteKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 5000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

/** A tiny flavor, a public image with a few bytes (the fake driver never reads them) and a /16 network. */
async function seedFixtures(apiUrl: string, headers: Record<string, string>): Promise<BenchFixtures> {
  await apiCall(apiUrl, headers, "POST", "/v2.1/flavors", { flavor: { id: "bench.tiny", name: "bench.tiny", ram: 512, vcpus: 1, disk: 1 } });
  const image = await apiCall(apiUrl, headers, "POST", "/v2/images", { name: "bench-image", disk_format: "qcow2", container_format: "bare", visibility: "public" });
  const bytes = Buffer.from("cirrus bench image\n");
  const res = await fetch(`${apiUrl}/v2/images/${image.id}/file`, {
    method: "PUT",
    headers: { ...headers, "content-type": "application/octet-stream", "content-length": String(bytes.length) },
    body: bytes,
  });
  if (!res.ok) throw new Error(`uploading the bench image → ${res.status} ${await res.text()}`);
  const { network } = await apiCall(apiUrl, headers, "POST", "/v2.0/networks", { network: { name: "bench-net", shared: true } });
  await apiCall(apiUrl, headers, "POST", "/v2.0/subnets", { subnet: { network_id: network.id, cidr: "10.0.0.0/14", ip_version: 4, name: "bench-subnet" } });
  return { flavorRef: "bench.tiny", imageRef: image.id, networkId: network.id };
}
