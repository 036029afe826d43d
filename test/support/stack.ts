/**
 * Starts Cirrus as separate real processes (api, N schedulers, agents) on a fresh
 * database and a fresh queue prefix, for end-to-end tests. Logs go to files that a
 * failing test prints.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { createTestDatabase, TEST_REDIS_URL, uniqueName, type TestDatabase } from "./services.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface AgentSpec {
  host: string;
  uri: string;
  availabilityZone?: string;
  env?: Record<string, string>;
}

export interface Stack {
  url: string;
  token: string;
  database: TestDatabase;
  workDir: string;
  agents: (AgentSpec & { instancesPath: string })[];
  logs(): Promise<string>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ""}`);
}

export async function startStack(opts: { schedulers?: number; agents: AgentSpec[]; env?: Record<string, string> }): Promise<Stack> {
  const database = await createTestDatabase();
  const workDir = await mkdtemp(path.join(os.tmpdir(), "cirrus-e2e-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const token = `e2e-${uniqueName("token")}`;
  const prefix = uniqueName("cirrus-e2e");
  const children: { name: string; proc: ChildProcess; logFile: string }[] = [];
  const base = {
    ...process.env,
    DATABASE_URL: database.url,
    REDIS_URL: TEST_REDIS_URL,
    CIRRUS_QUEUE_PREFIX: prefix,
    CIRRUS_API_PORT: String(port),
    CIRRUS_DEV_TOKEN: token,
    CIRRUS_IMAGE_STORE: path.join(workDir, "images"),
    CIRRUS_HEARTBEAT_INTERVAL: "2",
    LOG_LEVEL: "info",
    ...opts.env,
  };
  const start = (name: string, script: string, env: Record<string, string | undefined>) => {
    const logFile = path.join(workDir, `${name}.log`);
    const log = createWriteStream(logFile);
    const proc = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, script)], { env, stdio: ["ignore", "pipe", "pipe"] });
    proc.stdout!.pipe(log);
    proc.stderr!.pipe(log);
    children.push({ name, proc, logFile });
  };

  start("api", "api/server.ts", base);
  await waitFor("the API", async () => (await fetch(`${url}/v2.1/`)).ok, 60_000);
  for (let i = 0; i < (opts.schedulers ?? 1); i++) start(`scheduler-${i}`, "scheduler/main.ts", base);
  const agents = opts.agents.map((a) => ({ ...a, instancesPath: path.join(workDir, `instances-${a.host}`) }));
  for (const a of agents) {
    start(`agent-${a.host}`, "compute-agent/main.ts", {
      ...base,
      CIRRUS_HOST: a.host,
      LIBVIRT_URI: a.uri,
      CIRRUS_INSTANCES_PATH: a.instancesPath,
      CIRRUS_IMAGE_CACHE: path.join(workDir, `image-cache-${a.host}`),
      UV_THREADPOOL_SIZE: "16",
      ...(a.availabilityZone ? { CIRRUS_AVAILABILITY_ZONE: a.availabilityZone } : {}),
      ...a.env,
    });
  }
  const stack: Stack = {
    url,
    token,
    database,
    workDir,
    agents,
    logs: async () => {
      const parts = await Promise.all(children.map(async (c) => `===== ${c.name}\n${(await readFile(c.logFile, "utf8").catch(() => "")).slice(-6000)}`));
      return parts.join("\n");
    },
    stop: async () => {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.proc.exitCode !== null || c.proc.signalCode !== null) return resolve();
              const timer = setTimeout(() => c.proc.kill("SIGKILL"), 15_000);
              c.proc.once("exit", () => {
                clearTimeout(timer);
                resolve();
              });
              c.proc.kill("SIGTERM");
            }),
        ),
      );
      const redis = new Redis(TEST_REDIS_URL);
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
      await database.drop();
      await rm(workDir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(
      "every agent to register",
      async () => {
        const n = await database.db("compute_services").whereIn("host", agents.map((a) => a.host)).count<{ count: number }[]>("* as count");
        return Number(n[0]!.count) === agents.length;
      },
      60_000,
    );
  } catch (err) {
    console.error(await stack.logs());
    await stack.stop();
    throw err;
  }
  return stack;
}

/** A small client for the running API. */
export function client(stack: Pick<Stack, "url" | "token">) {
  return async (method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: any; headers: Record<string, string> }> => {
    const res = await fetch(stack.url + urlPath, {
      method,
      headers: { "x-auth-token": stack.token, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, headers: Object.fromEntries(res.headers) };
  };
}
