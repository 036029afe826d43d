import knexPkg from "knex";
import type { Knex } from "knex";
import pg from "pg";

export type Db = Knex;

// bigint (count(*), bigserial) arrives as a string by default; our values fit a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v: string) => Number(v));

export function createDb(databaseUrl: string, pool = { min: 0, max: 10 }): Db {
  // Bounded waits: with Postgres away a caller fails within seconds (the API answers 503)
  // instead of queueing for a minute; a dead connection is dropped, and the pool reconnects.
  // JIT off: every statement here is short OLTP work, and Postgres' cost estimate for a join
  // over thousands of hosts crosses jit_above_cost, so it would spend ~280 ms compiling a
  // query that runs in 2 ms (seen in B4 at 10,000 hosts).
  // random_page_cost 1.1, not 4: Cirrus' tables live in memory or on SSD, where a random
  // page costs about what a sequential one does. At 4 the planner answered the outbox
  // relay's `id = ANY(ARRAY(…))` with a bitmap scan of the whole primary key, dead entries
  // of every published row included (1,258 buffers, 2.1 ms, a cycle per boot in B4),
  // where an index scan reads 19 buffers in 0.2 ms.
  return knexPkg({
    client: "pg",
    connection: { connectionString: databaseUrl, connectionTimeoutMillis: 5000, keepAlive: true, options: "-c jit=off -c random_page_cost=1.1" },
    pool,
    acquireConnectionTimeout: 10_000,
  });
}

/** Creates the database named in the URL when it does not exist yet. */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`unsupported database name "${name}"`);
  const admin = new URL(databaseUrl);
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (found.rowCount === 0) {
      try {
        await client.query(`CREATE DATABASE "${name}"`);
      } catch (err) {
        // Two processes starting at once: the other one created it.
        if ((err as { code?: string }).code !== "42P04") throw err;
      }
    }
  } finally {
    await client.end();
  }
}

export async function dropDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ""));
  const admin = new URL(databaseUrl);
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
