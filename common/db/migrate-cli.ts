import { loadConfig } from "../config.js";
import { createDb, ensureDatabase } from "./knex.js";
import { migrateLatest } from "./migrations.js";

const config = loadConfig();
await ensureDatabase(config.databaseUrl);
const db = createDb(config.databaseUrl);
await migrateLatest(db);
await db.destroy();
console.log("migrations: up to date");
