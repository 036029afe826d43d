/**
 * The spine end to end: api, scheduler and two agents as separate processes, one on
 * libvirt's simulated test:///default and one on qemu:///system running a real QEMU
 * guest. Boot onto both, wait for ACTIVE, check libvirt, delete, check everything is
 * gone and the allocations are back to zero.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFlavor, createNetwork, uploadImage } from "../support/api-fixtures.js";
import { testGuestImage } from "../support/guest-image.js";
import { client, startStack, waitFor, type Stack } from "../support/stack.js";
import { uniqueName } from "../support/services.js";

const run = promisify(execFile);
const virsh = (...args: string[]) => run("virsh", ["-c", "qemu:///system", ...args]).then((r) => r.stdout.trim());

let stack: Stack;
let api: ReturnType<typeof client>;
let imageId: string;
let networkId: string;
const simHost = uniqueName("sim");
const qemuHost = uniqueName("qemu");

beforeAll(async () => {
  const guest = await testGuestImage();
  stack = await startStack({
    agents: [
      { host: simHost, uri: "test:///default", availabilityZone: "sim" },
      { host: qemuHost, uri: "qemu:///system", availabilityZone: "real" },
    ],
  });
  api = client(stack);
  imageId = await uploadImage(stack, guest);
  networkId = await createNetwork(stack);
  await createFlavor(stack, { id: "small", ram: 128, vcpus: 1, disk: 1 });
}, 240_000);

afterAll(async () => {
  await stack?.stop();
});

async function waitForStatus(id: string, wanted: string[], timeoutMs = 90_000) {
  return waitFor(`server ${id} to reach ${wanted.join("/")}`, async () => {
    const res = await api("GET", `/v2.1/servers/${id}`);
    return wanted.includes(res.body?.server?.status) ? res.body.server : undefined;
  }, timeoutMs);
}

async function boot(name: string, extra: Record<string, unknown> = {}) {
  const res = await api("POST", "/v2.1/servers", {
    server: { name, flavorRef: "small", imageRef: imageId, networks: [{ uuid: networkId }], ...extra },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.server.id as string;
}

async function allocationCount(): Promise<number> {
  const [row] = await stack.database.db("allocations").count<{ count: number }[]>("* as count");
  return Number(row!.count);
}

describe("boot end to end", () => {
  it("boots a real QEMU guest and a simulated one, then deletes both", async () => {
    try {
      const realId = await boot("real-vm", { availability_zone: "real" });
      const simId = await boot("sim-vm", { availability_zone: "sim" });
      const real = await waitForStatus(realId, ["ACTIVE", "ERROR"]);
      const sim = await waitForStatus(simId, ["ACTIVE", "ERROR"]);
      expect(real.status, JSON.stringify(real.fault)).toBe("ACTIVE");
      expect(sim.status, JSON.stringify(sim.fault)).toBe("ACTIVE");

      const detail = await api("GET", `/v2.1/servers/${realId}`);
      const server = detail.body.server;
      expect(server["OS-EXT-SRV-ATTR:host"]).toBe(qemuHost);
      expect(server["OS-EXT-STS:power_state"]).toBe(1);
      expect(server["OS-EXT-STS:vm_state"]).toBe("active");
      expect(server["OS-EXT-STS:task_state"]).toBeNull();
      expect(server["OS-SRV-USG:launched_at"]).toMatch(/^\d{4}-/);
      const nic = Object.values(server.addresses as Record<string, { addr: string; "OS-EXT-IPS-MAC:mac_addr": string }[]>)[0]![0]!;
      expect(nic.addr).toMatch(/^10\.20\.0\.\d+$/);
      expect(nic["OS-EXT-IPS-MAC:mac_addr"]).toMatch(/^fa:16:3e:/);
      expect((await api("GET", `/v2.1/servers/${simId}`)).body.server["OS-EXT-SRV-ATTR:host"]).toBe(simHost);

      // libvirt agrees: the real domain runs, with our disk overlay, and the guest boots.
      const domain = server["OS-EXT-SRV-ATTR:instance_name"] as string;
      expect(await virsh("domstate", domain)).toBe("running");
      expect(await virsh("domuuid", domain)).toBe(realId);
      const xml = await virsh("dumpxml", domain);
      expect(xml).toContain(`<mac address='${nic["OS-EXT-IPS-MAC:mac_addr"]}'/>`);
      const qemuAgent = stack.agents.find((a) => a.host === qemuHost)!;
      const realDisk = path.join(qemuAgent.instancesPath, realId, "disk");
      expect(xml).toContain(realDisk);
      const consoleLog = path.join(qemuAgent.instancesPath, realId, "console.log");
      await waitFor("the guest to print on its serial console", async () => (await readFile(consoleLog, "utf8")).includes("cirrus-test-guest: booted"), 60_000, 500);
      const simAgent = stack.agents.find((a) => a.host === simHost)!;
      expect(existsSync(path.join(simAgent.instancesPath, simId, "disk"))).toBe(true);

      const hyp = await api("GET", "/v2.1/os-hypervisors/detail");
      const used = Object.fromEntries((hyp.body.hypervisors as { service: { host: string }; vcpus_used: number; memory_mb_used: number }[]).map((h) => [h.service.host, h]));
      expect(used[qemuHost]!.vcpus_used).toBe(1);
      expect(used[qemuHost]!.memory_mb_used).toBe(128);
      expect(await allocationCount()).toBe(6); // two servers x VCPU, MEMORY_MB, DISK_GB

      expect((await api("DELETE", `/v2.1/servers/${realId}`)).status).toBe(204);
      expect((await api("DELETE", `/v2.1/servers/${simId}`)).status).toBe(204);
      await waitFor("both servers to be gone", async () => {
        const a = await api("GET", `/v2.1/servers/${realId}`);
        const b = await api("GET", `/v2.1/servers/${simId}`);
        return a.status === 404 && b.status === 404;
      }, 60_000);

      await expect(virsh("domstate", domain)).rejects.toThrow(/failed to get domain|Domain not found/);
      expect(existsSync(realDisk)).toBe(false);
      expect(existsSync(path.join(simAgent.instancesPath, simId))).toBe(false);
      expect(await allocationCount()).toBe(0);
      expect((await readdir(qemuAgent.instancesPath)).filter((f) => !f.startsWith("."))).toEqual([]);
      const ports = await stack.database.db("ports").whereIn("device_id", [realId, simId]);
      expect(ports).toEqual([]);
    } catch (err) {
      console.error(await stack.logs());
      throw err;
    }
  }, 240_000);

  it("ends in ERROR with 'No valid host was found' when nothing fits", async () => {
    await createFlavor(stack, { id: "huge", ram: 128, vcpus: 4096, disk: 1 });
    const res = await api("POST", "/v2.1/servers", { server: { name: "too-big", flavorRef: "huge", imageRef: imageId, networks: "none" } });
    expect(res.status).toBe(202);
    const server = await waitForStatus(res.body.server.id, ["ERROR", "ACTIVE"], 30_000);
    expect(server.status).toBe("ERROR");
    expect(server.fault.code).toBe(500);
    expect(server.fault.message).toMatch(/^No valid host was found/);
    expect(server.fault.details).toMatch(/CapacityFilter returned 0 host/);
    expect(server["OS-EXT-SRV-ATTR:host"]).toBeNull();
    expect(await allocationCount()).toBe(0);
  }, 60_000);

  it("tries the alternate host after a failed spawn, then ERROR with the reason", async () => {
    // An unknown disk bus makes every driver refuse the spawn: the build walks its alternates.
    const guest = await testGuestImage();
    const badImage = await uploadImage(stack, guest, { name: "bad-bus", hw_disk_bus: "floppy-tape" });
    const res = await api("POST", "/v2.1/servers", { server: { name: "doomed", flavorRef: "small", imageRef: badImage, networks: "none" } });
    const server = await waitForStatus(res.body.server.id, ["ERROR", "ACTIVE"], 60_000);
    expect(server.status).toBe("ERROR");
    expect(server.fault.message).toMatch(/^Exceeded maximum number of retries/);
    expect(server.fault.message).toMatch(/floppy-tape/);
    const events = await stack.database
      .db("instance_action_events as e")
      .join("instance_actions as a", "a.id", "e.action_id")
      .where("a.instance_id", res.body.server.id)
      .where("e.event", "compute_build_and_run_instance")
      .select("e.host", "e.result");
    expect(events.map((e: { host: string }) => e.host).sort()).toEqual([qemuHost, simHost].sort());
    expect(events.every((e: { result: string }) => e.result === "Error")).toBe(true);
    expect(await allocationCount()).toBe(0);
  }, 90_000);
});
