/**
 * B6 without the whole stack: the API's resident memory, idle and after N boots.
 *
 *   npx tsx bench/mem-api.ts [--tsx] [--no-api-options] [--boots 1000] [--clients 16] [--node-arg=--max-semi-space-size=1]
 *                            [--env CIRRUS_DB_POOL_MAX=10] [--snapshot DIR] [--rate] [--hold SECONDS]
 *
 * Starts one API process (bench/lib/api-process.ts) on a fresh database, with the B2
 * stack's settings (auth dev, quotas and rate limiting off, LOG_LEVEL=warn), reads VmRSS
 * and the V8 heap (from /metrics: prom-client's default metrics) when it answers, after
 * the boot fixtures, and after the boots (posted as B2 posts them, 16 clients). The API
 * runs as `npm start` runs it (compiled into .cirrus/dist, with bin/compiled.ts'
 * API_NODE_OPTIONS); --tsx runs api/server.ts through tsx instead, --no-api-options
 * leaves out the node options (--env CIRRUS_API_HEAP_GROWING_PERCENT=0 the in-process one);
 * --snapshot writes a heap snapshot at the end (the API runs with --heapsnapshot-signal);
 * --rate also times 500 boots from one client before the concurrent ones. No scheduler
 * runs: the boots wait in the schedule queue, as in B1.
 */
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { API_NODE_OPTIONS } from "../bin/compiled.js";
import { startApiProcess } from "./lib/api-process.js";
import { bootBody, createBootFixtures } from "./lib/boot-fixtures.js";
import { runLoad } from "./lib/http-load.js";

function argsOf(argv: string[]) {
  const out = { tsx: false, apiOptions: true, boots: 1000, clients: 16, nodeArgs: [] as string[], env: {} as Record<string, string>, snapshot: "", rate: false, hold: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => (a.includes("=") && !a.startsWith("--node-arg") ? a.slice(a.indexOf("=") + 1) : argv[++i]!);
    if (a === "--tsx") out.tsx = true;
    else if (a === "--no-api-options") out.apiOptions = false;
    else if (a === "--rate") out.rate = true;
    else if (a.startsWith("--boots")) out.boots = Number(value());
    else if (a.startsWith("--clients")) out.clients = Number(value());
    else if (a.startsWith("--hold")) out.hold = Number(value());
    else if (a.startsWith("--node-arg=")) out.nodeArgs.push(a.slice("--node-arg=".length));
    else if (a === "--node-arg") out.nodeArgs.push(argv[++i]!);
    else if (a.startsWith("--snapshot")) out.snapshot = path.resolve(value());
    else if (a.startsWith("--env")) {
      const kv = value();
      out.env[kv.slice(0, kv.indexOf("="))] = kv.slice(kv.indexOf("=") + 1);
    } else throw new Error(`unknown argument ${a}`);
  }
  return out;
}

/** VmRSS, RssAnon, RssFile and the thread count of a process, in MB. */
function procStatus(pid: number) {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? NaN);
  const mb = (key: string) => Math.round(kb(key) / 102.4) / 10;
  return { rss: mb("VmRSS"), hwm: mb("VmHWM"), anon: mb("RssAnon"), file: mb("RssFile"), threads: kb("Threads") };
}

/** utime+stime of a process, in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** Heap figures from prom-client's default metrics, in MB. */
async function heap(apiUrl: string, headers: Record<string, string>) {
  const text = await (await fetch(`${apiUrl}/metrics`, { headers })).text();
  const mb = (re: RegExp) => {
    const m = re.exec(text);
    return m ? Math.round(Number(m[1]) / 104857.6) / 10 : NaN;
  };
  const spaces: Record<string, number> = {};
  for (const m of text.matchAll(/^nodejs_heap_space_size_total_bytes\{[^}]*space="(\w+)"[^}]*\} (\d+)/gm)) spaces[m[1]!] = Math.round(Number(m[2]) / 104857.6) / 10;
  const gc: Record<string, number> = {};
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum\{[^}]*kind="(\w+)"[^}]*\} ([\d.e-]+)/gm)) gc[m[1]!] = Math.round(Number(m[2]) * 1000);
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_count\{[^}]*kind="(\w+)"[^}]*\} (\d+)/gm)) gc[`${m[1]!}N`] = Number(m[2]);
  return {
    gcMs: gc,
    heapTotal: mb(/^nodejs_heap_size_total_bytes(?:\{[^}]*\})? (\d+)/m),
    heapUsed: mb(/^nodejs_heap_size_used_bytes(?:\{[^}]*\})? (\d+)/m),
    external: mb(/^nodejs_external_memory_bytes(?:\{[^}]*\})? (\d+)/m),
    spacesTotal: spaces,
  };
}

const opts = argsOf(process.argv.slice(2));
const nodeArgs = [...(opts.apiOptions && !opts.tsx ? API_NODE_OPTIONS : []), ...opts.nodeArgs, ...(opts.snapshot ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${opts.snapshot}`] : [])];
const api = await startApiProcess({
  database: `cirrus_bench_mem_${process.pid}`,
  runtime: opts.tsx ? "tsx" : "compiled",
  nodeArgs,
  env: { CIRRUS_QUOTA_ENFORCE: "false", CIRRUS_RATE_LIMIT: "0", LOG_LEVEL: "warn", ...opts.env },
});
const report: Record<string, unknown> = { runtime: opts.tsx ? "tsx" : "compiled", nodeArgs, env: opts.env };
const sample = async (label: string) => {
  await new Promise((r) => setTimeout(r, 1000));
  report[label] = { ...procStatus(api.pid), ...(await heap(api.apiUrl, api.headers)) };
  console.error(label, JSON.stringify(report[label]));
};
try {
  await sample("idle");
  const fixtures = await createBootFixtures(api.apiUrl, api.headers);
  const post = (prefix: string) => (i: number) => ({ method: "POST", path: "/v2.1/servers", body: bootBody(fixtures, `${prefix}-${i}`) });
  const load = { baseUrl: api.apiUrl, headers: api.headers, expectStatus: 202 };
  if (opts.rate) {
    await runLoad({ ...load, clients: 1, total: 100, next: post("warm") });
    const c0 = cpuMs(api.pid);
    const seq = await runLoad({ ...load, clients: 1, total: 500, next: post("seq") });
    report.sequential = { requestsPerSec: seq.requestsPerSec, p50Ms: seq.p50Ms, cpuMsPerBoot: Math.round(((cpuMs(api.pid) - c0) / 500) * 100) / 100, unexpected: seq.unexpected };
    console.error("sequential", JSON.stringify(report.sequential));
  }
  const cpu0 = cpuMs(api.pid);
  const r = await runLoad({ ...load, clients: opts.clients, total: opts.boots, next: post("boot") });
  const cpuPerBoot = Math.round(((cpuMs(api.pid) - cpu0) / opts.boots) * 100) / 100;
  report.boots = { n: opts.boots, clients: opts.clients, requestsPerSec: r.requestsPerSec, p50Ms: r.p50Ms, cpuMsPerBoot: cpuPerBoot, unexpected: r.unexpected };
  console.error("boots", JSON.stringify(report.boots));
  await fetch(`${api.apiUrl}/v2.1/servers/detail`, { headers: api.headers }).then((res) => res.text());
  await sample(`after${opts.boots}`);
  if (opts.hold) {
    await new Promise((r) => setTimeout(r, opts.hold * 1000));
    await sample(`idle${opts.hold}s`);
  }
  if (opts.snapshot) {
    process.kill(api.pid, "SIGUSR2");
    await new Promise((r) => setTimeout(r, 8000));
    report.snapshot = readdirSync(opts.snapshot).filter((f) => f.endsWith(".heapsnapshot"));
  }
} finally {
  await api.stop();
}
console.log(JSON.stringify(report, null, 1));
