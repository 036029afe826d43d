/**
 * `npm start`: the whole of Cirrus on one machine. Prepares the database, starts the
 * API, the scheduler and one compute agent as supervised child processes, seeds what a
 * first boot needs, and writes .cirrus/openrc. Ctrl-C stops everything.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { loadConfig } from "../common/config.js";
import { createDb, ensureDatabase } from "../common/db/knex.js";
import { migrateLatest } from "../common/db/migrations.js";
import { redisOptions } from "../common/queues.js";
import { DEMO_IMAGE, DEMO_NETWORK, seed } from "./seed.js";
import { setUpAuth } from "./dev-auth-setup.js";
import { Supervisor } from "./supervisor.js";
import { startEmbedded } from "./embedded.js";
import { API_NODE_OPTIONS, buildCompiled, compiledPath } from "./compiled.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const say = (line: string) => console.log(`cirrus: ${line}`);

async function devToken(stateDir: string): Promise<string> {
  if (process.env.CIRRUS_DEV_TOKEN) return process.env.CIRRUS_DEV_TOKEN;
  const file = path.join(stateDir, "dev-token");
  if (existsSync(file)) return (await readFile(file, "utf8")).trim();
  const token = randomBytes(24).toString("base64url");
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return token;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
}

const startedAt = Date.now();
// The processes run compiled JavaScript (bin/compiled.ts), transpiled while the rest starts up.
const compiled = buildCompiled(say);
compiled.catch(() => {});
// Embedded Postgres and redis-server unless DATABASE_URL / REDIS_URL say otherwise (bin/embedded.ts).
const embedded = await startEmbedded(loadConfig().stateDir, say);
const config = loadConfig();
await mkdir(path.join(config.stateDir, "logs"), { recursive: true });
const token = await devToken(config.stateDir);

say(`state in ${config.stateDir}`);
await ensureDatabase(config.databaseUrl);
const db = createDb(config.databaseUrl, { min: 0, max: 2 });
await migrateLatest(db);
say(`✓ postgres: ${new URL(config.databaseUrl).host}${new URL(config.databaseUrl).pathname} migrated`);

const redis = new Redis({ ...redisOptions(config.redisUrl), maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
redis.on("error", () => {});
try {
  await redis.connect();
  await redis.ping();
} catch (err) {
  say(`✗ redis at ${config.redisUrl} does not answer (${(err as Error).message}); start redis-server or set REDIS_URL`);
  await embedded.stop();
  process.exit(1);
}
redis.disconnect();
say(`✓ redis: ${config.redisUrl}`);

// Auth: the configured issuer, or a development issuer on loopback (bin/dev-auth-setup.ts).
const auth = await setUpAuth(config, token, { adminToken: process.env.CIRRUS_ADMIN_TOKEN });
say(`✓ auth: ${auth.describe}`);
const env = {
  ...process.env,
  ...auth.env,
  CIRRUS_DEV_TOKEN: token,
  CIRRUS_STATE_DIR: config.stateDir,
  DATABASE_URL: config.databaseUrl,
  REDIS_URL: config.redisUrl,
  CIRRUS_HOST: config.agentHost,
};
let distDir: string;
try {
  distDir = await compiled;
} catch (err) {
  say(`✗ ${(err as Error).message}`);
  await auth.close();
  await db.destroy();
  await embedded.stop();
  process.exit(1);
}
const supervisor = new Supervisor(say);
const logs = (name: string) => path.join(config.stateDir, "logs", `${name}.log`);
supervisor.start({ name: "api", script: compiledPath(distDir, "api/server.ts"), nodeArgs: API_NODE_OPTIONS, env, logFile: logs("api") });
supervisor.start({ name: "scheduler", script: compiledPath(distDir, "scheduler/main.ts"), env, logFile: logs("scheduler") });
// libvirt calls hold libuv threads for up to seconds (start, destroy): give the agent more.
supervisor.start({ name: "compute-agent", script: compiledPath(distDir, "compute-agent/main.ts"), env: { ...env, UV_THREADPOOL_SIZE: "16" }, logFile: logs("compute-agent") });

let shuttingDown = false;
const shutdown = async () => {
  if (shuttingDown) return;
  shuttingDown = true;
  say("stopping api, scheduler and compute-agent ...");
  await supervisor.stop();
  await auth.close();
  await db.destroy();
  await embedded.stop();
  say("stopped");
  process.exit(0);
};
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);

try {
  await waitFor("the API", async () => (await fetch(`${config.publicUrl}/v2.1/`)).ok, 60_000);
  say(`✓ api: ${config.publicUrl}`);
  await waitFor(
    "the compute agent to register",
    async () => !!(await db("compute_services").where({ host: config.agentHost }).where("last_seen_at", ">", db.raw("now() - interval '30 seconds'")).first()),
    60_000,
  );
  const svc = await db("compute_services").where({ host: config.agentHost }).first();
  say(`✓ scheduler running; compute-agent: host ${config.agentHost} on ${svc.libvirt_uri}${svc.libvirt_uri.startsWith("test:") ? " (SIMULATED guests)" : ""}`);
  if (auth.adminToken) await seed(config.publicUrl, auth.adminToken, repoRoot, config.stateDir, say);
  else say("! no admin token (set CIRRUS_ADMIN_TOKEN from your identity provider): demo image and network not seeded");
} catch (err) {
  say(`✗ ${(err as Error).message}; logs are in ${path.join(config.stateDir, "logs")}`);
  await shutdown();
}

const openrc = path.join(config.stateDir, "openrc");
await writeFile(
  openrc,
  [
    "# Written by `npm start`: source it to reach this Cirrus with curl or the OpenStack clients.",
    "unset OS_PROJECT_ID OS_PROJECT_NAME OS_USERNAME OS_PASSWORD OS_AUTH_URL OS_USER_DOMAIN_NAME OS_PROJECT_DOMAIN_NAME OS_CLOUD",
    `export CIRRUS_URL=${config.publicUrl}`,
    ...(auth.adminToken ? [`export OS_TOKEN=${auth.adminToken}`] : ["# export OS_TOKEN=<an access token from your identity provider>"]),
    ...auth.openrc,
    "export OS_AUTH_TYPE=admin_token",
    `export OS_ENDPOINT=${config.publicUrl}/v2.1`,
    "",
  ].join("\n"),
  { mode: 0o600 },
);
say(`✓ wrote ${path.relative(process.cwd(), openrc) || openrc}`);
say(`ready: ${config.publicUrl} — boot a server with:`);
console.log(`
  source ${path.relative(process.cwd(), openrc)}
  IMAGE=$(curl -s -H "X-Auth-Token: $OS_TOKEN" "$CIRRUS_URL/v2/images?name=${DEMO_IMAGE}" | jq -r '.images[0].id')
  NET=$(curl -s -H "X-Auth-Token: $OS_TOKEN" "$CIRRUS_URL/v2.0/networks?name=${DEMO_NETWORK}" | jq -r '.networks[0].id')
  curl -s -H "X-Auth-Token: $OS_TOKEN" -H "Content-Type: application/json" -X POST "$CIRRUS_URL/v2.1/servers" \\
    -d "{\\"server\\": {\\"name\\": \\"vm1\\", \\"flavorRef\\": \\"1\\", \\"imageRef\\": \\"$IMAGE\\", \\"networks\\": [{\\"uuid\\": \\"$NET\\"}]}}"

Ctrl-C stops everything; logs are in ${path.join(config.stateDir, "logs")}; API reference at ${config.publicUrl}/docs, metrics at ${config.publicUrl}/metrics.`);
say(`running in ${((Date.now() - startedAt) / 1000).toFixed(1)} s: Cirrus at ${config.publicUrl} (source ${path.relative(process.cwd(), openrc)})`);
