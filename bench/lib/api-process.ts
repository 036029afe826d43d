/**
 * One real API process (api/server.ts, compiled as `npm start` runs it unless asked for
 * tsx) on a dedicated, freshly recreated database, for the benches that need only the
 * API and Postgres (B1, B3, bench/mem-api.ts). The API's own outbox relay
 * publishes to Redis under a fresh queue prefix; no scheduler consumes it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { createDb, dropDatabase, type Db } from "../../common/db/knex.js";
import { API_NODE_OPTIONS, buildCompiled, compiledPath } from "../../bin/compiled.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export const BENCH_DATABASE_ROOT = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const BENCH_REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";

export interface ApiProcess {
  apiUrl: string;
  headers: Record<string, string>;
  db: Db;
  databaseUrl: string;
  redisUrl: string;
  queuePrefix: string;
  pid: number;
  workDir: string;
  logFile: string;
  stop(opts?: { keepDatabase?: boolean }): Promise<void>;
}

export interface ApiProcessOptions {
  /** Database name; dropped and created afresh unless reuseDatabase. */
  database: string;
  reuseDatabase?: boolean;
  env?: Record<string, string>;
  /** Writes a V8 CPU profile of the API process into this folder when it stops. */
  cpuProfileDir?: string;
  /**
   * "compiled" (default): as `npm start` runs it, the transpiled api/server.js from
   * .cirrus/dist (bin/compiled.ts) with the API's node options; "tsx": api/server.ts
   * through tsx, with no extra node options.
   */
  runtime?: "compiled" | "tsx";
  /** Node options before the entry point; default: the API's (bin/compiled.ts) when compiled, none under tsx. */
  nodeArgs?: string[];
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

async function waitUntilAnswering(url: string, proc: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`the API process exited with ${proc.exitCode}; see ${logFile}`);
    try {
      if ((await fetch(`${url}/v2.1/`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the API did not answer within 60 s; see ${logFile}`);
}

export async function startApiProcess(opts: ApiProcessOptions): Promise<ApiProcess> {
  const dbUrl = new URL(BENCH_DATABASE_ROOT);
  dbUrl.pathname = `/${opts.database}`;
  const databaseUrl = dbUrl.toString();
  if (!opts.reuseDatabase) await dropDatabase(databaseUrl);
  const workDir = await mkdtemp(path.join(os.tmpdir(), "cirrus-bench-api-"));
  const port = await freePort();
  const apiUrl = `http://127.0.0.1:${port}`;
  const token = `bench-${process.pid}-${Date.now().toString(36)}`;
  const queuePrefix = `cirrus-bench-${Date.now().toString(36)}`;
  const logFile = path.join(workDir, "api.log");
  // The child writes its log straight to the file: no piping through this (measuring) process.
  const logFd = openSync(logFile, "a");
  const compiled = (opts.runtime ?? "compiled") === "compiled";
  const nodeArgs = [
    ...(opts.nodeArgs ?? (compiled ? API_NODE_OPTIONS : [])),
    ...(opts.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${opts.cpuProfileDir}`] : []),
    // As bench/stack.ts: /tmp/perf-<pid>.map for perf record -p <pid>.
    ...(process.env.BENCH_PERF_MAP ? ["--perf-basic-prof-only-functions"] : []),
  ];
  const entry = compiled ? [compiledPath(await buildCompiled(), "api/server.ts")] : ["--import", "tsx", path.join(repoRoot, "api/server.ts")];
  const proc = spawn(process.execPath, [...nodeArgs, ...entry], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      REDIS_URL: BENCH_REDIS_URL,
      CIRRUS_QUEUE_PREFIX: queuePrefix,
      CIRRUS_API_PORT: String(port),
      CIRRUS_AUTH_MODE: "dev",
      CIRRUS_DEV_TOKEN: token,
      CIRRUS_IMAGE_STORE: path.join(workDir, "images"),
      // Rate limiting stays on (its Redis round trip is part of every POST), above what a bench sends.
      CIRRUS_RATE_LIMIT: "1000000",
      LOG_LEVEL: "info",
      ...opts.env,
    },
    stdio: ["ignore", logFd, logFd],
  });
  closeSync(logFd);
  await waitUntilAnswering(apiUrl, proc, logFile);
  const headers = { "x-auth-token": token };
  // As the e2e stack does: quotas stay enforced, the admin project's are unlimited.
  const quota = await fetch(`${apiUrl}/v2.1/os-quota-sets/admin`, {
    method: "PUT",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify({ quota_set: { instances: -1, cores: -1, ram: -1 } }),
  });
  if (!quota.ok) throw new Error(`raising the admin project's quota: ${quota.status} ${await quota.text()}`);
  const db = createDb(databaseUrl, { min: 0, max: 4 });
  return {
    apiUrl,
    headers,
    db,
    databaseUrl,
    redisUrl: BENCH_REDIS_URL,
    queuePrefix,
    pid: proc.pid!,
    workDir,
    logFile,
    stop: async (stopOpts = {}) => {
      if (proc.exitCode === null && proc.signalCode === null) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
          proc.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
          proc.kill("SIGTERM");
        });
      }
      await db.destroy();
      const redis = new Redis(BENCH_REDIS_URL);
      const keys = await redis.keys(`${queuePrefix}:*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
      if (!stopOpts.keepDatabase) await dropDatabase(databaseUrl);
      await rm(workDir, { recursive: true, force: true });
    },
  };
}
