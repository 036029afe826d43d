/**
 * `npm start` from a fresh clone, as a newcomer runs it: no DATABASE_URL, REDIS_URL or
 * issuer set, so it brings up its embedded Postgres and redis-server and the development
 * issuer. The test sources .cirrus/openrc, boots the demo image with curl, waits for
 * ACTIVE, reads the console output, deletes the server, stops with SIGINT (as Ctrl-C
 * does, to the whole process group), starts again and finds its data, not duplicated.
 *
 * The clone: `git clone` of this repository, then the working tree's uncommitted and
 * untracked (not ignored) files copied over it, so the test runs what would be
 * committed (in CI the copy changes nothing). node_modules is a symlink to the
 * repository's own (`npm ci` would take minutes).
 *
 * Guests: test:///default by default (fast, and no clash between the fresh database's
 * instance-00000001 and domains that other tests leave on qemu:///system); set
 * CIRRUS_E2E_NPM_START_URI=qemu:///system to boot the real demo guest and see its
 * serial console lines.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import { existsSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const LIBVIRT_URI = process.env.CIRRUS_E2E_NPM_START_URI ?? "test:///default";

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A clone of the repository with the working tree's changes on top. */
async function freshClone(into: string): Promise<void> {
  await run("git", ["clone", "--quiet", "--no-hardlinks", repoRoot, into], { timeout: 120_000 });
  const listed = (await run("git", ["-C", repoRoot, "ls-files", "-z", "--cached", "--others", "--exclude-standard"], { maxBuffer: 64 << 20 })).stdout
    .split("\0")
    .filter(Boolean);
  for (const rel of listed) {
    const from = path.join(repoRoot, rel);
    if (!existsSync(from)) {
      await rm(path.join(into, rel), { force: true });
      continue;
    }
    await mkdir(path.dirname(path.join(into, rel)), { recursive: true });
    await copyFile(from, path.join(into, rel));
  }
  await symlink(path.join(repoRoot, "node_modules"), path.join(into, "node_modules"));
}

interface Started {
  proc: ChildProcess;
  output: () => string;
  seconds: number;
}

describe("npm start from a fresh clone", () => {
  let dir: string;
  let clone: string;
  let port: number;
  let current: Started | null = null;
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(DATABASE_URL|REDIS_URL|CIRRUS_|OS_|TEST_DATABASE_URL|TEST_REDIS_URL|LIBVIRT_URI)/.test(k)) delete env[k];
  }

  async function start(): Promise<Started> {
    let out = "";
    const t = Date.now();
    const proc = spawn("npm", ["start"], { cwd: clone, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    proc.stdout!.on("data", (d) => (out += d));
    proc.stderr!.on("data", (d) => (out += d));
    const started: Started = { proc, output: () => out, seconds: 0 };
    current = started;
    const deadline = Date.now() + 150_000;
    while (!/cirrus: running in [0-9.]+ s: Cirrus at http/.test(out)) {
      if (proc.exitCode !== null) throw new Error(`npm start exited ${proc.exitCode}:\n${out}`);
      if (/cirrus: ✗/.test(out)) throw new Error(`npm start failed:\n${out}`);
      if (Date.now() > deadline) throw new Error(`npm start not ready in 150 s:\n${out}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    started.seconds = (Date.now() - t) / 1000;
    return started;
  }

  /** Ctrl-C: SIGINT to the whole process group, as a terminal sends it. */
  async function interrupt(s: Started): Promise<string> {
    // npm re-raises the signal its child ended on: "SIGINT" or an exit code.
    const exited = new Promise<string>((resolve) => {
      if (s.proc.exitCode !== null || s.proc.signalCode !== null) return resolve(String(s.proc.signalCode ?? s.proc.exitCode));
      s.proc.once("exit", (code, signal) => resolve(String(signal ?? code)));
    });
    process.kill(-s.proc.pid!, "SIGINT");
    const timer = setTimeout(() => {
      try {
        process.kill(-s.proc.pid!, "SIGKILL");
      } catch {
        // gone
      }
    }, 60_000);
    const code = await exited;
    clearTimeout(timer);
    current = null;
    return code;
  }

  /** bash with .cirrus/openrc sourced; prints what the script prints. */
  async function sh(script: string): Promise<string> {
    const { stdout } = await run("bash", ["-c", `set -euo pipefail; source .cirrus/openrc; ${script}`], { cwd: clone, timeout: 60_000 });
    return stdout.trim();
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "cirrus-npm-start-"));
    // As root the embedded Postgres runs as the postgres user, which must reach .cirrus/.
    await chmod(dir, 0o755);
    clone = path.join(dir, "cirrus");
    await freshClone(clone);
    port = await freePort();
    env.CIRRUS_API_PORT = String(port);
    env.CIRRUS_HOST = `npm-start-${process.pid}`;
    env.LIBVIRT_URI = LIBVIRT_URI;
  }, 180_000);

  afterAll(async () => {
    if (current) await interrupt(current).catch(() => {});
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 90_000);

  it("starts on embedded defaults, boots the demo image with curl, stops on Ctrl-C and keeps its data", async () => {
    const first = await start();
    const out1 = first.output();
    expect(out1).toMatch(/✓ postgres: embedded server on 127\.0\.0\.1:\d+/);
    expect(out1).toMatch(/✓ redis: embedded redis-server on 127\.0\.0\.1:\d+/);
    expect(out1).toMatch(/✓ flavors: created m1\.tiny, m1\.small, m1\.medium, m1\.large, m1\.xlarge/);
    expect(out1).toMatch(/✓ image: uploaded cirrus-test-guest/);
    expect(existsSync(path.join(clone, ".cirrus/openrc"))).toBe(true);
    console.log(`npm start, cold (initdb, image build): ready in ${first.seconds.toFixed(1)} s`);

    const id = await sh(`
      IMAGE=$(curl -sf -H "X-Auth-Token: $OS_TOKEN" "$CIRRUS_URL/v2/images?name=cirrus-test-guest" | jq -r '.images[0].id')
      NET=$(curl -sf -H "X-Auth-Token: $OS_TOKEN" "$CIRRUS_URL/v2.0/networks?name=private" | jq -r '.networks[0].id')
      curl -sf -H "X-Auth-Token: $OS_TOKEN" -H "Content-Type: application/json" -X POST "$CIRRUS_URL/v2.1/servers" \\
        -d "{\\"server\\": {\\"name\\": \\"vm1\\", \\"flavorRef\\": \\"1\\", \\"imageRef\\": \\"$IMAGE\\", \\"networks\\": [{\\"uuid\\": \\"$NET\\"}]}}" | jq -r .server.id`);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const status = await sh(`
      for i in $(seq 1 240); do
        S=$(curl -sf -H "X-Auth-Token: $OS_TOKEN" "$CIRRUS_URL/v2.1/servers/${id}" | jq -r .server.status)
        if [ "$S" = ACTIVE ] || [ "$S" = ERROR ]; then break; fi
        sleep 0.25
      done
      echo "$S"`);
    expect(status).toBe("ACTIVE");

    const consoleOut = await sh(`
      curl -sf -H "X-Auth-Token: $OS_TOKEN" -H "Content-Type: application/json" -X POST \\
        "$CIRRUS_URL/v2.1/servers/${id}/action" -d '{"os-getConsoleOutput": {"length": 50}}' | jq -c .`);
    const output = JSON.parse(consoleOut).output as string;
    expect(typeof output).toBe("string");
    if (LIBVIRT_URI.startsWith("qemu")) {
      await expect
        .poll(async () => JSON.parse(await sh(`curl -sf -H "X-Auth-Token: $OS_TOKEN" -H "Content-Type: application/json" -X POST "$CIRRUS_URL/v2.1/servers/${id}/action" -d '{"os-getConsoleOutput": {}}'`)).output, { timeout: 60_000, interval: 1000 })
        .toMatch(/config drive|meta_data|cirrus/i);
    }

    const deleted = await sh(`curl -s -o /dev/null -w "%{http_code}" -H "X-Auth-Token: $OS_TOKEN" -X DELETE "$CIRRUS_URL/v2.1/servers/${id}"`);
    expect(deleted).toBe("204");
    const gone = await sh(`
      for i in $(seq 1 240); do
        C=$(curl -s -o /dev/null -w "%{http_code}" -H "X-Auth-Token: $OS_TOKEN" "$CIRRUS_URL/v2.1/servers/${id}")
        if [ "$C" = 404 ]; then break; fi
        sleep 0.25
      done
      echo "$C"`);
    expect(gone).toBe("404");

    const pgPid = Number((await readFile(path.join(clone, ".cirrus/postgres/postmaster.pid"), "utf8")).split("\n")[0]);
    const ended = await interrupt(first);
    expect(["0", "SIGINT"], first.output()).toContain(ended);
    expect(first.output()).toMatch(/cirrus: stopped/);
    // The embedded Postgres went down with it (its pid file is removed on a clean shutdown).
    expect(existsSync(path.join(clone, ".cirrus/postgres/postmaster.pid"))).toBe(false);
    expect(() => process.kill(pgPid, 0)).toThrow();

    const second = await start();
    console.log(`npm start, warm (data reused): ready in ${second.seconds.toFixed(1)} s`);
    const out2 = second.output();
    expect(out2).not.toMatch(/initialised/);
    expect(out2).not.toMatch(/✓ flavors: created/);
    expect(out2).not.toMatch(/✓ network: created/);
    expect(out2).not.toMatch(/✓ image: uploaded/);
    const flavors = await sh(`curl -sf -H "X-Auth-Token: $OS_TOKEN" "$CIRRUS_URL/v2.1/flavors" | jq -c '[.flavors[].name]'`);
    expect(JSON.parse(flavors).sort()).toEqual(["m1.large", "m1.medium", "m1.small", "m1.tiny", "m1.xlarge"]);
    expect(await sh(`curl -sf -H "X-Auth-Token: $OS_TOKEN" "$CIRRUS_URL/v2.0/networks?name=private" | jq '.networks | length'`)).toBe("1");
    expect(await sh(`curl -sf -H "X-Auth-Token: $OS_TOKEN" "$CIRRUS_URL/v2/images?name=cirrus-test-guest" | jq '[.images[] | select(.status == "active")] | length'`)).toBe("1");
    // The deleted server stays deleted.
    expect(await sh(`curl -s -o /dev/null -w "%{http_code}" -H "X-Auth-Token: $OS_TOKEN" "$CIRRUS_URL/v2.1/servers/${id}"`)).toBe("404");
    expect(["0", "SIGINT"]).toContain(await interrupt(second));
    expect(second.output()).toMatch(/cirrus: stopped/);
  }, 400_000);
});
