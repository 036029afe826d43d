/**
 * Builds the Fastify app from its dependencies. server.ts only starts it; tests build
 * the same app against real Postgres and Redis.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import swagger from "@fastify/swagger";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { Config } from "../common/config.js";
import type { Db } from "../common/db/knex.js";
import { errorBody } from "../common/errors.js";
import { isRequestId, newRequestId } from "../common/ids.js";
import type { Logger } from "../common/logger.js";
import type { Authenticator } from "./auth/dev-auth.js";
import { installErrorHandlers } from "./errors.js";
import { validatorCompiler } from "./validation.js";
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
import "./context.js";

export interface AppDeps {
  db: Db;
  /** Request/reply with agents (console output); without it those reads answer 503. */
  rpc?: ComputeRpc;
  config: Pick<Config, "publicUrl" | "imageStoreDir" | "serviceDownTimeSec"> & Partial<Pick<Config, "enforceQuotas">>;
  auth: Authenticator;
  logger?: Logger;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** Served without a token (version documents, the OpenAPI document). */
    public?: boolean;
  }
}

export type App = FastifyInstance;

export async function buildApp(deps: AppDeps) {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger as unknown as FastifyBaseLogger } : { logger: false }),
    genReqId: (req) => {
      const given = req.headers["x-openstack-request-id"];
      return typeof given === "string" && isRequestId(given) ? given : newRequestId();
    },
    routerOptions: { ignoreTrailingSlash: true },
    rewriteUrl: (req) => rewriteServicePaths(req.url ?? "/"),
    bodyLimit: 1024 * 1024,
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
  });

  app.setValidatorCompiler(validatorCompiler());
  installErrorHandlers(app);

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
    const ctx = await deps.auth(req);
    if (!ctx) {
      reply.header("www-authenticate", 'Bearer realm="cirrus", Keystone uri="none"');
      return reply.status(401).send(errorBody(401, "The request you have made requires authentication."));
    }
    req.ctx = ctx;
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

  return app;
}

export interface RouteDeps {
  db: Db;
  config: AppDeps["config"];
  rpc?: ComputeRpc;
}
