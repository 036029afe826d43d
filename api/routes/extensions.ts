/**
 * The compute API's other resources: keypairs, server groups, availability zones,
 * aggregates, limits, quota sets, instance actions, flavor extra specs and access,
 * and enabling/disabling compute services.
 */
import type { FastifyPluginAsync } from "fastify";
import type { RouteDeps } from "../app.js";
import { aggregateRoutes } from "./aggregates.js";
import { availabilityZoneRoutes } from "./availability-zones.js";
import { flavorExtraRoutes } from "./flavor-extras.js";
import { instanceActionRoutes } from "./instance-actions.js";
import { keypairRoutes } from "./keypairs.js";
import { quotaRoutes } from "./quota-sets.js";
import { serverGroupRoutes } from "./server-groups.js";
import { serviceUpdateRoutes } from "./service-updates.js";

export const extensionRoutes: FastifyPluginAsync<RouteDeps> = async (app, deps) => {
  await app.register(flavorExtraRoutes, deps);
  await app.register(keypairRoutes, deps);
  await app.register(serverGroupRoutes, deps);
  await app.register(availabilityZoneRoutes, deps);
  await app.register(aggregateRoutes, deps);
  await app.register(quotaRoutes, deps);
  await app.register(instanceActionRoutes, deps);
  await app.register(serviceUpdateRoutes, deps);
};
