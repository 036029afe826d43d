/**
 * Enabling, disabling and forcing down compute services (admin): the 2.53-style
 * PUT /os-services/{id} and the 2.1 forms PUT /os-services/{disable,enable,
 * disable-log-reason,force-down} with {host, binary}. The scheduler reads status and
 * forced_down in its candidate query, so a disabled or forced-down host gets no new
 * servers; servers already there stay.
 */
import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { badRequest, notFound } from "../../common/errors.js";
import { isUuid } from "../../common/ids.js";
import type { RouteDeps } from "../app.js";
import { loadComputeHosts } from "../compute-hosts.js";
import { requireAdmin } from "../policy.js";
import { errors } from "../schemas/common.js";
import { hostZones } from "./availability-zones.js";
import { Service } from "../schemas/service.js";


const UpdateBody = Type.Object(
  {
    status: Type.Optional(Type.Union([Type.Literal("enabled"), Type.Literal("disabled")])),
    disabled_reason: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    forced_down: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const HostBinary = { host: Type.String({ minLength: 1, maxLength: 255 }), binary: Type.String({ minLength: 1, maxLength: 255 }) };
const HostBinaryBody = Type.Object(HostBinary, { additionalProperties: false });
const ReasonBody = Type.Object({ ...HostBinary, disabled_reason: Type.String({ minLength: 1, maxLength: 255 }) }, { additionalProperties: false });
const ForceDownBody = Type.Object({ ...HostBinary, forced_down: Type.Boolean() }, { additionalProperties: false });

const LegacyResult = Type.Object({
  service: Type.Object({
    host: Type.String(),
    binary: Type.String(),
    status: Type.Optional(Type.String()),
    disabled_reason: Type.Optional(Type.String()),
    forced_down: Type.Optional(Type.Boolean()),
  }),
});

export const serviceUpdateRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db, config }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  /** The compute service on `host`; only nova-compute services exist in Cirrus. */
  const byHost = async (host: string, binary: string): Promise<{ id: string }> => {
    const row: { id: string } | undefined = binary === "nova-compute" ? await db("compute_services").where({ host }).first("id") : undefined;
    if (!row) throw notFound(`Could not find binary ${binary} on host ${host}.`);
    return row;
  };

  const update = (id: string, fields: Record<string, unknown>) => db("compute_services").where({ id }).update({ ...fields, updated_at: db.fn.now() });

  app.put(
    "/v2.1/os-services/:id",
    {
      schema: {
        summary: "Enable, disable or force down a compute service (admin)",
        description: "The 2.53 form, by service id: {status, disabled_reason, forced_down}.",
        tags: ["services"],
        params: Type.Object({ id: Type.String() }),
        body: UpdateBody,
        response: { 200: Type.Object({ service: Service }), ...errors(400, 403, 404) },
      },
    },
    async (req) => {
      requireAdmin(req, "os_compute_api:os-services:update");
      const { id } = req.params;
      if (!isUuid(id)) throw badRequest(`Invalid uuid ${id}`);
      const b = req.body;
      if (b.status === undefined && b.forced_down === undefined) {
        throw badRequest("At least one of 'status' or 'forced_down' must be specified in the request body.");
      }
      if (b.disabled_reason !== undefined && b.status !== "disabled") {
        throw badRequest("Specifying 'disabled_reason' with status 'enabled' is invalid.");
      }
      const fields: Record<string, unknown> = {};
      if (b.status !== undefined) {
        fields.status = b.status;
        fields.disabled_reason = b.status === "disabled" ? (b.disabled_reason ?? null) : null;
      }
      if (b.forced_down !== undefined) fields.forced_down = b.forced_down;
      const changed = await update(id.toLowerCase(), fields);
      if (changed === 0) throw notFound(`Service ${id} could not be found.`);
      const [h] = await loadComputeHosts(db, config.serviceDownTimeSec, id.toLowerCase());
      const zone = (await hostZones(db, config.serviceDownTimeSec)).find((z) => z.host === h!.host)!.zone;
      return {
        service: {
          id: h!.id,
          binary: "nova-compute",
          host: h!.host,
          zone,
          status: h!.status,
          state: h!.is_up ? "up" : "down",
          updated_at: h!.last_seen_at.toISOString().replace("Z", "000"),
          disabled_reason: h!.disabled_reason,
          forced_down: h!.forced_down,
        },
      };
    },
  );

  app.put(
    "/v2.1/os-services/enable",
    {
      schema: {
        summary: "Enable a compute service by host (admin, 2.1 form)",
        tags: ["services"],
        body: HostBinaryBody,
        response: { 200: LegacyResult, ...errors(400, 403, 404) },
      },
    },
    async (req) => {
      requireAdmin(req, "os_compute_api:os-services:update");
      const { host, binary } = req.body;
      await update((await byHost(host, binary)).id, { status: "enabled", disabled_reason: null });
      return { service: { host, binary, status: "enabled" } };
    },
  );

  app.put(
    "/v2.1/os-services/disable",
    {
      schema: {
        summary: "Disable a compute service by host (admin, 2.1 form)",
        tags: ["services"],
        body: HostBinaryBody,
        response: { 200: LegacyResult, ...errors(400, 403, 404) },
      },
    },
    async (req) => {
      requireAdmin(req, "os_compute_api:os-services:update");
      const { host, binary } = req.body;
      await update((await byHost(host, binary)).id, { status: "disabled", disabled_reason: null });
      return { service: { host, binary, status: "disabled" } };
    },
  );

  app.put(
    "/v2.1/os-services/disable-log-reason",
    {
      schema: {
        summary: "Disable a compute service with a reason (admin, 2.1 form)",
        tags: ["services"],
        body: ReasonBody,
        response: { 200: LegacyResult, ...errors(400, 403, 404) },
      },
    },
    async (req) => {
      requireAdmin(req, "os_compute_api:os-services:update");
      const { host, binary, disabled_reason } = req.body;
      await update((await byHost(host, binary)).id, { status: "disabled", disabled_reason });
      return { service: { host, binary, status: "disabled", disabled_reason } };
    },
  );

  app.put(
    "/v2.1/os-services/force-down",
    {
      schema: {
        summary: "Mark a compute service down, or clear that (admin)",
        tags: ["services"],
        body: ForceDownBody,
        response: { 200: LegacyResult, ...errors(400, 403, 404) },
      },
    },
    async (req) => {
      requireAdmin(req, "os_compute_api:os-services:update");
      const { host, binary, forced_down } = req.body;
      await update((await byHost(host, binary)).id, { forced_down });
      return { service: { host, binary, forced_down } };
    },
  );
};
