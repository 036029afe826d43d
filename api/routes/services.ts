import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { RouteDeps } from "../app.js";
import { DEFAULT_AZ, loadComputeHosts } from "../compute-hosts.js";
import { requireAdmin } from "../policy.js";
import { errors } from "../schemas/common.js";
import { hostZones } from "./availability-zones.js";
import { Service } from "../schemas/service.js";


export const serviceRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db, config }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  app.get(
    "/v2.1/os-services",
    {
      schema: {
        summary: "List compute services (admin)",
        tags: ["services"],
        querystring: Type.Object({ host: Type.Optional(Type.String()), binary: Type.Optional(Type.String()) }),
        response: { 200: Type.Object({ services: Type.Array(Service) }), ...errors(403) },
      },
    },
    async (req) => {
      requireAdmin(req, "os_compute_api:os-services:list");
      let hosts = await loadComputeHosts(db, config.serviceDownTimeSec);
      if (req.query.host !== undefined) hosts = hosts.filter((h) => h.host === req.query.host);
      if (req.query.binary !== undefined && req.query.binary !== "nova-compute") hosts = [];
      // (compute extras) a host's zone is its aggregate's when it has one
      const zones = new Map((await hostZones(db, config.serviceDownTimeSec)).map((z) => [z.host, z.zone]));
      return {
        services: hosts.map((h) => ({
          id: h.id,
          binary: "nova-compute",
          host: h.host,
          zone: zones.get(h.host) ?? h.availability_zone ?? DEFAULT_AZ,
          status: h.status,
          state: h.is_up ? "up" : "down",
          updated_at: h.last_seen_at.toISOString().replace("Z", "000"),
          disabled_reason: h.disabled_reason,
          forced_down: h.forced_down,
        })),
      };
    },
  );
};
