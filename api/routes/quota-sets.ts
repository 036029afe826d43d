/**
 * Limits (GET /limits) and quota sets (os-quota-sets) at microversion 2.1: Nova's keys
 * and defaults, per-project overrides, usage counted from what exists.
 */
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { Type, type TSchema } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { badRequest, forbidden } from "../../common/errors.js";
import type { RouteDeps } from "../app.js";
import { requireAdmin } from "../policy.js";
import { QUOTA_DEFAULTS, QUOTA_RESOURCES, projectLimits, projectUsage, type QuotaResource, type QuotaValues } from "../quotas/quota.js";
import { errors, NoBody } from "../schemas/common.js";

const ProjectParams = Type.Object({ project_id: Type.String({ minLength: 1, maxLength: 255 }) });

const each = <T extends TSchema>(schema: T) => Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, schema])) as Record<QuotaResource, T>;

const QuotaSet = Type.Object({ id: Type.String(), ...each(Type.Integer()) });
const QuotaSetNoId = Type.Object(each(Type.Integer()));
const Usage = Type.Object({ in_use: Type.Integer(), limit: Type.Integer(), reserved: Type.Integer() });
const QuotaSetDetail = Type.Object({ id: Type.String(), ...each(Usage) });

const QuotaValue = Type.Union([Type.Integer({ minimum: -1 }), Type.String({ pattern: "^-?[0-9]+$" })], { description: "-1 is unlimited" });
const QuotaUpdateBody = Type.Object(
  {
    quota_set: Type.Object(
      {
        ...Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, Type.Optional(QuotaValue)])),
        force: Type.Optional(Type.Union([Type.Boolean(), Type.String()], { description: "Set a limit below current usage" })),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

const LIMIT_KEYS: [string, QuotaResource][] = [
  ["maxImageMeta", "metadata_items"],
  ["maxPersonality", "injected_files"],
  ["maxPersonalitySize", "injected_file_content_bytes"],
  ["maxSecurityGroupRules", "security_group_rules"],
  ["maxSecurityGroups", "security_groups"],
  ["maxServerMeta", "metadata_items"],
  ["maxTotalCores", "cores"],
  ["maxTotalFloatingIps", "floating_ips"],
  ["maxTotalInstances", "instances"],
  ["maxTotalKeypairs", "key_pairs"],
  ["maxTotalRAMSize", "ram"],
  ["maxServerGroups", "server_groups"],
  ["maxServerGroupMembers", "server_group_members"],
];
const USED_KEYS: [string, QuotaResource][] = [
  ["totalCoresUsed", "cores"],
  ["totalInstancesUsed", "instances"],
  ["totalRAMUsed", "ram"],
  ["totalSecurityGroupsUsed", "security_groups"],
  ["totalFloatingIpsUsed", "floating_ips"],
  ["totalServerGroupsUsed", "server_groups"],
];

const Limits = Type.Object({
  limits: Type.Object({
    rate: Type.Array(Type.Unknown(), { description: "Always empty" }),
    absolute: Type.Object(Object.fromEntries([...LIMIT_KEYS, ...USED_KEYS].map(([k]) => [k, Type.Integer()]))),
  }),
});

const truthy = (v: boolean | string | undefined) => (typeof v === "string" ? /^(true|1|yes|y|on|t)$/i.test(v) : v === true);

export const quotaRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  /** A project's own quota is readable by its members; anyone else's needs admin. */
  const canRead = (req: FastifyRequest, projectId: string, rule: string) => {
    if (!req.ctx.isAdmin && req.ctx.projectId !== projectId) throw forbidden(`Policy doesn't allow ${rule} to be performed.`);
  };

  app.get(
    "/v2.1/limits",
    {
      schema: {
        summary: "Show the caller's absolute limits and usage",
        tags: ["limits"],
        querystring: Type.Object({ tenant_id: Type.Optional(Type.String({ description: "Admin: another project's limits" })) }),
        response: { 200: Limits, ...errors(403) },
      },
    },
    async (req) => {
      const projectId = req.query.tenant_id ?? req.ctx.projectId;
      canRead(req, projectId, "os_compute_api:limits:other_project");
      const [limits, used] = await Promise.all([projectLimits(db, projectId), projectUsage(db, projectId)]);
      return {
        limits: {
          rate: [],
          absolute: Object.fromEntries([
            ...LIMIT_KEYS.map(([k, r]) => [k, limits[r]]),
            ...USED_KEYS.map(([k, r]) => [k, used[r]]),
          ]) as Record<string, number>,
        },
      };
    },
  );

  app.get(
    "/v2.1/os-quota-sets/:project_id",
    {
      schema: {
        summary: "Show a project's quotas",
        tags: ["quota-sets"],
        params: ProjectParams,
        response: { 200: Type.Object({ quota_set: QuotaSet }), ...errors(403) },
      },
    },
    async (req) => {
      canRead(req, req.params.project_id, "os_compute_api:os-quota-sets:show");
      return { quota_set: { id: req.params.project_id, ...(await projectLimits(db, req.params.project_id)) } };
    },
  );

  app.get(
    "/v2.1/os-quota-sets/:project_id/defaults",
    {
      schema: {
        summary: "Show the default quotas",
        tags: ["quota-sets"],
        params: ProjectParams,
        response: { 200: Type.Object({ quota_set: QuotaSet }), ...errors() },
      },
    },
    async (req) => ({ quota_set: { id: req.params.project_id, ...QUOTA_DEFAULTS } }),
  );

  app.get(
    "/v2.1/os-quota-sets/:project_id/detail",
    {
      schema: {
        summary: "Show a project's quotas with usage",
        tags: ["quota-sets"],
        params: ProjectParams,
        response: { 200: Type.Object({ quota_set: QuotaSetDetail }), ...errors(403) },
      },
    },
    async (req) => {
      canRead(req, req.params.project_id, "os_compute_api:os-quota-sets:detail");
      const [limits, used] = await Promise.all([projectLimits(db, req.params.project_id), projectUsage(db, req.params.project_id)]);
      const detail = Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, { in_use: used[r], limit: limits[r], reserved: 0 }]));
      return { quota_set: { id: req.params.project_id, ...(detail as Record<QuotaResource, { in_use: number; limit: number; reserved: number }>) } };
    },
  );

  app.put(
    "/v2.1/os-quota-sets/:project_id",
    {
      schema: {
        summary: "Update a project's quotas (admin)",
        description: 'A limit below current usage is refused unless "force": true.',
        tags: ["quota-sets"],
        params: ProjectParams,
        body: QuotaUpdateBody,
        response: { 200: Type.Object({ quota_set: QuotaSetNoId }), ...errors(400, 403) },
      },
    },
    async (req) => {
      requireAdmin(req, "os_compute_api:os-quota-sets:update");
      const projectId = req.params.project_id;
      const { force, ...given } = req.body.quota_set as Record<string, number | string | undefined> & { force?: boolean | string };
      const updates: Partial<QuotaValues> = {};
      for (const [k, v] of Object.entries(given)) {
        if (v === undefined) continue;
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < -1) throw badRequest(`Quota limit ${v} for ${k} must be -1 or greater.`);
        updates[k as QuotaResource] = n;
      }
      await db.transaction(async (trx) => {
        await trx("quota_locks").insert({ project_id: projectId }).onConflict("project_id").ignore();
        await trx("quota_locks").where({ project_id: projectId }).forUpdate().first();
        if (!truthy(force)) {
          const used = await projectUsage(trx, projectId);
          for (const [k, n] of Object.entries(updates) as [QuotaResource, number][]) {
            if (n !== -1 && n < used[k]) {
              throw badRequest(`Quota limit ${n} for ${k} must be greater than or equal to already used and reserved ${used[k]}.`);
            }
          }
        }
        for (const [resource, hard_limit] of Object.entries(updates)) {
          await trx("quotas")
            .insert({ project_id: projectId, resource, hard_limit })
            .onConflict(["project_id", "resource"])
            .merge({ hard_limit, updated_at: trx.fn.now() });
        }
      });
      return { quota_set: await projectLimits(db, projectId) };
    },
  );

  app.delete(
    "/v2.1/os-quota-sets/:project_id",
    {
      schema: {
        summary: "Revert a project's quotas to the defaults (admin)",
        tags: ["quota-sets"],
        params: ProjectParams,
        response: { 202: NoBody("Accepted"), ...errors(403) },
      },
    },
    async (req, reply) => {
      requireAdmin(req, "os_compute_api:os-quota-sets:delete");
      await db("quotas").where({ project_id: req.params.project_id }).delete();
      return reply.status(202).send();
    },
  );
};
