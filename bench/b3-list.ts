/**
 * B3: `GET /v2.1/servers/detail?limit=1000` (first page, and a page deep in the list by
 * marker), `GET /v2.1/servers?limit=1000` and `GET /v2.1/servers/{id}` latency with
 * 10,000 and 100,000 servers in one project, asked by an admin (so host_status and the
 * extended attributes are rendered too). Servers are seeded in bulk SQL from the rows of
 * one real boot (bench/lib/seed-servers.ts).
 */
import os from "node:os";
import { fileURLToPath } from "node:url";
import { startApiProcess, type ApiProcess } from "./lib/api-process.js";
import { bootBody, createBootFixtures } from "./lib/boot-fixtures.js";
import { round, runLoad, type LoadResult } from "./lib/http-load.js";
import { TARGETS, type FigureRow } from "./lib/figures.js";
import { CpuMeter } from "./lib/proc-cpu.js";
import { seedComputeHosts, seedServers } from "./lib/seed-servers.js";

const DATABASE = "cirrus_bench_b3";
const HOSTS = 100;

interface Figure extends LoadResult {
  cpuMsPerRequest: Record<string, number>;
}

async function measure(api: ApiProcess, cpu: CpuMeter, total: number, path: (i: number) => string): Promise<Figure> {
  await runLoad({ baseUrl: api.apiUrl, headers: api.headers, clients: 1, total: Math.min(5, total), expectStatus: 200, next: (i) => ({ method: "GET", path: path(i) }) });
  await cpu.start();
  const result = await runLoad({ baseUrl: api.apiUrl, headers: api.headers, clients: 1, total, expectStatus: 200, next: (i) => ({ method: "GET", path: path(i) }) });
  const used = await cpu.stop();
  return { ...result, cpuMsPerRequest: Object.fromEntries(Object.entries(used).map(([role, ms]) => [role, round(ms / total, 3)])) };
}

/** The id at this position of the default order (created_at desc, id desc), as a client paging there would hold it. */
async function markerAt(api: ApiProcess, position: number): Promise<string> {
  const row = await api
    .db("instances")
    .where("project_id", "admin")
    .whereNot("vm_state", "deleted")
    .orderBy([{ column: "created_at", order: "desc" }, { column: "id", order: "desc" }])
    .offset(position)
    .first("id");
  return row.id as string;
}

export async function run(opts: { quick: boolean; profileDir?: string }): Promise<Record<string, unknown>> {
  const sizes = opts.quick ? [10_000] : [10_000, 100_000];
  const pageRequests = opts.quick ? 10 : 30;
  const showRequests = opts.quick ? 200 : 1000;
  const api = await startApiProcess({ database: DATABASE, ...(opts.profileDir ? { cpuProfileDir: opts.profileDir } : {}) });
  const figures: Record<string, unknown> = {};
  try {
    const fixtures = await createBootFixtures(api.apiUrl, api.headers);
    const booted = await fetch(`${api.apiUrl}/v2.1/servers`, {
      method: "POST",
      headers: { ...api.headers, "content-type": "application/json" },
      body: bootBody(fixtures, "template"),
    });
    if (booted.status !== 202) throw new Error(`template boot → ${booted.status} ${await booted.text()}`);
    const template = { instanceId: ((await booted.json()) as { server: { id: string } }).server.id, subnetId: fixtures.subnetId, baseAddress: fixtures.subnetBase };
    await seedComputeHosts(api.db, HOSTS);
    const cpu = new CpuMeter(api.db, DATABASE, { api: api.pid });
    let have = 1;
    for (const size of sizes) {
      const seedStart = Date.now();
      await seedServers(api.db, template, size - have, { hosts: HOSTS });
      const seedSeconds = (Date.now() - seedStart) / 1000;
      have = size;
      const ids: string[] = (await api.db("instances").select("id").orderByRaw("random()").limit(1000)).map((r: { id: string }) => r.id);
      const deep = Math.floor(size * 0.9);
      const marker = await markerAt(api, deep);
      figures[`servers${size}`] = {
        seedSeconds: round(seedSeconds, 1),
        machineLoadAverage1m: round(os.loadavg()[0]!),
        detailFirstPage: await measure(api, cpu, pageRequests, () => "/v2.1/servers/detail?limit=1000"),
        detailPageAtMarker: { position: deep, ...(await measure(api, cpu, pageRequests, () => `/v2.1/servers/detail?limit=1000&marker=${marker}`)) },
        summaryFirstPage: await measure(api, cpu, pageRequests, () => "/v2.1/servers?limit=1000"),
        show: await measure(api, cpu, showRequests, (i) => `/v2.1/servers/${ids[i % ids.length]}`),
      };
    }
  } finally {
    await api.stop();
  }
  return {
    bench: "B3 list and show latency",
    setup:
      `one API process, servers seeded in bulk SQL from one real boot's rows (ACTIVE, one port and fixed IP each, metadata, flavor and image snapshots) ` +
      `in one project over ${HOSTS} compute hosts; requests from one client as an admin (host_status and extended attributes rendered); ` +
      `pages of ${pageRequests} requests, show over ${showRequests} random servers, after 5 warm-up requests each`,
    ...figures,
    target: "detail p50 <= 100 ms for a 1,000-server page out of 100,000",
  };
}

/** The rows of docs/benchmarks.md's table. */
export function figures(result: Record<string, unknown>): FigureRow[] {
  const rows: FigureRow[] = [];
  for (const [key, value] of Object.entries(result)) {
    const m = /^servers(\d+)$/.exec(key);
    if (!m) continue;
    const size = Number(m[1]).toLocaleString("en");
    const f = value as Record<string, Figure & { position?: number }>;
    const v = (x: Figure) => `p50 ${x.p50Ms} ms, p99 ${x.p99Ms} ms (CPU: api ${x.cpuMsPerRequest.api} ms, postgres ${x.cpuMsPerRequest.postgres} ms)`;
    const big = Number(m[1]) >= 100_000;
    rows.push({ id: "B3", figure: `${size} servers: GET /servers/detail?limit=1000, first page`, value: v(f.detailFirstPage!), ...(big ? { target: TARGETS.B3 } : {}) });
    rows.push({ id: "B3", figure: `${size} servers: detail page at marker (server ${f.detailPageAtMarker!.position!.toLocaleString("en")})`, value: v(f.detailPageAtMarker!) });
    rows.push({ id: "B3", figure: `${size} servers: GET /servers?limit=1000`, value: v(f.summaryFirstPage!) });
    rows.push({ id: "B3", figure: `${size} servers: GET /servers/{id}`, value: v(f.show!) });
  }
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const profileAt = process.argv.indexOf("--cpu-prof");
  const profileDir = profileAt > 0 ? process.argv[profileAt + 1] : undefined;
  console.log(JSON.stringify(await run({ quick: process.argv.includes("--quick"), ...(profileDir ? { profileDir } : {}) }), null, 2));
}
