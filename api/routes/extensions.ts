/**
 * The compute API's other resources: keypairs, server groups, availability zones,
 * aggregates, limits, quota sets, instance actions, flavor extra specs and access.
 */
import type { FastifyPluginAsync } from "fastify";
import type { RouteDeps } from "../app.js";

export const extensionRoutes: FastifyPluginAsync<RouteDeps> = async () => {};
