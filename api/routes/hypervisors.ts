import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { notFound } from "../../common/errors.js";
import { isUuid } from "../../common/ids.js";
import type { RouteDeps } from "../app.js";
import { loadComputeHosts, loadUsage, type ComputeHostRow, type Usage } from "../compute-hosts.js";
import { requireAdmin } from "../policy.js";
import { errors, Nullable } from "../schemas/common.js";

const HypervisorSummary = Type.Object({
  id: Type.String({ description: "The compute service's UUID (Nova's form since 2.53)" }),
  hypervisor_hostname: Type.String(),
  state: Type.String(),
  status: Type.String(),
});

const Hypervisor = Type.Object({
  ...HypervisorSummary.properties,
  hypervisor_type: Type.String(),
  hypervisor_version: Type.Integer(),
  host_ip: Type.String(),
  service: Type.Object({ id: Type.String(), host: Type.String(), disabled_reason: Nullable(Type.String()) }),
  vcpus: Type.Integer(),
  vcpus_used: Type.Integer(),
  memory_mb: Type.Integer(),
  memory_mb_used: Type.Integer(),
  free_ram_mb: Type.Integer(),
  local_gb: Type.Integer(),
  local_gb_used: Type.Integer(),
  free_disk_gb: Type.Integer(),
  disk_available_least: Type.Integer(),
  running_vms: Type.Integer(),
  current_workload: Type.Integer(),
  cpu_info: Type.String(),
});

function summary(h: ComputeHostRow) {
  return { id: h.id, hypervisor_hostname: h.hypervisor_hostname, state: h.is_up ? "up" : "down", status: h.status };
}

function detail(h: ComputeHostRow, u: Usage) {
  const total = (rc: string) => u.total[rc] ?? 0;
  const used = (rc: string) => u.used[rc] ?? 0;
  return {
    ...summary(h),
    hypervisor_type: h.hypervisor_type,
    hypervisor_version: h.hypervisor_version,
    host_ip: h.host_ip,
    service: { id: h.id, host: h.host, disabled_reason: h.disabled_reason },
    vcpus: total("VCPU"),
    vcpus_used: used("VCPU"),
    memory_mb: total("MEMORY_MB"),
    memory_mb_used: used("MEMORY_MB"),
    free_ram_mb: total("MEMORY_MB") - used("MEMORY_MB"),
    local_gb: total("DISK_GB"),
    local_gb_used: used("DISK_GB"),
    free_disk_gb: total("DISK_GB") - used("DISK_GB"),
    disk_available_least: total("DISK_GB") - used("DISK_GB"),
    running_vms: u.runningVms,
    current_workload: 0,
    cpu_info: "{}",
  };
}

export const hypervisorRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db, config }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();
  const RULE = "os_compute_api:os-hypervisors:list";

  app.get(
    "/v2.1/os-hypervisors",
    {
      schema: { summary: "List hypervisors (admin)", tags: ["hypervisors"], response: { 200: Type.Object({ hypervisors: Type.Array(HypervisorSummary) }), ...errors(403) } },
    },
    async (req) => {
      requireAdmin(req, RULE);
      const hosts = await loadComputeHosts(db, config.serviceDownTimeSec);
      return { hypervisors: hosts.map(summary) };
    },
  );

  app.get(
    "/v2.1/os-hypervisors/detail",
    {
      schema: {
        summary: "List hypervisors with details (admin)",
        tags: ["hypervisors"],
        response: { 200: Type.Object({ hypervisors: Type.Array(Hypervisor) }), ...errors(403) },
      },
    },
    async (req) => {
      requireAdmin(req, RULE);
      const hosts = await loadComputeHosts(db, config.serviceDownTimeSec);
      const usage = await loadUsage(db, hosts.map((h) => h.id));
      return { hypervisors: hosts.map((h) => detail(h, usage.get(h.id)!)) };
    },
  );

  app.get(
    "/v2.1/os-hypervisors/:id",
    {
      schema: {
        summary: "Show a hypervisor (admin)",
        tags: ["hypervisors"],
        params: Type.Object({ id: Type.String() }),
        response: { 200: Type.Object({ hypervisor: Hypervisor }), ...errors(403, 404) },
      },
    },
    async (req) => {
      requireAdmin(req, "os_compute_api:os-hypervisors:show");
      const [host] = isUuid(req.params.id) ? await loadComputeHosts(db, config.serviceDownTimeSec, req.params.id) : [];
      if (!host) throw notFound(`Hypervisor with ID ${req.params.id} could not be found.`);
      const usage = await loadUsage(db, [host.id]);
      return { hypervisor: detail(host, usage.get(host.id)!) };
    },
  );
};
