/**
 * The conductor's batch path for `spawned` and `deleted` reports (applyReportBatch):
 * a batch mixing fresh, duplicate and stale reports has the effect its reports have one by
 * one (instance states, ports and fixed IPs, allocations, provider generations, action
 * events, orphans jobs), applying it again changes nothing, and the number of statements
 * does not grow with the batch.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PowerState } from "../../common/power-state.js";
import { applyReportBatch, type BatchableReport, type ConductorDeps } from "../../scheduler/conductor.js";
import { transactionBegunWith } from "../../common/db/begun-with.js";
import { planReports, type ReportedInstance } from "../../scheduler/report-batch.js";
import { byId, reportedInstancesLock, writeReportPlan } from "../../scheduler/report-batch-writes.js";
import { admin, bootables, createExtApp, registerHost, type ExtApp, placementDeps } from "./ext-support.js";

let t: ExtApp;
let imageId: string;
let networkId: string;
let deps: ConductorDeps;
const providers = new Map<string, string>();
const HOSTS = ["batch-a", "batch-b"];

beforeAll(async () => {
  t = await createExtApp();
  ({ imageId } = await bootables(t));
  const a = admin(t);
  const net = await a.post("/v2.0/networks", { network: { name: "batch-net", shared: true } });
  expect(net.status, JSON.stringify(net.body)).toBe(201);
  networkId = net.body.network.id;
  const sub = await a.post("/v2.0/subnets", { subnet: { network_id: networkId, cidr: "10.77.0.0/22", ip_version: 4 } });
  expect(sub.status, JSON.stringify(sub.body)).toBe(201);
  for (const host of HOSTS) providers.set(host, (await registerHost(t, host, { vcpus: 512 })).providerId);
  deps = placementDeps(t);
});
afterAll(async () => t?.close());

const db = () => t.database.db;

/** A server accepted by the API (port, fixed IP, create action) and placed on `host` as the scheduler does, spawning attempt 1. */
async function spawningOn(host: string): Promise<{ id: string; createReq: string }> {
  const res = await admin(t).post("/v2.1/servers", { server: { name: "b", flavorRef: "1", imageRef: imageId, networks: [{ uuid: networkId }] } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const id = res.body.server.id as string;
  await db()("instances").where({ id }).update({ host, node: host, vm_state: "building", task_state: "spawning", attempts: 1 });
  const provider_id = providers.get(host)!;
  await db()("allocations").insert([
    { provider_id, consumer_id: id, resource_class: "VCPU", used: 1 },
    { provider_id, consumer_id: id, resource_class: "MEMORY_MB", used: 512 },
    { provider_id, consumer_id: id, resource_class: "DISK_GB", used: 1 },
  ]);
  const action = await db()("instance_actions").where({ instance_id: id, action: "create" }).first("request_id");
  return { id, createReq: action.request_id as string };
}

/** DELETE through the API (the host is up, so: task_state deleting and a delete job); returns the delete action's request id. */
async function deleteRequested(id: string): Promise<string> {
  const res = await admin(t).del(`/v2.1/servers/${id}`);
  expect(res.status, JSON.stringify(res.body)).toBe(204);
  const action = await db()("instance_actions").where({ instance_id: id, action: "delete" }).first("request_id");
  return action.request_id as string;
}

const spawned = (host: string, s: { id: string; createReq: string }, attempt = 1): BatchableReport => ({
  kind: "spawned", host, request_id: s.createReq, instance_id: s.id, attempt, power_state: PowerState.RUNNING,
});
const deleted = (host: string, id: string, request_id: string): BatchableReport => ({ kind: "deleted", host, request_id, instance_id: id });

/** Applies a batch and counts the statements it sent (BEGIN and COMMIT included). */
async function countedBatch(reports: BatchableReport[]): Promise<number> {
  let n = 0;
  const count = () => n++;
  db().on("query", count);
  try {
    await applyReportBatch(deps, reports);
  } finally {
    db().off("query", count);
  }
  return n;
}

const generations = async () =>
  new Map((await db()("resource_providers").whereIn("name", HOSTS).select("name", "generation")).map((r: { name: string; generation: number }) => [r.name, r.generation]));
const instance = (id: string) => db()("instances").where({ id }).first("vm_state", "task_state", "power_state", "launched_at", "deleted_at", "terminated_at");
const events = (id: string) =>
  db()("instance_action_events as e")
    .join("instance_actions as a", "a.id", "e.action_id")
    .where("a.instance_id", id)
    .orderBy("e.id")
    .select("a.action", "e.event", "e.result", "e.host", "a.finish_time");
const portsOf = (id: string) => db()("ports").where({ device_id: id }).select("id", "status");
const ipsOf = (id: string) => db()("ip_allocations as ip").join("ports as p", "p.id", "ip.port_id").where("p.device_id", id).select("ip.ip_address");
const allocationsOf = (ids: string[]) => db()("allocations").whereIn("consumer_id", ids).select("consumer_id");

describe("applyReportBatch", () => {
  it("spawned reports: ACTIVE, ports ACTIVE, failed builds cleared only where there were some, one event each", async () => {
    const servers = [await spawningOn("batch-a"), await spawningOn("batch-b"), await spawningOn("batch-a")];
    await db()("compute_services").where({ host: "batch-a" }).update({ failed_builds: 2 });
    const quiet = await db()("compute_services").where({ host: "batch-b" }).first("xmin");
    const before = await generations();

    await applyReportBatch(deps, [spawned("batch-a", servers[0]!), spawned("batch-b", servers[1]!), spawned("batch-a", servers[2]!), spawned("batch-a", servers[0]!)]);

    for (const s of servers) {
      const row = await instance(s.id);
      expect(row).toMatchObject({ vm_state: "active", task_state: null, power_state: PowerState.RUNNING, deleted_at: null });
      expect(row.launched_at).not.toBeNull();
      expect((await portsOf(s.id)).map((p: { status: string }) => p.status)).toEqual(["ACTIVE"]);
      const ev = await events(s.id);
      expect(ev.filter((e: { event: string }) => e.event === "compute_build_and_run_instance")).toHaveLength(1);
      expect(ev.at(-1)).toMatchObject({ action: "create", result: "Success" });
      expect(ev.at(-1).finish_time).not.toBeNull();
    }
    expect((await db()("compute_services").where({ host: "batch-a" }).first("failed_builds")).failed_builds).toBe(0);
    // No failed builds on batch-b: its service row was not written.
    expect(await db()("compute_services").where({ host: "batch-b" }).first("xmin")).toEqual(quiet);
    // Spawns do not touch providers.
    expect(await generations()).toEqual(before);
  });

  it("a mixed batch (spawned, duplicate, stale, deleted, deleted again) has each report's own effect, and applying it again changes nothing", async () => {
    const live = await spawningOn("batch-a"); // still spawning: goes ACTIVE
    const dup = await spawningOn("batch-b"); // ACTIVE already: its spawned report is a duplicate
    const gone = await spawningOn("batch-a"); // deleted already: its spawned report is late (orphan)
    const moved = await spawningOn("batch-b"); // now on batch-a: a spawned report from batch-b is late (orphan)
    const delA1 = await spawningOn("batch-a");
    const delA2 = await spawningOn("batch-a");
    const delB = await spawningOn("batch-b");
    await applyReportBatch(deps, [spawned("batch-b", dup), spawned("batch-a", delA1), spawned("batch-a", delA2), spawned("batch-b", delB)]);
    const goneReq = await deleteRequested(gone.id);
    await applyReportBatch(deps, [deleted("batch-a", gone.id, goneReq)]);
    expect((await instance(gone.id)).vm_state).toBe("deleted");
    await db()("instances").where({ id: moved.id }).update({ host: "batch-a" });
    const reqA1 = await deleteRequested(delA1.id);
    const reqA2 = await deleteRequested(delA2.id);
    const reqB = await deleteRequested(delB.id);
    const eventCount = async () => Number((await db()("instance_action_events").count("* as n").first())?.n);
    const eventsBefore = await eventCount();
    const before = await generations();

    const batch = [
      deleted("batch-b", delB.id, reqB),
      spawned("batch-a", live),
      spawned("batch-b", dup),
      spawned("batch-a", gone),
      spawned("batch-b", moved),
      deleted("batch-a", delA1.id, reqA1),
      deleted("batch-a", gone.id, goneReq), // deleted already
      deleted("batch-a", delA2.id, reqA2),
      deleted("batch-a", delA1.id, reqA1), // twice in one batch
      deleted("batch-b", delA2.id, reqA2), // from a host the instance is not on
    ];
    await applyReportBatch(deps, batch);

    expect(await instance(live.id)).toMatchObject({ vm_state: "active", task_state: null });
    expect((await portsOf(live.id)).map((p: { status: string }) => p.status)).toEqual(["ACTIVE"]);
    expect(await instance(dup.id)).toMatchObject({ vm_state: "active", task_state: null });
    expect(await instance(moved.id)).toMatchObject({ vm_state: "building", task_state: "spawning" });
    expect(await portsOf(moved.id)).toHaveLength(1);
    for (const [id, req] of [[delA1.id, reqA1], [delA2.id, reqA2], [delB.id, reqB]] as const) {
      const row = await instance(id);
      expect(row).toMatchObject({ vm_state: "deleted", task_state: null, power_state: PowerState.NOSTATE });
      expect(row.deleted_at).not.toBeNull();
      expect(row.terminated_at).not.toBeNull();
      expect(await portsOf(id)).toEqual([]);
      expect(await ipsOf(id)).toEqual([]);
      const terminate = (await events(id)).filter((e: { event: string }) => e.event === "compute_terminate_instance");
      expect(terminate).toHaveLength(1);
      expect(terminate[0]).toMatchObject({ action: "delete", result: "Success" });
      expect(terminate[0].finish_time).not.toBeNull();
      const action = await db()("instance_actions").where({ instance_id: id, request_id: req }).first("finish_time", "message");
      expect(action.finish_time).not.toBeNull();
      expect(action.message).toBeNull();
    }
    expect(await allocationsOf([delA1.id, delA2.id, delB.id, gone.id])).toEqual([]);
    expect((await allocationsOf([live.id, dup.id, moved.id])).length).toBe(9);
    // Each provider that released something is bumped once for the batch.
    const after = await generations();
    expect(after.get("batch-a")).toBe(before.get("batch-a")! + 1);
    expect(after.get("batch-b")).toBe(before.get("batch-b")! + 1);
    // One event per applied report: live's spawn and the three deletes.
    expect(await eventCount()).toBe(eventsBefore + 4);
    // The late builds go back to the hosts that reported them as orphans.
    const orphans = await db()("outbox").where({ job_name: "orphans" }).whereIn("job_id", [`orphans-batch-a-late-${gone.id}-1`, `orphans-batch-b-late-${moved.id}-1`]).select("job_id", "payload");
    expect(orphans.map((o: { job_id: string }) => o.job_id).sort()).toEqual([`orphans-batch-a-late-${gone.id}-1`, `orphans-batch-b-late-${moved.id}-1`].sort());
    const movedJob = orphans.find((o: { job_id: string }) => o.job_id.startsWith("orphans-batch-b"));
    expect(movedJob.payload.domains).toEqual([{ instance_id: moved.id, instance_name: expect.stringMatching(/^instance-/), reason: "built late; the instance is on batch-a" }]);

    // Again: nothing but the orphans jobs (same ids, deduplicated by BullMQ) is written.
    const snapshot = async () => ({
      instances: await db()("instances").orderBy("id").select("id", "vm_state", "task_state", "power_state", "updated_at"),
      ports: await db()("ports").orderBy("id").select("id", "status", "updated_at"),
      allocations: await db()("allocations").count("* as n").first(),
      events: await db()("instance_action_events").count("* as n").first(),
      generations: await generations(),
    });
    const once = await snapshot();
    await applyReportBatch(deps, batch);
    expect(await snapshot()).toEqual(once);
  });

  it("a spawned and a deleted report for one instance in one batch: the spawn is stale once the delete was asked, the delete completes", async () => {
    const s = await spawningOn("batch-b");
    const req = await deleteRequested(s.id); // task_state deleting: the spawn no longer applies
    await applyReportBatch(deps, [spawned("batch-b", s), deleted("batch-b", s.id, req)]);
    const row = await instance(s.id);
    expect(row).toMatchObject({ vm_state: "deleted", task_state: null, launched_at: null });
    expect(await portsOf(s.id)).toEqual([]);
    expect((await events(s.id)).map((e: { event: string }) => e.event)).toEqual(["compute_terminate_instance"]);
  });

  it("a deleted report arriving in the batch right after the spawned one: ACTIVE, then deleted", async () => {
    // The delete's action is written by hand so that the spawn still applies (an agent reporting
    // a delete right after the spawn, as the batch would see it).
    const s = await spawningOn("batch-b");
    await db()("instance_actions").insert({ instance_id: s.id, action: "delete", request_id: "req-del-now", project_id: "admin", user_id: "admin" });
    await applyReportBatch(deps, [spawned("batch-b", s), deleted("batch-b", s.id, "req-del-now")]);
    const row = await instance(s.id);
    expect(row).toMatchObject({ vm_state: "deleted", task_state: null });
    expect(row.launched_at).not.toBeNull();
    expect(await portsOf(s.id)).toEqual([]);
    expect(await allocationsOf([s.id])).toEqual([]);
    expect((await events(s.id)).map((e: { event: string }) => e.event)).toEqual(["compute_build_and_run_instance", "compute_terminate_instance"]);
  });

  it("the number of statements does not grow with the batch", async () => {
    const spawns = async (n: number) => {
      const servers = [];
      for (let i = 0; i < n; i++) servers.push(await spawningOn(HOSTS[i % 2]!));
      return servers;
    };
    const small = await spawns(2);
    const large = await spawns(24);
    const spawnSmall = await countedBatch(small.map((s, i) => spawned(HOSTS[i % 2]!, s)));
    const spawnLarge = await countedBatch(large.map((s, i) => spawned(HOSTS[i % 2]!, s)));
    expect(spawnLarge).toBe(spawnSmall);
    // Lock, instances, ports, events, inside BEGIN/COMMIT (no failed builds to clear).
    expect(spawnSmall).toBeLessThanOrEqual(7);

    const reqs = new Map<string, string>();
    for (const s of [...small, ...large]) reqs.set(s.id, await deleteRequested(s.id));
    const before = await generations();
    const deleteSmall = await countedBatch(small.map((s, i) => deleted(HOSTS[i % 2]!, s.id, reqs.get(s.id)!)));
    const deleteLarge = await countedBatch(large.map((s, i) => deleted(HOSTS[i % 2]!, s.id, reqs.get(s.id)!)));
    expect(deleteLarge).toBe(deleteSmall);
    // Lock, instances, allocations with generations, ports, events, inside BEGIN/COMMIT.
    expect(deleteSmall).toBeLessThanOrEqual(7);
    const after = await generations();
    for (const host of HOSTS) expect(after.get(host)).toBe(before.get(host)! + 2); // once per batch
    expect(await allocationsOf([...small, ...large].map((s) => s.id))).toEqual([]);
  });

  it("concurrent batches releasing on the same providers neither deadlock nor lose a bump", async () => {
    const servers = [];
    for (let i = 0; i < 16; i++) servers.push(await spawningOn(HOSTS[i % 2]!));
    await applyReportBatch(deps, servers.map((s, i) => spawned(HOSTS[i % 2]!, s)));
    const reqs = await Promise.all(servers.map((s) => deleteRequested(s.id)));
    const before = await generations();
    const reports = servers.map((s, i) => deleted(HOSTS[i % 2]!, s.id, reqs[i]!));
    // Four batches, each over both providers, in different report orders; without the
    // deadlock retry of applyReportBatch, so a deadlock would fail the test.
    const batches = [0, 1, 2, 3].map((k) => reports.filter((_, i) => Math.floor(i / 4) === k));
    batches[1]!.reverse();
    batches[3]!.reverse();
    await Promise.all(
      batches.map((b) =>
        transactionBegunWith<ReportedInstance, void>(
          db(),
          (trx) => reportedInstancesLock(trx, b.map((r) => r.instance_id)),
          (trx, rows) => writeReportPlan(trx, planReports(b, byId(rows))),
          { prepare: true },
        ),
      ),
    );
    const after = await generations();
    for (const host of HOSTS) expect(after.get(host)).toBe(before.get(host)! + 4);
    expect(await allocationsOf(servers.map((s) => s.id))).toEqual([]);
  });
});
