/**
 * Private Redis and Postgres servers a fault test may kill and restart without touching
 * the machine's shared ones: each on a free port in a temporary folder, removed at the end.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { waitFor } from "./stack.js";

const run = promisify(execFile);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

const answers = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });

/** A redis-server with no persistence at all: a restart loses every key, as the fault test wants. */
export class PrivateRedis {
  private proc: ChildProcess | null = null;
  constructor(readonly port: number) {}
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  static async create(): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort());
    await r.start();
    return r;
  }
  async start(): Promise<void> {
    this.proc = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    await waitFor(`redis on ${this.port}`, () => answers(this.port), 10_000, 100);
  }
  /** kill -9: everything in memory is gone. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once("exit", () => resolve());
      proc.kill("SIGKILL");
    });
    this.proc = null;
  }
}

const PG_BIN = "/usr/lib/postgresql/15/bin";

/** A Postgres 15 cluster of its own (initdb as user postgres, trust auth), started and stopped with pg_ctl. */
export class PrivatePostgres {
  constructor(
    readonly port: number,
    readonly dir: string,
  ) {}
  get rootUrl(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }
  static async create(): Promise<PrivatePostgres> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "cirrus-pg-"));
    await chmod(dir, 0o777);
    const pg = new PrivatePostgres(await freePort(), dir);
    await run("su", ["postgres", "-c", `${PG_BIN}/initdb -D ${dir}/data -A trust -U postgres --no-sync -E UTF8`]);
    await pg.start();
    return pg;
  }
  private asPostgres(cmd: string) {
    return run("su", ["postgres", "-c", cmd], { timeout: 60_000 });
  }
  async start(): Promise<void> {
    await this.asPostgres(
      `${PG_BIN}/pg_ctl -D ${this.dir}/data -l ${this.dir}/log -w -o "-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start`,
    );
  }
  /** An immediate stop: connections cut, as in a crash (recovery runs at the next start). */
  async crash(): Promise<void> {
    await this.asPostgres(`${PG_BIN}/pg_ctl -D ${this.dir}/data -m immediate -w stop`);
  }
  async destroy(): Promise<void> {
    await this.asPostgres(`${PG_BIN}/pg_ctl -D ${this.dir}/data -m immediate -w stop`).catch(() => {});
    await rm(this.dir, { recursive: true, force: true });
  }
}
