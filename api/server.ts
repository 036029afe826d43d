/** Starts the API process: migrations, the outbox relay, and the HTTP listener. */
import v8 from "node:v8";
import { loadConfig } from "../common/config.js";
import { createDb, ensureDatabase } from "../common/db/knex.js";
import { migrateLatest } from "../common/db/migrations.js";
import { createLogger } from "../common/logger.js";
import { OutboxRelay } from "../common/outbox.js";
import { QueueSet, producerConnection } from "../common/queues.js";
import { onShutdown } from "../common/shutdown.js";
import { buildApp } from "./app.js";
import { devAuthenticator, noAuthenticator, type Authenticator } from "./auth/dev-auth.js";
import { QueueRpc } from "./rpc.js";

// V8 lets the old generation grow to up to 4× what survived the last full collection
// before collecting again; the API's live heap is about 40 MB and nearly everything it
// allocates per request dies young, so 1.5× keeps ~25 MB of garbage off the resident set
// for a few more (concurrent) full collections (docs/memory.md). Read by V8 at every
// collection, so setting it here works however the process was started.
if (process.env.CIRRUS_API_HEAP_GROWING_PERCENT !== "0") v8.setFlagsFromString(`--heap-growing-percent=${process.env.CIRRUS_API_HEAP_GROWING_PERCENT ?? "50"}`);

const config = loadConfig();
// Auth switched off (dev: one static admin token; none: nothing) is said on every log line.
const AUTH_OFF: Record<string, string> = {
  dev: "INSECURE: CIRRUS_AUTH_MODE=dev, one static admin token, no identity provider",
  none: "INSECURE: CIRRUS_AUTH_MODE=none, no authentication, every caller is admin",
};
const log = createLogger("cirrus-api", config.logLevel, AUTH_OFF[config.authMode] ? { auth: AUTH_OFF[config.authMode] } : {});
if (config.authMode === "oidc" && !config.oidc.issuerUrl) {
  log.fatal(
    "no identity provider: set CIRRUS_OIDC_ISSUER_URL (and CIRRUS_OIDC_AUDIENCE), or switch auth off explicitly with CIRRUS_AUTH_MODE=dev or none",
  );
  process.exit(1);
}
let auth: Authenticator;
if (config.authMode === "oidc") {
  // openid-client and jose are loaded only when tokens are verified (not with auth off).
  const { createOidcAuthenticator } = await import("./auth/oidc.js");
  const oidc = createOidcAuthenticator({ ...config.oidc, issuerUrl: config.oidc.issuerUrl! });
  await oidc.discover().then(
    () => log.info({ issuer: config.oidc.issuerUrl, audience: config.oidc.audience }, "OIDC issuer discovered"),
    (err: Error) => log.warn({ issuer: config.oidc.issuerUrl, err: err.message }, "OIDC issuer discovery failed; retrying on the next request"),
  );
  auth = oidc.authenticate;
} else {
  auth = config.authMode === "dev" ? devAuthenticator(config.devToken) : noAuthenticator();
}
await ensureDatabase(config.databaseUrl);
const db = createDb(config.databaseUrl, { min: 0, max: config.dbPoolMax ?? 20 });
await migrateLatest(db);
const queues = new QueueSet(config.redisUrl, config.queuePrefix);
const relay = new OutboxRelay({ db, databaseUrl: config.databaseUrl, queues, log });
await relay.start();

const rpc = new QueueRpc(config.redisUrl, config.queuePrefix);
// /readyz, /metrics: Redis checks, heartbeats, pushed agent metrics, queue depths.
const opsRedis = producerConnection(config.redisUrl);
opsRedis.on("error", () => {});
const ops = { redis: opsRedis, queuePrefix: config.queuePrefix, queue: (name: string) => queues.get(name) };
const app = await buildApp({ db, config, rpc, auth, logger: log, redis: opsRedis, rateLimit: config.rateLimit, ops });
await app.listen({ host: config.apiHost, port: config.apiPort });
log.info({ url: config.publicUrl }, "cirrus-api listening");

onShutdown(log, async () => {
  await app.close();
  await relay.stop();
  await rpc.close();
  await queues.close();
  opsRedis.disconnect();
  await db.destroy();
});
