/**
 * Migrations are listed explicitly (not loaded from a folder) so the names recorded
 * in knex_migrations are the same under tsx and in a compiled dist.
 */
import type { Knex } from "knex";
import * as m001 from "../../migrations/001_initial.js";
import * as m002 from "../../migrations/002_compute_extras.js";
import * as m003 from "../../migrations/003_server_features.js";
import * as m004 from "../../migrations/004_networking.js";
import * as m005 from "../../migrations/005_resilience.js";
import * as m006 from "../../migrations/006_placement_scale.js";
import * as m007 from "../../migrations/007_list_indexes.js";
import * as m008 from "../../migrations/008_change_xids.js";
import * as m009 from "../../migrations/009_waiting_boots_index.js";
import type { Db } from "./knex.js";

const ALL: Record<string, Knex.Migration> = {
  "001_initial": m001,
  "002_compute_extras": m002,
  "003_server_features": m003,
  "004_networking": m004,
  "005_resilience": m005,
  "006_placement_scale": m006,
  "007_list_indexes": m007,
  "008_change_xids": m008,
  "009_waiting_boots_index": m009,
};

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(ALL).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => ALL[name]!,
};

export async function migrateLatest(db: Db): Promise<void> {
  await db.migrate.latest({ migrationSource });
}
