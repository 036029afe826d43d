/**
 * The small HTTP listener of processes that serve no API (scheduler, compute agent):
 * GET /healthz (alive), GET /readyz (its dependencies answer, else 503) and
 * GET /metrics (Prometheus text). Started only when CIRRUS_METRICS_PORT is set.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { Logger } from "./logger.js";
import { METRICS_CONTENT_TYPE } from "./metrics.js";

export type Check = () => Promise<unknown>;

/** Runs each check with a timeout: {name: "ok" | "error: ..."}, and whether all passed. */
export async function runChecks(checks: Record<string, Check>, timeoutMs = 2000): Promise<{ ok: boolean; checks: Record<string, string> }> {
  const out: Record<string, string> = {};
  await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          check(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
        out[name] = "ok";
      } catch (err) {
        out[name] = `error: ${(err as Error).message}`;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return { ok: Object.values(out).every((v) => v === "ok"), checks: out };
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

export async function startOpsServer(opts: {
  host: string;
  port: number;
  service: string;
  registry: Registry;
  checks: Record<string, Check>;
  log: Logger;
}): Promise<OpsServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { "content-type": type });
      res.end(body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, "text/plain", "method not allowed\n");
    if (url === "/healthz") return send(200, "application/json", JSON.stringify({ status: "ok", service: opts.service }));
    if (url === "/readyz") {
      void runChecks(opts.checks).then(({ ok, checks }) =>
        send(ok ? 200 : 503, "application/json", JSON.stringify({ status: ok ? "ok" : "unavailable", service: opts.service, checks })),
      );
      return;
    }
    if (url === "/metrics") {
      void opts.registry.metrics().then(
        (text) => send(200, METRICS_CONTENT_TYPE, text),
        (err) => send(500, "text/plain", String(err)),
      );
      return;
    }
    send(404, "text/plain", "not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  opts.log.info({ host: opts.host, port }, "metrics and health listener started");
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
