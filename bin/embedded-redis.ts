/**
 * `npm start` without REDIS_URL: a redis-server of its own (the system binary, or
 * REDIS_SERVER_BIN), on a free loopback port, with an append-only file in
 * <state dir>/redis, so jobs that were queued but not yet handled survive a restart
 * (the outbox marks a job published once Redis has it). It runs in its own process
 * group and is stopped (it writes its data on SIGTERM) after the Cirrus processes.
 * See docs/all-in-one.md for why a redis-server rather than BullMQ's Postgres backend.
 */
import { spawn } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { Redis } from "ioredis";
import { freeLoopbackPort, type EmbeddedServer } from "./embedded-postgres.js";

function findRedisServer(): string | null {
  const candidates = [process.env.REDIS_SERVER_BIN, "/usr/bin/redis-server", "/usr/local/bin/redis-server"];
  for (const dir of (process.env.PATH ?? "").split(":")) if (dir) candidates.push(path.join(dir, "redis-server"));
  return candidates.find((c): c is string => !!c && existsSync(c)) ?? null;
}

export async function startEmbeddedRedis(stateDir: string): Promise<EmbeddedServer> {
  const bin = findRedisServer();
  if (!bin) throw new Error("no redis-server binary (apt-get install redis-server, or set REDIS_SERVER_BIN or REDIS_URL)");
  const dir = path.join(stateDir, "redis");
  await mkdir(dir, { recursive: true });
  const port = await freeLoopbackPort();
  const logFile = path.join(stateDir, "logs", "redis.log");
  const log = createWriteStream(logFile, { flags: "a" });
  const child = spawn(
    bin,
    [
      "--port", String(port), "--bind", "127.0.0.1", "--protected-mode", "yes", "--dir", dir,
      "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
      // BullMQ needs every key kept.
      "--maxmemory-policy", "noeviction", "--daemonize", "no",
    ],
    { cwd: dir, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  const onExit = () => {
    if (!exited) child.kill("SIGTERM");
  };
  process.on("exit", onExit);

  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`redis-server exited at start; see ${logFile}`);
    const probe = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    probe.on("error", () => {});
    try {
      await probe.connect();
      // While it replays its append-only file, redis answers LOADING: wait for PONG.
      if ((await probe.ping()) === "PONG") {
        probe.disconnect();
        break;
      }
    } catch {
      // not yet
    }
    probe.disconnect();
    if (Date.now() > deadline) throw new Error(`redis-server did not answer within 30 s; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    url,
    stop: async () => {
      process.off("exit", onExit);
      if (exited) return;
      const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await gone;
      clearTimeout(timer);
      log.end();
    },
  };
}
