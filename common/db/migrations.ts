/**
 * Migrations are listed explicitly (not loaded from a folder) so the names recorded
 * in knex_migrations are the same under tsx and in a compiled dist.
 */
import type { Knex } from "knex";
import * as m001 from "../../migrations/001_initial.js";
import type { Db } from "./knex.js";

const ALL: Record<string, Knex.Migration> = { "001_initial": m001 };

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(ALL).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => ALL[name]!,
};

export async function migrateLatest(db: Db): Promise<void> {
  await db.migrate.latest({ migrationSource });
}
