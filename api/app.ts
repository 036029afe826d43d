/**
 * Builds the Fastify app from its dependencies. server.ts only starts it; tests build
 * the same app against real Postgres and Redis.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from "fastify";
import swagger from "@fastify/swagger";
import type { Redis } from "ioredis";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { Config } from "../common/config.js";
import type { Db } from "../common/db/knex.js";
import { errorBody } from "../common/errors.js";
import { isRequestId, newRequestId } from "../common/ids.js";
import type { Logger } from "../common/logger.js";
import type { Authenticator } from "./auth/dev-auth.js";
import { AuthFailure, invalidTokenChallenge } from "./auth/failure.js";
import { enforce, ruleOfRoute } from "./policy.js";
import { installErrorHandlers } from "./errors.js";
import { SLOW_CLIENT_LIMITS, frameworkErrors, installRequestLimits } from "./limits.js";
import { validatorCompiler } from "./validation.js";
import { RedisRateLimiter, type Count } from "./rate-limit-store.js";
import { MAX_VERSION, MIN_VERSION, negotiate } from "./microversion.js";
import { versionRoutes } from "./routes/versions.js";
import { flavorRoutes } from "./routes/flavors.js";
import { imageRoutes } from "./routes/images.js";
import { networkRoutes } from "./routes/networks.js";
import { serverRoutes } from "./routes/servers.js";
import { serverActionRoutes } from "./routes/server-actions.js";
import { serverMetadataRoutes } from "./routes/server-metadata.js";
import type { ComputeRpc } from "./rpc.js";
import { hypervisorRoutes } from "./routes/hypervisors.js";
import { serviceRoutes } from "./routes/services.js";
import { extensionRoutes } from "./routes/extensions.js";
import { rewriteServicePaths, serviceRootRoutes } from "./routes/service-roots.js";
import { enrichOpenApi } from "./openapi-enrich.js";
import { apiMetrics, observeResponse, opsRoutes, type OpsDeps } from "./routes/ops.js";
import type { RequestContext } from "./context.js";
import "./context.js";

export interface AppDeps {
  db: Db;
  /** Request/reply with agents (console output); without it those reads answer 503. */
  rpc?: ComputeRpc;
  config: Pick<Config, "publicUrl" | "imageStoreDir" | "serviceDownTimeSec"> & Partial<Pick<Config, "enforceQuotas">>;
  auth: Authenticator;
  logger?: Logger;
  /** Overrides of the slow-client timeouts (ms), for tests; api/limits.ts has the defaults. */
  slowClientLimits?: { connectionTimeout?: number; requestTimeout?: number };
  /** Per-project rate limiting of mutating calls lives in this Redis; without it there is none. */
  redis?: Redis;
  /** Mutating calls a project may make per window (defaults: 600 per 60 s); max 0 turns limiting off. */
  rateLimit?: { max: number; windowSec: number; nameSpace?: string };
  /** /readyz, /metrics: queue depths need `queue`; Redis checks use ops.redis, else `redis`. */
  ops?: OpsDeps;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** Served without a token (version documents, the OpenAPI document). */
    public?: boolean;
    /** The policy rule of the route (api/policy.ts ROUTE_RULES names it for every route). */
    policy?: string;
  }
}

export type App = FastifyInstance;

export async function buildApp(deps: AppDeps) {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger as unknown as FastifyBaseLogger } : { logger: false }),
    // One access line per request, written when it is answered (below), as Nova's API logs
    // it; Fastify's own pair (received, completed) is two synchronous log writes a request.
    disableRequestLogging: true,
    genReqId: (req) => {
      const given = req.headers["x-openstack-request-id"];
      return typeof given === "string" && isRequestId(given) ? given : newRequestId();
    },
    routerOptions: { ignoreTrailingSlash: true },
    rewriteUrl: (req) => rewriteServicePaths(req.url ?? "/"),
    bodyLimit: 1024 * 1024,
    // Slow clients are cut off (api/limits.ts).
    connectionTimeout: deps.slowClientLimits?.connectionTimeout ?? SLOW_CLIENT_LIMITS.connectionTimeout,
    requestTimeout: deps.slowClientLimits?.requestTimeout ?? SLOW_CLIENT_LIMITS.requestTimeout,
    http: SLOW_CLIENT_LIMITS.http,
    frameworkErrors,
  }).withTypeProvider<TypeBoxTypeProvider>();

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Cirrus compute API",
        version: "0.1.0",
        description:
          "An OpenStack-Nova-style compute service. Compute API v2.1 under /v2.1, the image API (Glance v2 shapes) under /v2, the network API (Neutron v2.0 shapes) under /v2.0.",
      },
      components: {
        securitySchemes: {
          authToken: { type: "apiKey", in: "header", name: "X-Auth-Token" },
          bearer: { type: "http", scheme: "bearer" },
        },
      },
      security: [{ authToken: [] }, { bearer: [] }],
    },
    transformObject: (doc) => enrichOpenApi(("openapiObject" in doc ? doc.openapiObject : doc.swaggerObject) as Record<string, any>, deps.config.publicUrl),
  });

  app.setValidatorCompiler(validatorCompiler());
  const limit = deps.rateLimit ?? { max: 600, windowSec: 60 };
  const limiter = deps.redis && limit.max > 0 ? new RedisRateLimiter(deps.redis, limit.nameSpace ?? "cirrus-ratelimit-", limit.max, limit.windowSec * 1000) : null;
  installErrorHandlers(app);
  installRequestLimits(app);
  const metrics = apiMetrics({ db: deps.db, ...opsOf(deps) });

  // The access line and the latency histogram, in one hook that is not async (an async hook
  // costs a promise and a turn of the microtask queue per request).
  app.addHook("onResponse", (req, reply, done) => {
    const elapsedMs = reply.elapsedTime;
    req.log.info({ method: req.method, url: req.url, statusCode: reply.statusCode, responseTime: elapsedMs }, "request completed");
    observeResponse(metrics, req, reply, elapsedMs);
    done();
  });

  app.addHook("onRequest", async (req, reply) => {
    reply.header("x-openstack-request-id", req.id);
    reply.header("x-compute-request-id", req.id);
    if (req.url.startsWith("/v2.1")) {
      const negotiated = negotiate(req.headers);
      const version = negotiated.ok ? negotiated.version : MIN_VERSION;
      reply.header("openstack-api-version", `compute ${version}`);
      reply.header("x-openstack-nova-api-version", version);
      reply.header("vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version");
      if (!negotiated.ok && negotiated.malformed) {
        return reply
          .status(400)
          .send(errorBody(400, `API Version String ${negotiated.requested} is of invalid format. Must be of format MajorNum.MinorNum.`));
      }
      if (!negotiated.ok) {
        return reply
          .status(406)
          .send(errorBody(406, `Version ${negotiated.requested} is not supported by the API. Minimum is ${MIN_VERSION} and maximum is ${MAX_VERSION}.`));
      }
    }
    if (req.routeOptions.config?.public) return;
    let ctx: RequestContext | null;
    try {
      ctx = await deps.auth(req);
    } catch (err) {
      if (!(err instanceof AuthFailure)) throw err;
      reply.header("www-authenticate", invalidTokenChallenge(err.message));
      return reply.status(401).send(errorBody(401, `Authentication failed: ${err.message}`));
    }
    if (!ctx) {
      reply.header("www-authenticate", 'Bearer realm="cirrus", Keystone uri="none"');
      return reply.status(401).send(errorBody(401, "The request you have made requires authentication."));
    }
    req.ctx = ctx;
    // The route's own rule (api/policy.ts); a route that names none is admin-only.
    if (req.routeOptions.url !== undefined) enforce(ctx, ruleOfRoute(req.method, req.routeOptions.url));
    if (limiter && MUTATING.has(req.method)) {
      const counted = countedHit(limiter, `project:${ctx.projectId}`);
      const count = counted instanceof Promise ? await counted : counted; // no await when decided here
      if (count !== null && count.current > limit.max) {
        const after = String(Math.max(1, Math.ceil(count.ttl / 1000)));
        reply.header("retry-after", after);
        return reply.status(429).send({
          overLimit: { code: 429, message: "This request was rate-limited.", retryAfter: after },
        });
      }
    }
  });

  const routeDeps: RouteDeps = { db: deps.db, config: deps.config, ...(deps.rpc ? { rpc: deps.rpc } : {}) };
  await app.register(versionRoutes, routeDeps);
  await app.register(flavorRoutes, routeDeps);
  await app.register(imageRoutes, routeDeps);
  await app.register(networkRoutes, routeDeps);
  await app.register(serverRoutes, routeDeps);
  await app.register(serverActionRoutes, routeDeps);
  await app.register(serverMetadataRoutes, routeDeps);
  await app.register(hypervisorRoutes, routeDeps);
  await app.register(serviceRoutes, routeDeps);
  await app.register(extensionRoutes, routeDeps);
  await app.register(serviceRootRoutes, routeDeps);

  app.get("/openapi.json", { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
  await app.register(opsRoutes(metrics, deps.db, opsOf(deps)));
  // The interactive reference; its assets come from the npm package (no CDN).
  const docs = lazyDocs(app);
  for (const url of ["/docs", "/docs/*"]) {
    app.route({
      method: ["GET", "HEAD"],
      url,
      config: { public: true },
      schema: { hide: true },
      handler: async (req, reply) => {
        const res = await (await docs()).inject({ method: req.method as "GET" | "HEAD", url: req.url, headers: req.headers });
        for (const [name, value] of Object.entries(res.headers)) {
          if (value !== undefined && !HOP_BY_HOP.has(name)) reply.header(name, value);
        }
        return reply.status(res.statusCode).send(res.rawPayload);
      },
    });
  }

  return app;
}

/** The hit's count; null when Redis failed (the call is then let through, not refused). */
function countedHit(limiter: RedisRateLimiter, key: string): Count | null | Promise<Count | null> {
  const count = limiter.hit(key); // never throws: a failure of Redis is a rejection
  return count instanceof Promise ? count.catch(() => null) : count;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "date"]);

/**
 * @fastify/swagger-ui (with @fastify/static, yaml and its routes) costs the API about
 * 10 MB resident (docs/memory.md) for a page few ever open: it is loaded on the first
 * request under /docs, into an app of its own that serves the same OpenAPI document.
 */
function lazyDocs(app: FastifyInstance): () => Promise<FastifyInstance> {
  let built: Promise<FastifyInstance> | null = null;
  const build = async () => {
    const { default: swaggerUi } = await import("@fastify/swagger-ui");
    const docs = Fastify({ logger: false });
    await docs.register(swagger, { mode: "static", specification: { document: app.swagger() as never } });
    await docs.register(swaggerUi, { routePrefix: "/docs", uiConfig: { deepLinking: true, tryItOutEnabled: false } });
    await docs.ready();
    return docs;
  };
  app.addHook("onClose", async () => {
    if (built) await (await built.catch(() => null))?.close();
  });
  return () => {
    built ??= build().catch((err: unknown) => {
      built = null;
      throw err;
    });
    return built;
  };
}

function opsOf(deps: AppDeps): OpsDeps {
  const redis = deps.ops?.redis ?? deps.redis;
  return { ...deps.ops, ...(redis ? { redis } : {}) };
}

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export interface RouteDeps {
  db: Db;
  config: AppDeps["config"];
  rpc?: ComputeRpc;
}
