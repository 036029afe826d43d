/**
 * Server actions carried out by real agents: every action on a simulated host
 * (test:///default), and the ones a user feels on a real QEMU guest: console output,
 * stop and start, snapshot and boot from the snapshot.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFlavor, createNetwork, uploadImage } from "../support/api-fixtures.js";
import { testGuestImage } from "../support/guest-image.js";
import { uniqueName } from "../support/services.js";
import { client, startStack, waitFor, type Stack } from "../support/stack.js";

const virsh = (...args: string[]) => promisify(execFile)("virsh", ["-c", "qemu:///system", ...args]).then((r) => r.stdout.trim());

let stack: Stack;
let api: ReturnType<typeof client>;
let imageId: string;
let otherImageId: string;
let networkId: string;
const simHost = uniqueName("act-sim");
const qemuHost = uniqueName("act-qemu");

beforeAll(async () => {
  const guest = await testGuestImage();
  stack = await startStack({
    agents: [
      { host: simHost, uri: "test:///default", availabilityZone: "sim" },
      { host: qemuHost, uri: "qemu:///system", availabilityZone: "real", env: { CIRRUS_SHUTDOWN_TIMEOUT: "3" } },
    ],
  });
  api = client(stack);
  imageId = await uploadImage(stack, guest);
  otherImageId = await uploadImage(stack, guest, { name: "other" });
  networkId = await createNetwork(stack, "10.30.0.0/24");
  await createFlavor(stack, { id: "a1", ram: 128, vcpus: 1, disk: 1 });
  await createFlavor(stack, { id: "a2", ram: 256, vcpus: 2, disk: 2 });
}, 240_000);

afterAll(async () => stack?.stop());

async function server(id: string) {
  return (await api("GET", `/v2.1/servers/${id}`)).body.server;
}

async function settle(id: string, status: string, timeoutMs = 60_000) {
  return waitFor(`server ${id} to be ${status}`, async () => {
    const s = await server(id);
    if (s?.status === "ERROR" && status !== "ERROR") throw new Error(`server went ERROR: ${JSON.stringify(s.fault)}`);
    return s?.status === status && s["OS-EXT-STS:task_state"] === null ? s : undefined;
  }, timeoutMs, 200);
}

async function act(id: string, body: unknown, expected = 202) {
  const res = await api("POST", `/v2.1/servers/${id}/action`, body);
  expect(res.status, JSON.stringify(res.body)).toBe(expected);
  return res;
}

async function boot(name: string, az: string, image = imageId, flavor = "a1") {
  const res = await api("POST", "/v2.1/servers", { server: { name, flavorRef: flavor, imageRef: image, networks: [{ uuid: networkId }], availability_zone: az } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.server.id as string;
}

async function vcpusUsed(host: string): Promise<number> {
  const hyp = await api("GET", "/v2.1/os-hypervisors/detail");
  return (hyp.body.hypervisors as { service: { host: string }; vcpus_used: number }[]).find((h) => h.service.host === host)!.vcpus_used;
}

describe("actions on a simulated host", () => {
  it("walks a server through every power action, rebuild and resize", async () => {
    try {
      const id = await boot("actor", "sim");
      await settle(id, "ACTIVE");
      await act(id, { "os-stop": null });
      expect((await settle(id, "SHUTOFF"))["OS-EXT-STS:power_state"]).toBe(4);
      await act(id, { "os-stop": null }, 409);
      await act(id, { "os-start": null });
      expect((await settle(id, "ACTIVE"))["OS-EXT-STS:power_state"]).toBe(1);
      await act(id, { reboot: { type: "SOFT" } });
      await settle(id, "ACTIVE");
      await act(id, { reboot: { type: "HARD" } });
      await settle(id, "ACTIVE");
      await act(id, { pause: null });
      expect((await settle(id, "PAUSED"))["OS-EXT-STS:power_state"]).toBe(3);
      await act(id, { unpause: null });
      await settle(id, "ACTIVE");
      await act(id, { suspend: null });
      expect((await settle(id, "SUSPENDED"))["OS-EXT-STS:vm_state"]).toBe("suspended");
      await act(id, { resume: null });
      await settle(id, "ACTIVE");

      const rebuilt = await act(id, { rebuild: { imageRef: otherImageId, name: "actor-rebuilt" } });
      expect(rebuilt.body.server.status).toBe("REBUILD");
      const afterRebuild = await settle(id, "ACTIVE");
      expect(afterRebuild.image.id).toBe(otherImageId);
      expect(afterRebuild.name).toBe("actor-rebuilt");

      expect(await vcpusUsed(simHost)).toBe(1);
      await act(id, { resize: { flavorRef: "a2" } });
      const verifying = await settle(id, "VERIFY_RESIZE");
      expect(verifying.flavor.id).toBe("a2");
      expect(await vcpusUsed(simHost)).toBe(3); // old and new flavor held until confirm or revert
      await act(id, { revertResize: null });
      const reverted = await settle(id, "ACTIVE");
      expect(reverted.flavor.id).toBe("a1");
      expect(await vcpusUsed(simHost)).toBe(1);

      await act(id, { resize: { flavorRef: "a2" } });
      await settle(id, "VERIFY_RESIZE");
      await act(id, { confirmResize: null }, 204);
      const confirmed = await settle(id, "ACTIVE");
      expect(confirmed.flavor.id).toBe("a2");
      expect(await vcpusUsed(simHost)).toBe(2);

      const actions = await stack.database.db("instance_actions").where({ instance_id: id }).orderBy("id").pluck("action");
      expect(actions).toEqual([
        "create", "stop", "start", "reboot", "reboot", "pause", "unpause", "suspend", "resume", "rebuild",
        "resize", "revertResize", "resize", "confirmResize",
      ]);
      const failed = await stack.database.db("instance_action_events").where({ result: "Error" });
      expect(failed).toEqual([]);

      await api("DELETE", `/v2.1/servers/${id}`);
      await waitFor("the server to be gone", async () => (await api("GET", `/v2.1/servers/${id}`)).status === 404, 30_000);
      expect(await vcpusUsed(simHost)).toBe(0);
      const [alloc] = await stack.database.db("allocations").count<{ count: number }[]>("* as count");
      expect(Number(alloc!.count)).toBe(0);
    } catch (err) {
      console.error(await stack.logs());
      throw err;
    }
  }, 180_000);
});

describe("actions on a real QEMU guest", () => {
  it("shows the console, stops and starts, snapshots, and boots from the snapshot", async () => {
    try {
      const id = await boot("real-actor", "real");
      const s = await settle(id, "ACTIVE", 90_000);
      const domain = s["OS-EXT-SRV-ATTR:instance_name"];
      const consoleOut = await waitFor("the guest's console", async () => {
        const res = await act(id, { "os-getConsoleOutput": { length: 50 } }, 200);
        return (res.body.output as string).includes("cirrus-test-guest: booted") ? (res.body.output as string) : undefined;
      }, 60_000, 1000);
      expect(consoleOut.split("\n").length).toBeLessThanOrEqual(51);
      const two = await act(id, { "os-getConsoleOutput": { length: 2 } }, 200);
      expect((two.body.output as string).trimEnd().split("\n").length).toBeLessThanOrEqual(2);

      await act(id, { "os-stop": null });
      await settle(id, "SHUTOFF", 60_000);
      expect(await virsh("domstate", domain)).toBe("shut off");
      await act(id, { "os-start": null });
      await settle(id, "ACTIVE", 60_000);
      expect(await virsh("domstate", domain)).toBe("running");

      const snap = await act(id, { createImage: { name: "real-snap" } });
      const snapId = new URL(snap.headers.location!).pathname.split("/").pop()!;
      await settle(id, "ACTIVE", 120_000);
      const image = await waitFor("the snapshot to be active", async () => {
        const img = (await api("GET", `/v2/images/${snapId}`)).body;
        return img.status === "active" ? img : undefined;
      }, 120_000, 500);
      expect(image.size).toBeGreaterThan(1_000_000);
      const fromSnap = await boot("from-snapshot", "real", snapId);
      await settle(fromSnap, "ACTIVE", 90_000);
      const out = await waitFor("the snapshot's guest to boot", async () => {
        const res = await api("POST", `/v2.1/servers/${fromSnap}/action`, { "os-getConsoleOutput": null });
        return res.status === 200 && (res.body.output as string).includes("cirrus-test-guest: booted") ? res.body.output : undefined;
      }, 60_000, 1000);
      expect(out).toContain("cirrus-test-guest");
      for (const sid of [id, fromSnap]) await api("DELETE", `/v2.1/servers/${sid}`);
      await waitFor("both to be gone", async () => (await api("GET", `/v2.1/servers/${id}`)).status === 404 && (await api("GET", `/v2.1/servers/${fromSnap}`)).status === 404, 60_000);
    } catch (err) {
      console.error(await stack.logs());
      throw err;
    }
  }, 300_000);
});
