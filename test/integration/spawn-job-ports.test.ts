/**
 * The spawn job a batch placement writes (scheduler/batch-lock.ts reads the ports with
 * the instances, scheduler/batch-writes.ts writes the job) carries exactly the ports,
 * networks and fixed IPs that loadPortsOf reads for the instance, IPv4 and IPv6, for a
 * single boot and a multi-create.
 */
import { randomUUID } from "node:crypto";
import request from "supertest";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createLogger } from "../../common/logger.js";
import { HostStateView } from "../../scheduler/host-state-view.js";
import { placeBatch } from "../../scheduler/place.js";
import { loadPortsOf } from "../../scheduler/spawn-spec.js";
import { flavorAndImage } from "../support/boot-fixtures.js";
import { ADMIN_TOKEN, createTestApp, type TestApp } from "../support/services.js";

let t: TestApp;
const auth = { "X-Auth-Token": ADMIN_TOKEN };

beforeAll(async () => {
  t = await createTestApp({ enforceQuotas: false });
  const serviceId = randomUUID();
  const providerId = randomUUID();
  await t.db("compute_services").insert({ id: serviceId, host: "ports-1", hypervisor_type: "QEMU", hypervisor_version: 1, hypervisor_hostname: "ports-1", host_ip: "192.0.2.1", libvirt_uri: "test:///default", last_seen_at: t.db.fn.now() });
  await t.db("resource_providers").insert({ id: providerId, name: "ports-1", compute_service_id: serviceId });
  await t.db("inventories").insert([
    { provider_id: providerId, resource_class: "VCPU", total: 64, max_unit: 64 },
    { provider_id: providerId, resource_class: "MEMORY_MB", total: 65536, max_unit: 65536 },
    { provider_id: providerId, resource_class: "DISK_GB", total: 1000, max_unit: 1000 },
  ]);
});
afterAll(async () => t?.close());

it("carries each instance's ports with their networks and fixed IPs", async () => {
  const { imageId } = await flavorAndImage(t.app, auth);
  const srv = () => request(t.app.server);
  const nets: string[] = [];
  for (const [name, v4, v6] of [["a", "10.70.0.0/24", "fd00:70::/64"], ["b", "10.71.0.0/24", null]] as const) {
    const net = await srv().post("/v2.0/networks").set(auth).send({ network: { name } });
    nets.push(net.body.network.id);
    expect((await srv().post("/v2.0/subnets").set(auth).send({ subnet: { network_id: net.body.network.id, cidr: v4, ip_version: 4 } })).status).toBe(201);
    if (v6) expect((await srv().post("/v2.0/subnets").set(auth).send({ subnet: { network_id: net.body.network.id, cidr: v6, ip_version: 6 } })).status).toBe(201);
  }
  const networks = nets.map((uuid) => ({ uuid }));
  const one = await srv().post("/v2.1/servers").set(auth).send({ server: { name: "p1", flavorRef: "1", imageRef: imageId, networks } });
  const many = await srv().post("/v2.1/servers").set(auth).send({ server: { name: "pm", flavorRef: "1", imageRef: imageId, networks: [{ uuid: nets[1] }], min_count: 3, max_count: 3 } });
  expect([one.status, many.status]).toEqual([202, 202]);
  const ids: string[] = (await t.db("instances").where("name", "like", "p%").select("id")).map((r: { id: string }) => r.id);
  expect(ids).toHaveLength(4);

  const deps = { db: t.db, log: createLogger("test", "silent"), serviceDownTimeSec: 3600, maxAttempts: 3, view: new HostStateView(t.db) };
  const outcomes = await placeBatch(deps, { ids });
  expect([...outcomes.values()]).toEqual(ids.map(() => "placed"));

  const expected = await loadPortsOf(t.db, ids);
  const jobs: { payload: { spec: { instance_id: string; ports: unknown[] } } }[] = await t.db("outbox").where({ job_name: "spawn" }).select("payload");
  expect(jobs).toHaveLength(4);
  for (const job of jobs) {
    const want = expected.get(job.payload.spec.instance_id);
    expect(want?.length).toBeGreaterThan(0);
    expect(job.payload.spec.ports).toEqual(want);
  }
  const first = jobs.find((j) => j.payload.spec.instance_id === one.body.server.id)!;
  expect((first.payload.spec.ports as { fixed_ips: { version: number }[] }[]).map((p) => p.fixed_ips.map((f) => f.version))).toEqual([[4, 6], [4]]);
});
