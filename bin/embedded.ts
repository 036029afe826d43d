/**
 * The embedded defaults of `npm start`: a Postgres and a redis-server of its own when
 * DATABASE_URL and REDIS_URL are not set. Each is a real server with its data under the
 * state dir; the URLs are put into process.env so that the config (and every child
 * process) uses them. If the embedded Postgres cannot start, the machine's Postgres
 * (the config's default URL) is used, and npm start says so.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { startEmbeddedPostgres, type EmbeddedServer } from "./embedded-postgres.js";
import { startEmbeddedRedis } from "./embedded-redis.js";

export interface Embedded {
  stop(): Promise<void>;
}

export async function startEmbedded(stateDir: string, say: (line: string) => void): Promise<Embedded> {
  await mkdir(path.join(stateDir, "logs"), { recursive: true });
  const started: { name: string; server: EmbeddedServer }[] = [];
  const stop = async () => {
    for (const { name, server } of started.reverse()) {
      await server.stop().catch((err) => say(`! stopping the embedded ${name}: ${(err as Error).message}`));
    }
    started.length = 0;
  };

  if (!process.env.DATABASE_URL) {
    const t = Date.now();
    try {
      const pg = await startEmbeddedPostgres(stateDir, say);
      started.push({ name: "postgres", server: pg });
      process.env.DATABASE_URL = pg.url;
      say(`✓ postgres: embedded server on ${new URL(pg.url).host}, data in ${path.join(stateDir, "postgres")} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
    } catch (err) {
      say(`! postgres: the embedded server could not start (${(err as Error).message})`);
      say("! postgres: falling back to the machine's Postgres at 127.0.0.1:5432 (set DATABASE_URL to choose another)");
    }
  }
  if (!process.env.REDIS_URL) {
    const t = Date.now();
    try {
      const redis = await startEmbeddedRedis(stateDir);
      started.push({ name: "redis", server: redis });
      process.env.REDIS_URL = redis.url;
      say(`✓ redis: embedded redis-server on ${new URL(redis.url).host}, data in ${path.join(stateDir, "redis")} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
    } catch (err) {
      say(`! redis: the embedded redis-server could not start (${(err as Error).message}); trying 127.0.0.1:6379`);
    }
  }
  return { stop };
}
