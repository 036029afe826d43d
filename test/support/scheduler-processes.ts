/**
 * Real scheduler processes (scheduler/main.ts, started as test/support/stack.ts starts
 * them) against a database and queue prefix the test already has, for tests that keep
 * the API and the agents in-process but want the schedulers exactly as they run in
 * production: separate processes, each with its own pool, outbox relay and workers.
 * Each writes its log straight to a file (no piping through the test process), which a
 * failing test prints.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { TEST_REDIS_URL } from "./services.js";
import { waitFor } from "./stack.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface SchedulerProcesses {
  /** The last part of every process's log. */
  logs(): Promise<string>;
  /** Names of processes that exited although stop() was not called. */
  exited(): string[];
  /**
   * Freezes every process (SIGSTOP): no relaying, placing or heartbeat copying until
   * resume(), so work can pile up and then meet all schedulers at once. Pause only
   * when they are idle: a frozen process keeps whatever row locks it holds.
   */
  pause(): void;
  /** Lets every process go on (SIGCONT), all at once. */
  resume(): void;
  stop(): Promise<void>;
}

/** Resolves once every process has logged that it runs; rejects (and stops them all) if one exits first. */
export async function startSchedulers(opts: {
  count: number;
  databaseUrl: string;
  prefix: string;
  redisUrl?: string;
  env?: Record<string, string>;
}): Promise<SchedulerProcesses> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "cirrus-schedulers-"));
  const env = {
    ...process.env,
    DATABASE_URL: opts.databaseUrl,
    REDIS_URL: opts.redisUrl ?? TEST_REDIS_URL,
    CIRRUS_QUEUE_PREFIX: opts.prefix,
    LOG_LEVEL: "info",
    ...opts.env,
  };
  let stopping = false;
  const procs: { name: string; proc: ChildProcess; logFile: string }[] = [];
  for (let i = 0; i < opts.count; i++) {
    const name = `scheduler-${i}`;
    const logFile = path.join(dir, `${name}.log`);
    const fd = openSync(logFile, "a");
    const proc = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "scheduler/main.ts")], { env, stdio: ["ignore", fd, fd] });
    closeSync(fd);
    procs.push({ name, proc, logFile });
  }
  const isDown = (p: ChildProcess) => p.exitCode !== null || p.signalCode !== null;
  const signalAll = (signal: NodeJS.Signals) => {
    for (const { proc } of procs) if (!isDown(proc)) proc.kill(signal);
  };
  const handle: SchedulerProcesses = {
    logs: async () =>
      (await Promise.all(procs.map(async (p) => `===== ${p.name}\n${(await readFile(p.logFile, "utf8").catch(() => "")).slice(-8000)}`))).join("\n"),
    exited: () => (stopping ? [] : procs.filter((p) => isDown(p.proc)).map((p) => p.name)),
    pause: () => signalAll("SIGSTOP"),
    resume: () => signalAll("SIGCONT"),
    stop: async () => {
      stopping = true;
      signalAll("SIGCONT"); // a frozen process cannot take its SIGTERM
      await Promise.all(
        procs.map(
          ({ proc }) =>
            new Promise<void>((resolve) => {
              if (isDown(proc)) return resolve();
              const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
              proc.once("exit", () => {
                clearTimeout(timer);
                resolve();
              });
              proc.kill("SIGTERM");
            }),
        ),
      );
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    // waitFor retries a check that throws, so a process that died is a result, not an error.
    const outcome = await waitFor(
      `${opts.count} scheduler process(es) to run`,
      async () => {
        const dead = handle.exited();
        if (dead.length > 0) return { dead };
        const texts = await Promise.all(procs.map((p) => readFile(p.logFile, "utf8")));
        return texts.every((t) => t.includes("cirrus-scheduler running")) && { dead };
      },
      60_000,
      200,
    );
    if (outcome.dead.length > 0) throw new Error(`exited at start: ${outcome.dead.join(", ")}`);
  } catch (err) {
    const logs = await handle.logs();
    await handle.stop();
    throw new Error(`${String(err)}\n${logs}`);
  }
  return handle;
}
