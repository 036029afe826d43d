/**
 * The classic `nova boot NAME --flavor F --nic net-id=N,v4-fixed-ip=IP --image I
 * --config-drive True` (with user data) as POST /v2.1/servers, through the real
 * processes on qemu:///system: the image is uploaded through the API and the agent
 * downloads it into its cache; the port lands on a real Linux bridge mapped from the
 * network's physical network; the guest reads its config drive and says so on its
 * serial console. A boot that fails leaves nothing behind.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFlavor, uploadImage } from "../support/api-fixtures.js";
import { testGuestImage } from "../support/guest-image.js";
import { client, startStack, waitFor, type Stack } from "../support/stack.js";
import { uniqueName } from "../support/services.js";

const run = promisify(execFile);
const virsh = (...args: string[]) => run("virsh", ["-c", "qemu:///system", ...args]).then((r) => r.stdout.trim());
const isRoot = process.getuid?.() === 0;

let stack: Stack;
let api: ReturnType<typeof client>;
let cacheDir: string;
let imageId: string;
let networkId: string;
const host = uniqueName("cd");
const bridge = `cirtest${randomBytes(3).toString("hex")}`; // 13 characters
const physnet = "physnet-e2e";
const USER_DATA = `#!/bin/sh\necho cirrus-user-data-${randomBytes(4).toString("hex")}\n`;

beforeAll(async () => {
  const guest = await testGuestImage();
  cacheDir = await mkdtemp(path.join(os.tmpdir(), "cirrus-e2e-cache-"));
  stack = await startStack({
    agents: [
      {
        host,
        uri: "qemu:///system",
        env: { CIRRUS_IMAGE_CACHE: cacheDir, CIRRUS_BRIDGE_MAPPINGS: `${physnet}:${bridge}` },
      },
    ],
  });
  api = client(stack);
  imageId = await uploadImage(stack, guest, { name: "cirrus-test-guest" });
  const net = await api("POST", "/v2.0/networks", {
    network: { name: "provider-net", shared: true, "provider:network_type": "flat", "provider:physical_network": physnet },
  });
  expect(net.status, JSON.stringify(net.body)).toBe(201);
  networkId = net.body.network.id;
  const sub = await api("POST", "/v2.0/subnets", { subnet: { network_id: networkId, cidr: "10.77.0.0/24", ip_version: 4, dns_nameservers: ["10.77.0.2"] } });
  expect(sub.status, JSON.stringify(sub.body)).toBe(201);
  await createFlavor(stack, { id: "cd.small", ram: 128, vcpus: 1, disk: 1 });
}, 300_000);

afterAll(async () => {
  await stack?.stop();
  await rm(cacheDir, { recursive: true, force: true });
  await run("ip", ["link", "del", bridge]).catch(() => undefined);
});

async function waitForStatus(id: string, wanted: string[], timeoutMs = 120_000) {
  return waitFor(`server ${id} to reach ${wanted.join("/")}`, async () => {
    const res = await api("GET", `/v2.1/servers/${id}`);
    return wanted.includes(res.body?.server?.status) ? res.body.server : undefined;
  }, timeoutMs);
}

describe.skipIf(!isRoot)("nova boot --config-drive True on qemu:///system", () => {
  it("boots from the downloaded image, on the mapped bridge, with a config drive the guest reads", async () => {
    try {
      const res = await api("POST", "/v2.1/servers", {
        server: {
          name: "cd-vm",
          flavorRef: "cd.small",
          imageRef: imageId,
          networks: [{ uuid: networkId, fixed_ip: "10.77.0.50" }],
          config_drive: true,
          user_data: Buffer.from(USER_DATA).toString("base64"),
          metadata: { role: "e2e" },
        },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const id = res.body.server.id as string;
      const server = await waitForStatus(id, ["ACTIVE", "ERROR"]);
      expect(server.status, JSON.stringify(server.fault)).toBe("ACTIVE");

      // GET /servers/{id} shows the requested IP with its MAC.
      const nic = (server.addresses["provider-net"] as { addr: string; version: number; "OS-EXT-IPS-MAC:mac_addr": string }[])[0]!;
      expect(nic.addr).toBe("10.77.0.50");
      const mac = nic["OS-EXT-IPS-MAC:mac_addr"];
      expect(mac).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/);

      // The agent downloaded the image once into its cache and the disk is an overlay on it.
      const base = path.join(cacheDir, createHash("sha1").update(imageId).digest("hex"));
      expect(await readdir(cacheDir)).toEqual([path.basename(base)]);
      const agent = stack.agents[0]!;
      const dir = path.join(agent.instancesPath, id);
      const info = JSON.parse((await run("qemu-img", ["info", "-U", "--output=json", path.join(dir, "disk")])).stdout) as { "backing-filename": string };
      expect(info["backing-filename"]).toBe(base);

      // libvirt's own view: the MAC on the mapped bridge, the config drive as a cdrom.
      const domain = server["OS-EXT-SRV-ATTR:instance_name"] as string;
      const xml = await virsh("dumpxml", domain);
      expect(xml).toMatch(new RegExp(`<interface type='bridge'>\\s*<mac address='${mac}'/>\\s*<source bridge='${bridge}'/>`));
      expect(xml).toContain(`<target dev='tap`);
      expect(xml).toMatch(/<disk type='file' device='cdrom'>[\s\S]*?disk\.config[\s\S]*?<target dev='hd[a-d]' bus='ide'\/>/);
      expect(existsSync(`/sys/class/net/${bridge}/bridge`)).toBe(true);
      const tap = /<target dev='(tap[^']+)'/.exec(xml)![1]!;
      expect(existsSync(`/sys/class/net/${bridge}/brif/${tap}`)).toBe(true);

      // The ISO read back: meta_data.json holds the uuid; user_data is the decoded request.
      const iso = path.join(dir, "disk.config");
      expect((await run("isoinfo", ["-d", "-i", iso])).stdout).toMatch(/Volume id: config-2/);
      const md = JSON.parse((await run("isoinfo", ["-R", "-i", iso, "-x", "/openstack/latest/meta_data.json"])).stdout);
      expect(md).toMatchObject({ uuid: id, name: "cd-vm", hostname: "cd-vm", meta: { role: "e2e" }, project_id: "admin", launch_index: 0 });
      expect((await run("isoinfo", ["-R", "-i", iso, "-x", "/openstack/latest/user_data"])).stdout).toBe(USER_DATA);
      const nd = JSON.parse((await run("isoinfo", ["-R", "-i", iso, "-x", "/openstack/latest/network_data.json"])).stdout);
      expect(nd.links[0].ethernet_mac_address).toBe(mac);
      expect(nd.networks[0]).toMatchObject({ ip_address: "10.77.0.50", netmask: "255.255.255.0", network_id: networkId });

      // From inside the guest: its /init printed what it found on the serial console.
      const consoleLog = path.join(dir, "console.log");
      const seen = await waitFor("the guest to report its config drive", async () => {
        const text = await readFile(consoleLog, "utf8");
        return text.includes("cirrus-test-guest: ready") ? text : undefined;
      }, 90_000, 500);
      expect(seen).toContain("config drive found");
      expect(seen).toContain(`"uuid": "${id}"`.replace(": ", ":")); // JSON.stringify writes no spaces
      expect(seen).toContain(USER_DATA.trim().split("\n")[1]!);
      expect(seen).toContain(`mac ${mac}`);

      expect((await api("DELETE", `/v2.1/servers/${id}`)).status).toBe(204);
      await waitFor("the server to be gone", async () => (await api("GET", `/v2.1/servers/${id}`)).status === 404, 60_000);
      await expect(virsh("domstate", domain)).rejects.toThrow(/failed to get domain|Domain not found/);
      expect(existsSync(dir)).toBe(false);
    } catch (err) {
      console.error(await stack.logs());
      throw err;
    }
  }, 300_000);

  it("a boot that fails on the host leaves no domain or disk, and after delete no port or IP", async () => {
    // The domain cannot be built (unknown video model) after the download, overlay and config drive.
    const guest = await testGuestImage();
    const bad = await uploadImage(stack, guest, { name: "bad-video", hw_video_model: "matrox" });
    const res = await api("POST", "/v2.1/servers", {
      server: { name: "doomed", flavorRef: "cd.small", imageRef: bad, networks: [{ uuid: networkId, fixed_ip: "10.77.0.60" }], config_drive: "True" },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const id = res.body.server.id as string;
    try {
      const server = await waitForStatus(id, ["ERROR", "ACTIVE"], 90_000);
      expect(server.status).toBe("ERROR");
      expect(server.fault.message).toMatch(/hw_video_model matrox/);
      const dir = path.join(stack.agents[0]!.instancesPath, id);
      expect(existsSync(dir)).toBe(false);
      const domains = await virsh("list", "--all", "--uuid");
      expect(domains.split("\n")).not.toContain(id);

      expect((await api("DELETE", `/v2.1/servers/${id}`)).status).toBe(204);
      await waitFor("the failed server to be gone", async () => (await api("GET", `/v2.1/servers/${id}`)).status === 404, 60_000);
      expect(await stack.database.db("ports").where({ device_id: id })).toEqual([]);
      expect(await stack.database.db("ip_allocations").where({ ip_address: "10.77.0.60" })).toEqual([]);
      // The address is free again.
      const again = await api("POST", "/v2.1/servers", {
        server: { name: "reuse", flavorRef: "cd.small", imageRef: imageId, networks: [{ uuid: networkId, fixed_ip: "10.77.0.60" }] },
      });
      expect(again.status, JSON.stringify(again.body)).toBe(202);
      await waitForStatus(again.body.server.id, ["ACTIVE", "ERROR"]);
      expect((await api("DELETE", `/v2.1/servers/${again.body.server.id}`)).status).toBe(204);
    } catch (err) {
      console.error(await stack.logs());
      throw err;
    }
  }, 300_000);
});
