/**
 * Real services for tests: a fresh Postgres database per test file (migrated), a
 * unique BullMQ prefix per file, and the app built on them. Nothing is mocked.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { buildApp } from "../../api/app.js";
import { devAuthenticator } from "../../api/auth/dev-auth.js";
import { createDb, dropDatabase, ensureDatabase, type Db } from "../../common/db/knex.js";
import { migrateLatest } from "../../common/db/migrations.js";

export const TEST_DATABASE_ROOT = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const ADMIN_TOKEN = "test-admin-token";

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
}

export interface TestDatabase {
  url: string;
  db: Db;
  drop(): Promise<void>;
}

export async function createTestDatabase(root: string = TEST_DATABASE_ROOT): Promise<TestDatabase> {
  const url = new URL(root);
  url.pathname = `/${uniqueName("cirrus_test")}`;
  await ensureDatabase(url.toString());
  const db = createDb(url.toString());
  await migrateLatest(db);
  // Domain names come from this sequence and every test database starts afresh, while
  // qemu:///system is shared by all test files: start each database somewhere else.
  await db.raw(`ALTER SEQUENCE instances_seq_seq RESTART WITH ${1 + Math.floor(Math.random() * 0x0fffffff)}`);
  return {
    url: url.toString(),
    db,
    drop: async () => {
      await db.destroy();
      await dropDatabase(url.toString());
    },
  };
}

export interface TestApp {
  app: Awaited<ReturnType<typeof buildApp>>;
  db: Db;
  imageStoreDir: string;
  close(): Promise<void>;
}

export const PUBLIC_URL = "http://cirrus.test:8774";

/** Quotas are enforced as in production unless a suite that boots many servers in one project turns them off. */
export async function createTestApp(options: { enforceQuotas?: boolean } = {}): Promise<TestApp> {
  const database = await createTestDatabase();
  const imageStoreDir = await mkdtemp(path.join(os.tmpdir(), "cirrus-images-"));
  const app = await buildApp({
    db: database.db,
    config: { publicUrl: PUBLIC_URL, imageStoreDir, serviceDownTimeSec: 60, enforceQuotas: options.enforceQuotas ?? true },
    auth: devAuthenticator(ADMIN_TOKEN),
  });
  await app.ready();
  return {
    app,
    db: database.db,
    imageStoreDir,
    close: async () => {
      await app.close();
      await database.drop();
      await rm(imageStoreDir, { recursive: true, force: true });
    },
  };
}

/** Row counts of every table: a request that was refused must leave these unchanged. */
export async function tableCounts(db: Db): Promise<Record<string, number>> {
  const tables = [
    "flavors", "images", "networks", "subnets", "ports", "ip_allocations", "instances", "instance_faults",
    "instance_actions", "instance_action_events", "compute_services", "resource_providers", "inventories",
    "allocations", "outbox",
  ];
  const out: Record<string, number> = {};
  for (const t of tables) {
    const [row] = await db(t).count<{ count: number }[]>("* as count");
    out[t] = Number(row!.count);
  }
  return out;
}
