/**
 * The libvirt driver against real libvirt: test:///default (in-process simulation)
 * and qemu:///system (a real QEMU guest).
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Hypervisor } from "@unraid/libvirt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SpawnSpec } from "../../common/messages.js";
import { PowerState } from "../../common/power-state.js";
import { LibvirtDriver } from "../../compute-agent/virt/libvirt/driver.js";
import { instanceNameFromSeq } from "../../compute-agent/virt/libvirt/domain-xml.js";

const run = promisify(execFile);
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

interface ImageInfo {
  "virtual-size": number;
  "backing-filename"?: string;
  "backing-filename-format"?: string;
}

async function imageInfo(file: string): Promise<ImageInfo> {
  // -U: a running guest holds a write lock on its disk.
  const { stdout } = await run("qemu-img", ["info", "-U", "--output=json", file]);
  return JSON.parse(stdout) as ImageInfo;
}

async function virsh(uri: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("virsh", ["-c", uri, ...args]);
  return stdout.trim();
}

/** A random instance-%08x name, so parallel runs on one libvirt do not collide. */
function uniqueName(): string {
  return instanceNameFromSeq(Number.parseInt(randomUUID().slice(0, 8), 16));
}

function makeSpec(base: string, overrides: { disk?: number; ram?: number; properties?: Record<string, string>; location?: string } = {}): SpawnSpec {
  return {
    instance_id: randomUUID(),
    instance_name: uniqueName(),
    project_id: "project-1",
    user_id: "user-1",
    name: "it-vm",
    flavor: { id: "f1", name: "it.tiny", vcpus: 1, ram: overrides.ram ?? 64, disk: overrides.disk ?? 1, ephemeral: 0, swap: 0, extra_specs: {} },
    image: {
      id: randomUUID(),
      name: "blank",
      disk_format: "qcow2",
      location: overrides.location ?? base,
      size: null,
      checksum: null,
      properties: overrides.properties ?? {},
    },
    ports: [
      {
        id: randomUUID(),
        network_id: "net-1",
        network_name: "private",
        mac_address: "fa:16:3e:12:34:56",
        mtu: 1500,
        fixed_ips: [{ subnet_id: "sub-1", ip_address: "10.0.0.5", version: 4, cidr: "10.0.0.0/24", gateway_ip: "10.0.0.1" }],
      },
    ],
    metadata: {},
    config_drive: false,
    user_data: null,
  };
}

/** A temp folder with a blank 64 MiB base image, and a driver whose instances live there. */
function setup(uri: string) {
  const ctx = { tmp: "", base: "", instances: "", driver: null as unknown as LibvirtDriver, spawned: [] as SpawnSpec[] };
  beforeAll(async () => {
    ctx.tmp = await mkdtemp(path.join(os.tmpdir(), "cirrus-libvirt-"));
    ctx.base = path.join(ctx.tmp, "base.qcow2");
    ctx.instances = path.join(ctx.tmp, "instances");
    await run("qemu-img", ["create", "-f", "qcow2", ctx.base, "64M"]);
    ctx.driver = new LibvirtDriver({ uri, instancesPath: ctx.instances });
    await ctx.driver.init();
  });
  afterAll(async () => {
    try {
      for (const s of ctx.spawned) await ctx.driver.destroy(s).catch(() => undefined);
      await ctx.driver.close();
    } finally {
      await rm(ctx.tmp, { recursive: true, force: true });
    }
  });
  const spec = (overrides?: Parameters<typeof makeSpec>[1]) => {
    const s = makeSpec(ctx.base, overrides);
    ctx.spawned.push(s);
    return s;
  };
  return { ctx, spec };
}

describe("LibvirtDriver on test:///default", () => {
  const uri = "test:///default";
  const { ctx, spec } = setup(uri);
  // A second connection in this process sees the same simulated hypervisor.
  const side = new Hypervisor({ uri });
  beforeAll(() => side.connectOpen());
  afterAll(() => side.connectClose());

  async function domainXml(uuid: string): Promise<string> {
    return side.domainGetXMLDesc(await side.domainLookupByUUIDString(uuid));
  }

  it("reports the simulated node's resources", async () => {
    const r = await ctx.driver.hostResources();
    expect(r).toMatchObject({ vcpus: 16, memory_mb: 3072, cpu_arch: "i686", hypervisor_type: "test" });
    expect(r.hypervisor_hostname).toBe(os.hostname());
    expect(r.disk_gb).toBeGreaterThan(0);
    expect(ctx.driver.description).toBe(uri);
  });

  it("spawns once when asked twice, lists it, and destroys it idempotently", async () => {
    const s = spec();
    const dir = path.join(ctx.instances, s.instance_id);
    expect(await ctx.driver.spawn(s)).toBe(PowerState.RUNNING);
    expect(await ctx.driver.spawn(s)).toBe(PowerState.RUNNING);

    const listed = await ctx.driver.listInstances();
    expect(listed.filter((i) => i.instance_id === s.instance_id)).toEqual([
      { instance_id: s.instance_id, instance_name: s.instance_name, power_state: PowerState.RUNNING },
    ]);
    expect(listed.some((i) => i.instance_name === "test")).toBe(false);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.RUNNING);

    const disk = await imageInfo(path.join(dir, "disk"));
    expect(disk["backing-filename"]).toBe(ctx.base);
    expect(disk["backing-filename-format"]).toBe("qcow2");
    expect(disk["virtual-size"]).toBe(1 * GiB);
    expect((await stat(path.join(dir, "console.log"))).isFile()).toBe(true);

    const xml = await domainXml(s.instance_id);
    expect(xml).toContain("<nova:name>it-vm</nova:name>");
    expect(xml).toContain("<interface type='user'>");

    await ctx.driver.destroy(s);
    await ctx.driver.destroy(s);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.NOSTATE);
    expect((await ctx.driver.listInstances()).some((i) => i.instance_id === s.instance_id)).toBe(false);
    expect(existsSync(dir)).toBe(false);
    await expect(side.domainLookupByUUIDString(s.instance_id)).rejects.toThrow(/not found/i);
  });

  it("maps libvirt states to Nova power states and restarts a shut-off domain on spawn", async () => {
    const s = spec();
    await ctx.driver.spawn(s);
    const dom = await side.domainLookupByUUIDString(s.instance_id);

    await side.domainSuspend(dom);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.PAUSED);
    expect(await ctx.driver.spawn(s)).toBe(PowerState.PAUSED);
    await side.domainResume(dom);

    await side.domainDestroy(dom);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.SHUTDOWN);
    expect((await ctx.driver.listInstances()).find((i) => i.instance_id === s.instance_id)?.power_state).toBe(PowerState.SHUTDOWN);
    expect(await ctx.driver.spawn(s)).toBe(PowerState.RUNNING);
    expect((await side.domainGetInfo(dom)).state).toBe(1);

    await ctx.driver.destroy(s);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.NOSTATE);
  });

  it("keeps the base's size when the flavor's disk is 0 or smaller, never shrinking", async () => {
    const noSize = spec({ disk: 0 });
    await ctx.driver.spawn(noSize);
    expect((await imageInfo(path.join(ctx.instances, noSize.instance_id, "disk")))["virtual-size"]).toBe(64 * MiB);
    await ctx.driver.destroy(noSize);

    const bigBase = path.join(ctx.tmp, "big.qcow2");
    await run("qemu-img", ["create", "-f", "qcow2", bigBase, "2G"]);
    const smaller = spec({ disk: 1, location: bigBase });
    await ctx.driver.spawn(smaller);
    expect((await imageInfo(path.join(ctx.instances, smaller.instance_id, "disk")))["virtual-size"]).toBe(2 * GiB);
    await ctx.driver.destroy(smaller);
  });

  it("honours hw_disk_bus and hw_vif_model, and rejects values it cannot build", async () => {
    const s = spec({ properties: { hw_disk_bus: "ide", hw_vif_model: "e1000" } });
    await ctx.driver.spawn(s);
    const xml = await domainXml(s.instance_id);
    expect(xml).toContain("<target dev='hda' bus='ide'/>");
    expect(xml).toContain("<model type='e1000'/>");
    await ctx.driver.destroy(s);

    const bad = spec({ properties: { hw_disk_bus: "floppy" } });
    await expect(ctx.driver.spawn(bad)).rejects.toThrow(/preparing the instance: hw_disk_bus floppy is not supported/);
    expect(existsSync(path.join(ctx.instances, bad.instance_id))).toBe(false);
  });

  it("cleans up and says what failed when the base image is missing", async () => {
    const s = spec({ location: path.join(ctx.tmp, "no-such-image.qcow2") });
    const err = await ctx.driver.spawn(s).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/spawning instance-[0-9a-f]{8} failed while preparing the instance: qemu-img (info|create) failed: .*no-such-image/);
    expect(existsSync(path.join(ctx.instances, s.instance_id))).toBe(false);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.NOSTATE);
  });

  it("cleans up when libvirt refuses the domain (name taken by another uuid)", async () => {
    const first = spec();
    await ctx.driver.spawn(first);
    const clash = { ...spec(), instance_name: first.instance_name };
    await expect(ctx.driver.spawn(clash)).rejects.toThrow(/failed while defining the domain: .*already exists/);
    expect(existsSync(path.join(ctx.instances, clash.instance_id))).toBe(false);
    expect(await ctx.driver.powerState(first)).toBe(PowerState.RUNNING);
    await ctx.driver.destroy(first);
  });

  it("destroys an instance that never existed", async () => {
    const s = spec();
    await expect(ctx.driver.destroy(s)).resolves.toBeUndefined();
  });
});

describe("LibvirtDriver on qemu:///system", () => {
  const uri = "qemu:///system";
  const { ctx, spec } = setup(uri);

  it("runs a real guest on a qcow2 overlay and removes it", { timeout: 60_000 }, async () => {
    const s = spec({ ram: 64, disk: 1 });
    const dir = path.join(ctx.instances, s.instance_id);

    expect(await ctx.driver.spawn(s)).toBe(PowerState.RUNNING);
    expect(await virsh(uri, "domstate", s.instance_name)).toBe("running");
    expect(await ctx.driver.powerState(s)).toBe(PowerState.RUNNING);
    expect((await ctx.driver.listInstances()).find((i) => i.instance_id === s.instance_id)?.power_state).toBe(PowerState.RUNNING);

    const disk = await imageInfo(path.join(dir, "disk"));
    expect(disk["backing-filename"]).toBe(ctx.base);
    expect(disk["virtual-size"]).toBe(1 * GiB);
    const xml = await virsh(uri, "dumpxml", s.instance_name);
    expect(xml).toContain(`<domain type='qemu'`);
    expect(xml).toContain(`<uuid>${s.instance_id}</uuid>`);
    expect(xml).toContain(`<mac address='fa:16:3e:12:34:56'/>`);

    const r = await ctx.driver.hostResources();
    expect(r.hypervisor_type).toBe("QEMU");
    expect(r.cpu_arch).toBe("x86_64");
    expect(r.vcpus).toBe(os.cpus().length);

    await ctx.driver.destroy(s);
    await ctx.driver.destroy(s);
    await expect(virsh(uri, "domstate", s.instance_name)).rejects.toThrow(/failed to get domain/);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.NOSTATE);
    expect(existsSync(dir)).toBe(false);
  });
});
