/** Starts the API process: migrations, the outbox relay, and the HTTP listener. */
import { loadConfig } from "../common/config.js";
import { createDb, ensureDatabase } from "../common/db/knex.js";
import { migrateLatest } from "../common/db/migrations.js";
import { createLogger } from "../common/logger.js";
import { OutboxRelay } from "../common/outbox.js";
import { QueueSet } from "../common/queues.js";
import { onShutdown } from "../common/shutdown.js";
import { buildApp } from "./app.js";
import { devAuthenticator } from "./auth/dev-auth.js";
import { QueueRpc } from "./rpc.js";

const config = loadConfig();
const log = createLogger("cirrus-api", config.logLevel);
await ensureDatabase(config.databaseUrl);
const db = createDb(config.databaseUrl, { min: 0, max: 20 });
await migrateLatest(db);
const queues = new QueueSet(config.redisUrl, config.queuePrefix);
const relay = new OutboxRelay({ db, databaseUrl: config.databaseUrl, queues, log });
await relay.start();

const rpc = new QueueRpc(config.redisUrl, config.queuePrefix);
const app = await buildApp({ db, config, rpc, auth: devAuthenticator(config.devToken), logger: log });
await app.listen({ host: config.apiHost, port: config.apiPort });
log.info({ url: config.publicUrl }, "cirrus-api listening");

onShutdown(log, async () => {
  await app.close();
  await relay.stop();
  await rpc.close();
  await queues.close();
  await db.destroy();
});
