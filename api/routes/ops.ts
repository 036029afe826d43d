/**
 * Operations endpoints, served without a token: GET /healthz (the process is alive),
 * GET /readyz (Postgres and Redis answer; 503 otherwise) and GET /metrics (Prometheus).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { Redis } from "ioredis";
import type { Db } from "../../common/db/knex.js";
import { apiMetrics, METRICS_CONTENT_TYPE, type ApiMetrics } from "../../common/metrics.js";
import { runChecks, type Check } from "../../common/ops-server.js";

export interface OpsDeps {
  /** Redis for readiness, queue depths, heartbeats and what agents push. */
  redis?: Redis;
  queuePrefix?: string;
  queue?: (name: string) => { getJobCounts(...types: string[]): Promise<Record<string, number>> };
}

const Health = Type.Object(
  {
    status: Type.Union([Type.Literal("ok"), Type.Literal("unavailable")]),
    service: Type.String(),
    checks: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Per dependency: "ok" or "error: <why>"' })),
  },
  { examples: [{ status: "ok", service: "api", checks: { postgres: "ok", redis: "ok" } }] },
);

/** Records a response's latency by route pattern and status (the API's onResponse hook, api/app.ts). */
export function observeResponse(metrics: ApiMetrics, req: FastifyRequest, reply: FastifyReply, elapsedMs: number): void {
  metrics.httpDuration.observe(req.method, req.routeOptions.url ?? "unmatched", reply.statusCode, elapsedMs / 1000);
}

export function opsRoutes(metrics: ApiMetrics, db: Db, ops: OpsDeps): FastifyPluginAsync {
  return async (app) => {
    const checks: Record<string, Check> = { postgres: () => db.raw("select 1") };
    if (ops.redis) {
      const redis = ops.redis;
      checks.redis = () => redis.ping();
    }
    app.get(
      "/healthz",
      {
        config: { public: true },
        schema: { summary: "Liveness: the API process answers", tags: ["operations"], security: [], response: { 200: Health } },
      },
      async () => ({ status: "ok" as const, service: "api" }),
    );
    app.get(
      "/readyz",
      {
        config: { public: true },
        schema: {
          summary: "Readiness: Postgres and Redis answer",
          description: "503 while a dependency does not answer within 2 s; a load balancer takes the replica out of rotation then.",
          tags: ["operations"],
          security: [],
          response: { 200: Health, 503: { ...Health, description: "A dependency does not answer" } },
        },
      },
      async (_req, reply) => {
        const { ok, checks: result } = await runChecks(checks);
        return reply.status(ok ? 200 : 503).send({ status: ok ? "ok" : "unavailable", service: "api", checks: result });
      },
    );
    app.get(
      "/metrics",
      {
        config: { public: true },
        schema: {
          summary: "Prometheus metrics",
          description:
            "Prometheus text exposition: HTTP latency by route and status (this replica), and cluster-wide boots by outcome, time from accept to ACTIVE, scheduling latency, queue depths, servers by status, agent spawn duration by driver and heartbeat age per host.",
          tags: ["operations"],
          security: [],
          produces: ["text/plain"],
          response: { 200: { description: "Prometheus text format 0.0.4", content: { "text/plain": { schema: Type.String() } } } },
        },
      },
      async (_req, reply) => reply.type(METRICS_CONTENT_TYPE).send(await metrics.text()),
    );
  };
}

export { apiMetrics };
