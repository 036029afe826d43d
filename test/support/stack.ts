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
  /** The queue prefix of this stack's Redis keys. */
  prefix: string;
  logs(): Promise<string>;
  stop(): Promise<void>;
  /** Fault injection: signals one process (api, api-1, scheduler-0, agent-<host>) and resolves its exit code (or signal name). */
  signal(name: string, signal: NodeJS.Signals): Promise<number | string | null>;
  /** Starts a process that exited again, with the same environment (its log continues). */
  restart(name: string, extraEnv?: Record<string, string>): void;
  /** Starts one more API process on its own port; resolves its URL once it answers. */
  addApi(): Promise<string>;
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

/**
 * Auth in the stack: the API runs with CIRRUS_AUTH_MODE=dev (one static admin token,
 * `stack.token`, which the agents use as well): these tests are about booting, not
 * about identity; OIDC is shown against a real issuer in test/integration/auth-oidc.test.ts.
 * Quotas stay enforced, but the admin project's instances, cores and RAM are raised to
 * unlimited through the API (opts.defaultQuotas keeps Nova's defaults).
 * opts.databaseRoot: a Postgres server other than the shared one (a private cluster a
 * fault test may restart).
 */
export async function startStack(opts: { schedulers?: number; agents: AgentSpec[]; env?: Record<string, string>; defaultQuotas?: boolean; databaseRoot?: string }): Promise<Stack> {
  const database = await createTestDatabase(opts.databaseRoot);
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
    CIRRUS_AUTH_MODE: "dev",
    CIRRUS_DEV_TOKEN: token,
    CIRRUS_IMAGE_STORE: path.join(workDir, "images"),
    CIRRUS_HEARTBEAT_INTERVAL: "2",
    LOG_LEVEL: "info",
    ...opts.env,
  };
  const specs = new Map<string, { script: string; env: Record<string, string | undefined> }>();
  const start = (name: string, script: string, env: Record<string, string | undefined>) => {
    const logFile = path.join(workDir, `${name}.log`);
    const log = createWriteStream(logFile, { flags: "a" });
    const proc = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, script)], { env, stdio: ["ignore", "pipe", "pipe"] });
    proc.stdout!.pipe(log);
    proc.stderr!.pipe(log);
    const at = children.findIndex((c) => c.name === name);
    if (at >= 0) children.splice(at, 1);
    children.push({ name, proc, logFile });
    specs.set(name, { script, env });
  };

  start("api", "api/server.ts", base);
  await waitFor("the API", async () => (await fetch(`${url}/v2.1/`)).ok, 60_000);
  if (!opts.defaultQuotas) {
    const res = await fetch(`${url}/v2.1/os-quota-sets/admin`, {
      method: "PUT",
      headers: { "x-auth-token": token, "content-type": "application/json" },
      body: JSON.stringify({ quota_set: { instances: -1, cores: -1, ram: -1 } }),
    });
    if (!res.ok) throw new Error(`raising the admin project's quota: ${res.status} ${await res.text()}`);
  }
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
      // qemu:///system is shared by every test file's stack: never reap another stack's domains.
      ...(a.uri.startsWith("test:") ? {} : { CIRRUS_ORPHAN_ACTION: "log" }),
      ...a.env,
    });
  }
  const stack: Stack = {
    url,
    token,
    database,
    workDir,
    agents,
    prefix,
    signal: (name, sig) => {
      const c = children.find((x) => x.name === name);
      if (!c) throw new Error(`no process named ${name}`);
      if (c.proc.exitCode !== null || c.proc.signalCode !== null) return Promise.resolve(c.proc.exitCode ?? c.proc.signalCode);
      return new Promise((resolve) => {
        c.proc.once("exit", (code, signal) => resolve(code ?? signal));
        c.proc.kill(sig);
      });
    },
    restart: (name, extraEnv = {}) => {
      const spec = specs.get(name);
      if (!spec) throw new Error(`no process named ${name}`);
      start(name, spec.script, { ...spec.env, ...extraEnv });
    },
    addApi: async () => {
      const n = children.filter((c) => c.name.startsWith("api")).length;
      const apiPort = await freePort();
      start(`api-${n}`, "api/server.ts", { ...base, CIRRUS_API_PORT: String(apiPort) });
      const apiUrl = `http://127.0.0.1:${apiPort}`;
      await waitFor(`API ${n}`, async () => (await fetch(`${apiUrl}/v2.1/`)).ok, 60_000);
      return apiUrl;
    },
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
