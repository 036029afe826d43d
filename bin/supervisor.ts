/**
 * Runs child processes and restarts one that dies unexpectedly (at most five times a
 * minute), sending each one's output to a log file.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";

export interface ChildSpec {
  name: string;
  /** A .js file runs under plain node, a .ts file through tsx. */
  script: string;
  /** Node options before the script (e.g. V8 heap sizes). */
  nodeArgs?: string[];
  env: NodeJS.ProcessEnv;
  logFile: string;
}

interface Running {
  spec: ChildSpec;
  child: ChildProcess;
  log: WriteStream;
  restarts: number[];
}

export class Supervisor {
  private readonly running = new Map<string, Running>();
  private stopping = false;

  constructor(private readonly say: (line: string) => void) {}

  start(spec: ChildSpec): void {
    const log = createWriteStream(spec.logFile, { flags: "a" });
    const loader = spec.script.endsWith(".ts") ? ["--import", "tsx"] : [];
    const child = spawn(process.execPath, [...(spec.nodeArgs ?? []), ...loader, spec.script], { env: spec.env, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    const previous = this.running.get(spec.name);
    const entry: Running = { spec, child, log, restarts: previous?.restarts ?? [] };
    this.running.set(spec.name, entry);
    child.on("exit", (code, signal) => {
      log.end();
      if (this.stopping) return;
      const now = Date.now();
      entry.restarts = entry.restarts.filter((t) => now - t < 60_000);
      if (entry.restarts.length >= 5) {
        this.say(`✗ ${spec.name} exited (${signal ?? code}) five times in a minute; not restarting. See ${spec.logFile}`);
        return;
      }
      entry.restarts.push(now);
      this.say(`! ${spec.name} exited (${signal ?? code}); restarting. See ${spec.logFile}`);
      setTimeout(() => !this.stopping && this.start(spec), 1000);
    });
  }

  isRunning(name: string): boolean {
    const r = this.running.get(name);
    return !!r && r.child.exitCode === null && r.child.signalCode === null;
  }

  /** SIGTERM to all, then SIGKILL to whatever is left after the grace period. */
  async stop(graceMs = 15_000): Promise<void> {
    this.stopping = true;
    const exits = [...this.running.values()].map(
      (r) =>
        new Promise<void>((resolve) => {
          if (r.child.exitCode !== null || r.child.signalCode !== null) return resolve();
          const timer = setTimeout(() => r.child.kill("SIGKILL"), graceMs);
          r.child.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
          r.child.kill("SIGTERM");
        }),
    );
    await Promise.all(exits);
  }
}
