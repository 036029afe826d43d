/**
 * B0, the bound: this machine's Postgres single-row commit rate (pgbench, one autocommitted
 * INSERT per transaction, from 1, 8 and 16 clients; an insert loop through pg when
 * pgbench is missing), and how many commits one boot costs end to end, counted through
 * the real stack (API, scheduler, simulated hosts): write transactions of the bench
 * database from its WAL (bench/lib/wal-transactions.ts), and every commit Postgres counts
 * (read-only ones included), each less what the idle stack commits in the same time.
 * Boots/s the database allows = commit rate / write commits per boot.
 */
import { readdir, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { createDb, dropDatabase, ensureDatabase } from "../common/db/knex.js";
import { BENCH_DATABASE_ROOT } from "./lib/api-process.js";
import { median, round, runLoad } from "./lib/http-load.js";
import type { FigureRow } from "./lib/figures.js";
import { pgbenchAvailable, pgbenchTps } from "./lib/pgbench.js";
import { waitForCounts } from "./lib/server-counts.js";
import { walMark, writeTransactionsSince } from "./lib/wal-transactions.js";
import { repoRoot, startStack } from "./stack.js";

const INSERT_TABLE = "CREATE TABLE commit_probe (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), payload text NOT NULL)";
const INSERT_ONE = "INSERT INTO commit_probe (payload) VALUES ('cirrus b0');\n";

/** Without pgbench: the same autocommitted insert from `clients` pg connections for `seconds`. */
async function insertLoopTps(databaseUrl: string, clients: number, seconds: number): Promise<number> {
  const conns = await Promise.all(Array.from({ length: clients }, async () => {
    const c = new pg.Client({ connectionString: databaseUrl });
    await c.connect();
    return c;
  }));
  let done = 0;
  const until = Date.now() + seconds * 1000;
  const started = Date.now();
  await Promise.all(conns.map(async (c) => {
    while (Date.now() < until) {
      await c.query(INSERT_ONE);
      done++;
    }
  }));
  const tps = done / ((Date.now() - started) / 1000);
  await Promise.all(conns.map((c) => c.end()));
  return tps;
}

async function commitRates(quick: boolean) {
  const url = new URL(BENCH_DATABASE_ROOT);
  url.pathname = "/cirrus_bench_b0";
  const databaseUrl = url.toString();
  await dropDatabase(databaseUrl);
  await ensureDatabase(databaseUrl);
  const db = createDb(databaseUrl, { min: 0, max: 1 });
  await db.raw(INSERT_TABLE);
  await db.destroy();
  const usePgbench = await pgbenchAvailable();
  const seconds = quick ? 3 : 10;
  const repeats = quick ? 1 : 3;
  const tpsPerRun: Record<string, number[]> = {};
  try {
    for (const clients of [1, 8, 16]) {
      for (let r = 0; r < repeats; r++) {
        const tps = usePgbench ? await pgbenchTps(databaseUrl, INSERT_ONE, clients, seconds) : await insertLoopTps(databaseUrl, clients, seconds);
        (tpsPerRun[`clients${clients}`] ??= []).push(round(tps, 0));
      }
    }
  } finally {
    await dropDatabase(databaseUrl);
  }
  const tpsByClients = Object.fromEntries(Object.entries(tpsPerRun).map(([k, v]) => [k, median(v)]));
  return { tool: usePgbench ? "pgbench" : "insert loop through pg", seconds, repeats, tpsByClients, tpsPerRun, machineLoadAverage1m: round(os.loadavg()[0]!) };
}

/** Boots `servers` through the real stack and counts the commits they cost. */
async function commitsPerBoot(quick: boolean) {
  const servers = quick ? 100 : 500;
  const hosts = 20;
  const idleSeconds = quick ? 5 : 10;
  const stack = await startStack({ hosts });
  try {
    const f = stack.fixtures!;
    const stats = async () => {
      // Backends flush their statistics about once a second.
      await new Promise((r) => setTimeout(r, 1100));
      await stack.db.raw("SELECT pg_stat_clear_snapshot()");
      const { rows } = await stack.db.raw("SELECT xact_commit::bigint AS commits FROM pg_stat_database WHERE datname = current_database()");
      return Number(rows[0].commits);
    };
    // What the idle stack commits (heartbeats, relay polls, host-state refreshes), per second.
    const idleStart = Date.now();
    const idleMark = await walMark(stack.db, stack.databaseUrl);
    const idleCommits0 = await stats();
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idleCommits = (await stats()) - idleCommits0;
    const idleWrites = await writeTransactionsSince(stack.db, idleMark);
    const idleSec = (Date.now() - idleStart) / 1000;

    const mark = await walMark(stack.db, stack.databaseUrl);
    const commits0 = await stats();
    const started = Date.now();
    const body = (i: number) =>
      JSON.stringify({ server: { name: `b0-${i}`, flavorRef: f.flavorRef, imageRef: f.imageRef, networks: [{ uuid: f.networkId }] } });
    const posts = await runLoad({
      baseUrl: stack.apiUrl,
      headers: { "x-auth-token": stack.headers["x-auth-token"]! },
      clients: 16,
      total: servers,
      expectStatus: 202,
      next: (i) => ({ method: "POST", path: "/v2.1/servers", body: body(i) }),
    });
    const { ms, counts } = await waitForCounts(stack.db, started, (c) => c.active + c.error >= servers, {
      everyMs: 200,
      timeoutMs: 300_000,
      what: `${servers} servers ACTIVE`,
    });
    const commits = (await stats()) - commits0;
    const writes = await writeTransactionsSince(stack.db, mark);
    const sec = (Date.now() - started) / 1000;
    const perBoot = (n: number, idle: number) => round((n - (idle / idleSec) * sec) / servers, 2);
    return {
      servers,
      hosts,
      active: counts.active,
      error: counts.error,
      secondsToActive: round(ms / 1000, 2),
      bootsPerSec: round(servers / (ms / 1000), 1),
      unexpectedPosts: posts.unexpected,
      writeCommitsPerBoot: writes === null || idleWrites === null ? null : perBoot(writes, idleWrites),
      allCommitsPerBoot: perBoot(commits, idleCommits),
      idleWriteCommitsPerSec: idleWrites === null ? null : round(idleWrites / idleSec, 1),
      idleCommitsPerSec: round(idleCommits / idleSec, 1),
    };
  } finally {
    await stack.stop();
  }
}

/** Boots/s of the newest full B2 result on file, by scale, if any. */
async function newestB2(): Promise<{ file: string; bootsPerSec: Record<string, number> } | null> {
  const dir = path.join(repoRoot, "bench", "results");
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith(".json") && !f.includes("quick") && !f.includes("profile")).sort().reverse();
  for (const file of files) {
    const data = JSON.parse(await readFile(path.join(dir, file), "utf8")) as { results?: Record<string, Record<string, { B2?: { bootsPerSec?: number } }>> };
    const b2 = data.results?.["b2-boot-delete"];
    if (!b2) continue;
    const bootsPerSec: Record<string, number> = {};
    for (const [scale, r] of Object.entries(b2)) if (typeof r?.B2?.bootsPerSec === "number") bootsPerSec[scale] = r.B2.bootsPerSec;
    if (Object.keys(bootsPerSec).length) return { file, bootsPerSec };
  }
  return null;
}

export async function run(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const rates = await commitRates(opts.quick);
  const boot = await commitsPerBoot(opts.quick);
  const commitRate = rates.tpsByClients.clients16!;
  const perBoot = boot.writeCommitsPerBoot ?? boot.allCommitsPerBoot;
  const bound = round(commitRate / perBoot, 0);
  const b2 = await newestB2();
  return {
    bench: "B0 the database bound",
    singleRowCommits: rates,
    perBoot: boot,
    bootsPerSecTheDatabaseAllows: bound,
    boundFrom: `${commitRate} single-row commits/s (16 clients) / ${perBoot} ${boot.writeCommitsPerBoot === null ? "commits (all, WAL not readable)" : "write commits"} per boot`,
    thisRunFractionOfBound: round(boot.bootsPerSec / bound, 3),
    ...(b2
      ? {
          newestB2: b2,
          newestB2FractionOfBound: Object.fromEntries(Object.entries(b2.bootsPerSec).map(([scale, v]) => [scale, round(v / bound, 3)])),
        }
      : {}),
  };
}

/** The rows of docs/benchmarks.md's table. */
export function figures(result: Record<string, unknown>): FigureRow[] {
  const rates = result.singleRowCommits as Awaited<ReturnType<typeof commitRates>>;
  const boot = result.perBoot as Awaited<ReturnType<typeof commitsPerBoot>>;
  const tps = Object.entries(rates.tpsByClients).map(([k, v]) => `${k.replace("clients", "")} client(s) ${v}/s`).join(", ");
  const rows: FigureRow[] = [
    { id: "B0", figure: `Postgres single-row commits (${rates.tool}, median of ${rates.repeats} × ${rates.seconds} s)`, value: tps },
    {
      id: "B0",
      figure: `commits per boot, end to end (${boot.servers} boots over ${boot.hosts} simulated hosts)`,
      value: `${boot.writeCommitsPerBoot ?? "?"} write commits (from the WAL), ${boot.allCommitsPerBoot} commits including read-only`,
    },
    { id: "B0", figure: "boots/s the database allows (commit rate at 16 clients / write commits per boot)", value: String(result.bootsPerSecTheDatabaseAllows) },
  ];
  const fraction = result.newestB2FractionOfBound as Record<string, number> | undefined;
  // B0 runs before B2 in a full run: the B2 it compares with is the one on file before this run.
  const from = (result.newestB2 as { file?: string } | undefined)?.file;
  if (fraction) rows.push({ id: "B0", figure: `B2 boots/s on file before this run (${from ?? "?"}) as a fraction of that`, value: Object.entries(fraction).map(([k, v]) => `${k}: ${v}`).join(", ") });
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await run({ quick: process.argv.includes("--quick") }), null, 2));
}
