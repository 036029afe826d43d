/**
 * The conductor's bookkeeping for the BuildFailureWeigher and the image filter: a failed
 * spawn counts against its host, a successful one clears the count, and registration
 * stores the host's CPU architecture. applyReport runs directly against the test database.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Report } from "../../common/messages.js";
import { PowerState } from "../../common/power-state.js";
import { applyReport, type ConductorDeps } from "../../scheduler/conductor.js";
import { MEMBER_P1, bootables, client, createExtApp, type ExtApp, placementDeps } from "./ext-support.js";

let t: ExtApp;
let imageId: string;
let deps: ConductorDeps;
beforeAll(async () => {
  t = await createExtApp();
  ({ imageId } = await bootables(t));
  // One attempt: a failed spawn ends the build instead of looking for an alternate.
  deps = placementDeps(t, { maxAttempts: 1 });
});
afterAll(async () => t?.close());

const inventory = { total: 64, reserved: 0, min_unit: 1, max_unit: 64, step_size: 1, allocation_ratio: 1 };
const register = (host: string, cpuArch?: string | null): Report => ({
  kind: "register",
  host,
  hypervisor_type: "fake",
  hypervisor_version: 1000,
  hypervisor_hostname: host,
  host_ip: "192.0.2.10",
  libvirt_uri: "fake://",
  availability_zone: null,
  ...(cpuArch !== undefined ? { cpu_arch: cpuArch } : {}),
  inventory: { VCPU: inventory, MEMORY_MB: { ...inventory, total: 65536, max_unit: 65536 }, DISK_GB: { ...inventory, total: 1000, max_unit: 1000 } },
});
const service = (host: string) => t.database.db("compute_services").where({ host }).first("cpu_arch", "failed_builds");

/** A server accepted by the API and pretended to be spawning on `host` (attempt 1). */
async function spawningOn(host: string): Promise<string> {
  const res = await client(t, MEMBER_P1).post("/v2.1/servers", { server: { name: "b", flavorRef: "1", imageRef: imageId, networks: "none" } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const id = res.body.server.id as string;
  await t.database.db("instances").where({ id }).update({ host, vm_state: "building", task_state: "spawning", attempts: 1 });
  return id;
}
const failed = (host: string, id: string): Report => ({ kind: "spawn_failed", host, request_id: "req-x", instance_id: id, attempt: 1, reason: "boom" });
const spawned = (host: string, id: string): Report => ({ kind: "spawned", host, request_id: "req-x", instance_id: id, attempt: 1, power_state: PowerState.RUNNING });

describe("registration stores cpu_arch", () => {
  it("as reported, and null when the report has none", async () => {
    await applyReport(deps, register("arch-a", "aarch64"));
    expect(await service("arch-a")).toEqual({ cpu_arch: "aarch64", failed_builds: 0 });
    await applyReport(deps, register("arch-a", "x86_64"));
    expect((await service("arch-a")).cpu_arch).toBe("x86_64");
    await applyReport(deps, register("arch-b"));
    expect((await service("arch-b")).cpu_arch).toBeNull();
  });
});

describe("failed_builds", () => {
  it("counts each failed spawn on the host and is cleared by a successful one", async () => {
    await applyReport(deps, register("fb-1", "x86_64"));
    await applyReport(deps, failed("fb-1", await spawningOn("fb-1")));
    expect((await service("fb-1")).failed_builds).toBe(1);
    await applyReport(deps, failed("fb-1", await spawningOn("fb-1")));
    expect((await service("fb-1")).failed_builds).toBe(2);
    await applyReport(deps, spawned("fb-1", await spawningOn("fb-1")));
    expect((await service("fb-1")).failed_builds).toBe(0);
  });

  it("a report applied twice, or one for another host's build, changes nothing", async () => {
    await applyReport(deps, register("fb-2"));
    await applyReport(deps, register("fb-3"));
    const id = await spawningOn("fb-2");
    await applyReport(deps, failed("fb-2", id));
    await applyReport(deps, failed("fb-2", id));
    expect((await service("fb-2")).failed_builds).toBe(1);
    await applyReport(deps, failed("fb-3", await spawningOn("fb-2")));
    expect((await service("fb-3")).failed_builds).toBe(0);
  });

  it("a success on a host without failures writes nothing to its service row", async () => {
    await applyReport(deps, register("fb-4"));
    const before = await t.database.db("compute_services").where({ host: "fb-4" }).first("updated_at", "xmin");
    await applyReport(deps, spawned("fb-4", await spawningOn("fb-4")));
    const after = await t.database.db("compute_services").where({ host: "fb-4" }).first("updated_at", "xmin");
    expect(after).toEqual(before);
  });

  it("a registration (the agent restarted) clears the count, as a restarted nova-compute does", async () => {
    await applyReport(deps, register("fb-5"));
    await applyReport(deps, failed("fb-5", await spawningOn("fb-5")));
    expect((await service("fb-5")).failed_builds).toBe(1);
    await applyReport(deps, register("fb-5"));
    expect((await service("fb-5")).failed_builds).toBe(0);
  });
});
