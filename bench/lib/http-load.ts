/**
 * A lean HTTP load generator for the API benches: one keep-alive connection per client,
 * each client sending its next request when the previous answer is read, latencies in
 * milliseconds. Lean because it shares two cores with the server: by default each
 * connection is a plain socket (raw-http-client.ts); BENCH_HTTP_CLIENT=node uses
 * node:http's client instead, as the benches did before 27 November, for comparison.
 */
import http from "node:http";
import { RawHttpConnection, formatRequest } from "./raw-http-client.js";

export interface LoadRequest {
  method: string;
  path: string;
  body?: string;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Status codes other than the expected one, with counts. */
  unexpected: Record<string, number>;
  /** Bytes of the last response body, to show how big a page is. */
  lastBodyBytes: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const at = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[at]!;
}

export const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);

export const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

function send(agent: http.Agent, base: URL, headers: Record<string, string>, r: LoadRequest): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: base.hostname,
        port: base.port,
        method: r.method,
        path: r.path,
        headers: { ...headers, ...(r.body !== undefined ? { "content-type": "application/json", "content-length": Buffer.byteLength(r.body) } : {}) },
      },
      (res) => {
        let bytes = 0;
        res.on("data", (chunk: Buffer) => (bytes += chunk.length));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(r.body);
  });
}

/** Sends `total` requests made by `next(i)` from `clients` concurrent clients. */
export async function runLoad(opts: {
  baseUrl: string;
  headers: Record<string, string>;
  clients: number;
  total: number;
  expectStatus: number;
  next: (i: number) => LoadRequest;
}): Promise<LoadResult> {
  const base = new URL(opts.baseUrl);
  const viaNodeHttp = process.env.BENCH_HTTP_CLIENT === "node";
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.clients });
  const connections: RawHttpConnection[] = [];
  const latencies: number[] = [];
  const unexpected: Record<string, number> = {};
  let issued = 0;
  let lastBodyBytes = 0;
  const started = process.hrtime.bigint();
  const client = async () => {
    const connection = viaNodeHttp ? null : new RawHttpConnection(base.hostname, Number(base.port));
    if (connection) connections.push(connection);
    while (issued < opts.total) {
      const i = issued++;
      const r = opts.next(i);
      const request = connection ? formatRequest(base.host, r.method, r.path, opts.headers, r.body) : null;
      const t0 = process.hrtime.bigint();
      const { status, bytes } = await (connection ? connection.send(request!) : send(agent, base, opts.headers, r));
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      lastBodyBytes = bytes;
      if (status !== opts.expectStatus) unexpected[status] = (unexpected[status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: opts.clients }, client));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  agent.destroy();
  for (const c of connections) c.close();
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    seconds: round(seconds, 3),
    requestsPerSec: round(latencies.length / seconds, 1),
    p50Ms: round(percentile(latencies, 50)),
    p99Ms: round(percentile(latencies, 99)),
    maxMs: round(latencies[latencies.length - 1] ?? NaN),
    unexpected,
    lastBodyBytes,
  };
}

/** Several runs of one measurement: each figure is the median over the runs; the per-run p50s are kept. */
export function medianOfRuns(runs: LoadResult[]) {
  const of = (pick: (r: LoadResult) => number) => round(median(runs.map(pick)));
  return {
    requests: runs[0]?.requests ?? 0,
    repeats: runs.length,
    requestsPerSec: of((r) => r.requestsPerSec),
    p50Ms: of((r) => r.p50Ms),
    p99Ms: of((r) => r.p99Ms),
    maxMs: of((r) => r.maxMs),
    p50MsPerRun: runs.map((r) => r.p50Ms),
    unexpected: runs.reduce<Record<string, number>>((sum, r) => {
      for (const [status, n] of Object.entries(r.unexpected)) sum[status] = (sum[status] ?? 0) + n;
      return sum;
    }, {}),
    responseBytes: runs[runs.length - 1]?.lastBodyBytes ?? 0,
  };
}
