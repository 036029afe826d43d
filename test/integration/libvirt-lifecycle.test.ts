/**
 * The libvirt driver's lifecycle actions against real libvirt: every action on
 * test:///default (in-process simulation), and the ones a real guest matters for on
 * qemu:///system with the Linux test guest.
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Hypervisor } from "@unraid/libvirt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FlavorSnapshot, SpawnSpec } from "../../common/messages.js";
import { PowerState } from "../../common/power-state.js";
import { LibvirtDriver } from "../../compute-agent/virt/libvirt/driver.js";
import { instanceNameFromSeq } from "../../compute-agent/virt/libvirt/domain-xml.js";
import { testGuestImage } from "../support/guest-image.js";

const run = promisify(execFile);
const GiB = 1024 ** 3;

interface ImageInfo {
  format: string;
  "virtual-size": number;
  "backing-filename"?: string;
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

function uniqueName(): string {
  return instanceNameFromSeq(Number.parseInt(randomUUID().slice(0, 8), 16));
}

function flavor(overrides: Partial<FlavorSnapshot> = {}): FlavorSnapshot {
  return { id: "f1", name: "it.tiny", vcpus: 1, ram: 64, disk: 1, ephemeral: 0, swap: 0, extra_specs: {}, ...overrides };
}

function makeSpec(location: string, f: FlavorSnapshot): SpawnSpec {
  return {
    instance_id: randomUUID(),
    instance_name: uniqueName(),
    project_id: "project-1",
    user_id: "user-1",
    name: "lifecycle-vm",
    flavor: f,
    image: { id: randomUUID(), name: "base", disk_format: "qcow2", location, size: null, checksum: null, properties: {} },
    ports: [],
    metadata: {},
    config_drive: false,
    user_data: null,
  };
}

async function elapsed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = Date.now();
  const result = await fn();
  return [result, Date.now() - t0];
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A temp folder, a driver whose instances live there, and cleanup of whatever was spawned. */
function setup(uri: string, baseSize = "64M") {
  const ctx = { tmp: "", base: "", instances: "", driver: null as unknown as LibvirtDriver, spawned: [] as SpawnSpec[] };
  beforeAll(async () => {
    ctx.tmp = await mkdtemp(path.join(os.tmpdir(), "cirrus-lifecycle-"));
    ctx.base = path.join(ctx.tmp, "base.qcow2");
    ctx.instances = path.join(ctx.tmp, "instances");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", ctx.base, baseSize]);
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
  const spec = (location?: string, f: FlavorSnapshot = flavor()) => {
    const s = makeSpec(location ?? ctx.base, f);
    ctx.spawned.push(s);
    return s;
  };
  return { ctx, spec };
}

describe("LibvirtDriver lifecycle on test:///default", () => {
  const uri = "test:///default";
  const { ctx, spec } = setup(uri);
  const side = new Hypervisor({ uri });
  beforeAll(() => side.connectOpen());
  afterAll(() => side.connectClose());

  const dom = (s: SpawnSpec) => side.domainLookupByUUIDString(s.instance_id);
  const virState = async (s: SpawnSpec) => (await side.domainGetInfo(await dom(s))).state as number;
  const domainId = async (s: SpawnSpec) => side.domainGetID(await dom(s));
  const domainXml = async (s: SpawnSpec) => side.domainGetXMLDesc(await dom(s));
  const instFile = (s: SpawnSpec, name: string) => path.join(ctx.instances, s.instance_id, name);

  it("powers off (clean shutdown, no waiting for the timeout) and on, idempotently", async () => {
    const s = spec();
    await ctx.driver.spawn(s);
    const [off, offMs] = await elapsed(() => ctx.driver.powerOff(s, 30));
    expect(off).toBe(PowerState.SHUTDOWN);
    // The simulated guest obeys the shutdown at once: no wait for the 30 s timeout.
    expect(offMs).toBeLessThan(5_000);
    expect(await virState(s)).toBe(5);
    expect(await ctx.driver.powerOff(s, 30)).toBe(PowerState.SHUTDOWN);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.SHUTDOWN);

    expect(await ctx.driver.powerOn(s)).toBe(PowerState.RUNNING);
    expect(await virState(s)).toBe(1);
    const id = await domainId(s);
    expect(await ctx.driver.powerOn(s)).toBe(PowerState.RUNNING);
    expect(await domainId(s)).toBe(id); // not restarted
    expect(await ctx.driver.powerState(s)).toBe(PowerState.RUNNING);

    // A paused guest cannot see ACPI: it is forced off straight away.
    await ctx.driver.pause(s);
    const [offPaused, pausedMs] = await elapsed(() => ctx.driver.powerOff(s, 30));
    expect(offPaused).toBe(PowerState.SHUTDOWN);
    expect(pausedMs).toBeLessThan(5_000);
  });

  it("reboots soft and hard, each one a new start of the domain, and hard from any state", async () => {
    const s = spec();
    await ctx.driver.spawn(s);
    let id = await domainId(s);
    for (const hard of [false, true]) {
      expect(await ctx.driver.reboot(s, hard, 10)).toBe(PowerState.RUNNING);
      const next = await domainId(s);
      expect(next).not.toBe(id); // libvirt gives every start a new domain id
      id = next;
    }
    // Not running: a soft reboot falls back to hard, as in Nova.
    await ctx.driver.powerOff(s, 10);
    expect(await ctx.driver.reboot(s, false, 10)).toBe(PowerState.RUNNING);
    await ctx.driver.pause(s);
    expect(await ctx.driver.reboot(s, true, 10)).toBe(PowerState.RUNNING);
    expect(await virState(s)).toBe(1);
    // A suspended one boots afresh and its saved state is gone.
    await ctx.driver.suspend(s);
    expect(await ctx.driver.reboot(s, true, 10)).toBe(PowerState.RUNNING);
    expect(existsSync(instFile(s, "suspend.save"))).toBe(false);
  });

  it("pauses and unpauses idempotently, and refuses to pause a stopped domain", async () => {
    const s = spec();
    await ctx.driver.spawn(s);
    expect(await ctx.driver.pause(s)).toBe(PowerState.PAUSED);
    expect(await virState(s)).toBe(3);
    expect(await ctx.driver.pause(s)).toBe(PowerState.PAUSED);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.PAUSED);
    expect(await ctx.driver.unpause(s)).toBe(PowerState.RUNNING);
    expect(await virState(s)).toBe(1);
    expect(await ctx.driver.unpause(s)).toBe(PowerState.RUNNING);

    await ctx.driver.powerOff(s, 10);
    await expect(ctx.driver.pause(s)).rejects.toThrow(/pausing instance-[0-9a-f]{8} failed: the domain is not running/);
    await expect(ctx.driver.unpause(s)).rejects.toThrow(/unpausing instance-[0-9a-f]{8} failed: the domain is not paused/);
  });

  it("suspends to a save file (SUSPENDED while it exists) and resumes from it, idempotently", async () => {
    const s = spec();
    const save = instFile(s, "suspend.save");
    await ctx.driver.spawn(s);
    expect(await ctx.driver.suspend(s)).toBe(PowerState.SUSPENDED);
    expect(existsSync(save)).toBe(true);
    expect(await virState(s)).toBe(5); // off, but still defined
    expect(await ctx.driver.powerState(s)).toBe(PowerState.SUSPENDED);
    expect((await ctx.driver.listInstances()).find((i) => i.instance_id === s.instance_id)?.power_state).toBe(PowerState.SUSPENDED);
    expect(await ctx.driver.suspend(s)).toBe(PowerState.SUSPENDED);
    // A repeated spawn leaves it suspended, as it leaves a paused one paused.
    expect(await ctx.driver.spawn(s)).toBe(PowerState.SUSPENDED);
    expect(await virState(s)).toBe(5);
    expect((await readdir(path.dirname(save))).filter((f) => f.endsWith(".part"))).toEqual([]);

    expect(await ctx.driver.resume(s)).toBe(PowerState.RUNNING);
    expect(existsSync(save)).toBe(false);
    expect(await virState(s)).toBe(1);
    expect(await ctx.driver.resume(s)).toBe(PowerState.RUNNING);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.RUNNING);

    // A guest paused when suspended is running after the resume.
    await ctx.driver.pause(s);
    expect(await ctx.driver.suspend(s)).toBe(PowerState.SUSPENDED);
    expect(await ctx.driver.resume(s)).toBe(PowerState.RUNNING);
    expect(await virState(s)).toBe(1);

    // Power on restores the saved state too; power off discards it.
    await ctx.driver.suspend(s);
    expect(await ctx.driver.powerOn(s)).toBe(PowerState.RUNNING);
    expect(existsSync(save)).toBe(false);
    await ctx.driver.suspend(s);
    expect(await ctx.driver.powerOff(s, 10)).toBe(PowerState.SHUTDOWN);
    expect(existsSync(save)).toBe(false);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.SHUTDOWN);

    await expect(ctx.driver.suspend(s)).rejects.toThrow(/suspending instance-[0-9a-f]{8} failed: the domain is not running/);
    await expect(ctx.driver.resume(s)).rejects.toThrow(/resuming .* failed: the domain is off and has no saved state/);

    // Destroy takes the save file with the instance folder.
    await ctx.driver.powerOn(s);
    await ctx.driver.suspend(s);
    await ctx.driver.destroy(s);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.NOSTATE);
    expect(existsSync(path.dirname(save))).toBe(false);
  });

  it("does not take a stale save file for a suspended state after a fresh spawn", async () => {
    const s = spec();
    const save = instFile(s, "suspend.save");
    await ctx.driver.spawn(s);
    await ctx.driver.suspend(s);
    // The domain vanishes behind our back (undefined by hand); the folder and file stay.
    const d = await dom(s);
    await side.domainUndefine(d);
    expect(existsSync(save)).toBe(true);
    expect(await ctx.driver.spawn(s)).toBe(PowerState.RUNNING);
    expect(existsSync(save)).toBe(false);
    await ctx.driver.powerOff(s, 10);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.SHUTDOWN);
  });

  it("returns the console log, its last 100 KiB, or an empty string", async () => {
    const s = spec();
    await ctx.driver.spawn(s);
    const log = instFile(s, "console.log");
    expect(await ctx.driver.consoleOutput(s)).toBe(""); // the simulated guest writes nothing
    await writeFile(log, "line 1\nline 2\n");
    expect(await ctx.driver.consoleOutput(s)).toBe("line 1\nline 2\n");
    await writeFile(log, "x".repeat(150 * 1024) + "THE END\n");
    const tail = await ctx.driver.consoleOutput(s);
    expect(tail.length).toBe(100 * 1024);
    expect(tail.endsWith("THE END\n")).toBe(true);
    await rm(log);
    expect(await ctx.driver.consoleOutput(s)).toBe("");
  });

  it("rebuilds onto a new image (running or stopped) and keeps the old disk when the new image fails", async () => {
    const other = path.join(ctx.tmp, "other.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", other, "32M"]);
    const s = spec();
    await ctx.driver.spawn(s);
    const disk = instFile(s, "disk");
    expect((await imageInfo(disk))["backing-filename"]).toBe(ctx.base);

    const rebuilt: SpawnSpec = { ...s, image: { ...s.image, id: randomUUID(), location: other } };
    const idBefore = await domainId(s);
    expect(await ctx.driver.rebuild(rebuilt, false)).toBe(PowerState.RUNNING);
    expect((await imageInfo(disk))["backing-filename"]).toBe(other);
    expect(await domainId(s)).not.toBe(idBefore);
    expect(await domainXml(s)).toContain(`uuid="${rebuilt.image.id}"`);
    expect(existsSync(instFile(s, "disk.rebuild-old"))).toBe(false);

    // Stopped: the disk is replaced and the domain stays off.
    expect(await ctx.driver.rebuild(s, true)).toBe(PowerState.SHUTDOWN);
    expect(await virState(s)).toBe(5);
    expect((await imageInfo(disk))["backing-filename"]).toBe(ctx.base);

    const broken: SpawnSpec = { ...s, image: { ...s.image, location: path.join(ctx.tmp, "missing.qcow2") } };
    await expect(ctx.driver.rebuild(broken, false)).rejects.toThrow(/rebuilding instance-[0-9a-f]{8} failed while preparing the new root disk: .*missing\.qcow2/);
    expect((await imageInfo(disk))["backing-filename"]).toBe(ctx.base);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.SHUTDOWN);

    // A domain that is gone (a failed spawn, say) is defined afresh.
    const fresh = spec();
    expect(await ctx.driver.rebuild(fresh, false)).toBe(PowerState.RUNNING);
    expect((await imageInfo(instFile(fresh, "disk")))["backing-filename"]).toBe(ctx.base);
  });

  it("resizes (vCPUs, memory, a larger disk), reverts to the backups, and confirms", async () => {
    const small = flavor({ name: "it.small", vcpus: 1, ram: 64, disk: 1 });
    const large = flavor({ id: "f2", name: "it.large", vcpus: 2, ram: 128, disk: 2 });
    const s = spec(undefined, small);
    const bigger: SpawnSpec = { ...s, flavor: large };
    const disk = instFile(s, "disk");
    const diskBackup = instFile(s, "disk.resize-backup");
    const xmlBackup = instFile(s, "domain.resize-backup.xml");
    await ctx.driver.spawn(s);

    const idBefore = await domainId(s);
    expect(await ctx.driver.resize(bigger, false)).toBe(PowerState.RUNNING);
    expect(await domainId(s)).not.toBe(idBefore);
    let xml = await domainXml(s);
    expect(xml).toMatch(/<vcpu[^>]*>2<\/vcpu>/);
    expect(xml).toContain("<memory unit='KiB'>131072</memory>");
    expect(xml).toContain("<currentMemory unit='KiB'>131072</currentMemory>");
    expect(xml).toContain("<nova:vcpus>2</nova:vcpus>");
    expect(xml).toMatch(/<nova:flavor name=["']it\.large["']>/);
    expect((await imageInfo(disk))["virtual-size"]).toBe(2 * GiB);
    expect((await imageInfo(disk))["backing-filename"]).toBe(ctx.base);
    expect((await imageInfo(diskBackup))["virtual-size"]).toBe(1 * GiB);
    expect(await readFile(xmlBackup, "utf8")).toMatch(/<vcpu[^>]*>1<\/vcpu>/);

    expect(await ctx.driver.revertResize(s, false)).toBe(PowerState.RUNNING);
    xml = await domainXml(s);
    expect(xml).toMatch(/<vcpu[^>]*>1<\/vcpu>/);
    expect(xml).toContain("<memory unit='KiB'>65536</memory>");
    expect(xml).toMatch(/<nova:flavor name=["']it\.small["']>/);
    expect((await imageInfo(disk))["virtual-size"]).toBe(1 * GiB);
    expect(existsSync(diskBackup)).toBe(false);
    expect(existsSync(xmlBackup)).toBe(false);
    // Reverting again finds nothing to restore and changes nothing.
    const idAfterRevert = await domainId(s);
    expect(await ctx.driver.revertResize(s, false)).toBe(PowerState.RUNNING);
    expect(await domainId(s)).toBe(idAfterRevert);

    // Stopped, and retried: the first attempt's backups (the real "before") are kept.
    expect(await ctx.driver.resize(bigger, true)).toBe(PowerState.SHUTDOWN);
    expect(await virState(s)).toBe(5);
    expect(await ctx.driver.resize(bigger, true)).toBe(PowerState.SHUTDOWN);
    expect(await readFile(xmlBackup, "utf8")).toMatch(/<vcpu[^>]*>1<\/vcpu>/);
    expect((await imageInfo(diskBackup))["virtual-size"]).toBe(1 * GiB);
    await ctx.driver.confirmResize(s);
    expect(existsSync(diskBackup)).toBe(false);
    expect(existsSync(xmlBackup)).toBe(false);
    await ctx.driver.confirmResize(s);
    expect(await domainXml(s)).toMatch(/<vcpu[^>]*>2<\/vcpu>/);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.SHUTDOWN);

    // Never shrinks the disk.
    expect(await ctx.driver.resize(s, false)).toBe(PowerState.RUNNING);
    expect((await imageInfo(disk))["virtual-size"]).toBe(2 * GiB);
    expect(await domainXml(s)).toMatch(/<vcpu[^>]*>1<\/vcpu>/);
    await ctx.driver.confirmResize(s);

    await ctx.driver.suspend(s);
    await expect(ctx.driver.resize(bigger, false)).rejects.toThrow(/resizing .* failed: the instance is suspended/);
  });

  it("reverts a resize left stopped, and applies the spec's flavor when the definition backup is lost", async () => {
    const s = spec(undefined, flavor({ vcpus: 1, ram: 64 }));
    await ctx.driver.spawn(s);
    await ctx.driver.resize({ ...s, flavor: flavor({ vcpus: 3, ram: 96, disk: 1 }) }, false);
    await rm(instFile(s, "domain.resize-backup.xml"));
    expect(await ctx.driver.revertResize(s, true)).toBe(PowerState.SHUTDOWN);
    const xml = await domainXml(s);
    expect(xml).toMatch(/<vcpu[^>]*>1<\/vcpu>/);
    expect(xml).toContain("<memory unit='KiB'>65536</memory>");
    expect(existsSync(instFile(s, "disk.resize-backup"))).toBe(false);
  });

  it("snapshots the root disk into a standalone qcow2 with the same content, atomically", async () => {
    const base = path.join(ctx.tmp, "patterned.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", base, "16M"]);
    await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0xab 0 1M", base]);
    const s = spec(base);
    await ctx.driver.spawn(s);
    const disk = instFile(s, "disk");
    await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0xcd 2M 1M", disk]);

    const folder = path.join(ctx.tmp, "snapshots", "nested", String(Date.now()));
    const dest = path.join(folder, "snap.qcow2");
    await ctx.driver.snapshot(s, dest);
    const info = await imageInfo(dest);
    expect(info.format).toBe("qcow2");
    expect(info["backing-filename"]).toBeUndefined();
    expect(info["virtual-size"]).toBe((await imageInfo(disk))["virtual-size"]);
    // Same guest-visible content as the overlay: base data plus the overlay's writes.
    await run("qemu-img", ["compare", "-f", "qcow2", "-F", "qcow2", disk, dest]);
    await run("qemu-io", ["-f", "qcow2", "-c", "read -P 0xab 0 1M", "-c", "read -P 0xcd 2M 1M", dest]);
    expect(await readdir(folder)).toEqual(["snap.qcow2"]);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.RUNNING); // paused only for the copy

    // Also from paused (stays paused) and suspended (stays suspended).
    await ctx.driver.pause(s);
    await ctx.driver.snapshot(s, path.join(folder, "paused.qcow2"));
    expect(await ctx.driver.powerState(s)).toBe(PowerState.PAUSED);
    await ctx.driver.unpause(s);
    await ctx.driver.suspend(s);
    await ctx.driver.snapshot(s, path.join(folder, "suspended.qcow2"));
    expect(await ctx.driver.powerState(s)).toBe(PowerState.SUSPENDED);

    // A failed copy leaves no file under the name, nor a temporary one.
    await rm(disk);
    await expect(ctx.driver.snapshot(s, path.join(folder, "broken.qcow2"))).rejects.toThrow(/snapshotting .* failed while copying the disk: qemu-img convert failed/);
    expect((await readdir(folder)).sort()).toEqual(["paused.qcow2", "snap.qcow2", "suspended.qcow2"]);
  });

  it("refuses every action on a domain that does not exist, naming the action", async () => {
    const s = spec();
    const f = flavor();
    const cases: [string, () => Promise<unknown>][] = [
      ["powering off", () => ctx.driver.powerOff(s, 1)],
      ["powering on", () => ctx.driver.powerOn(s)],
      ["rebooting", () => ctx.driver.reboot(s, false, 1)],
      ["hard rebooting", () => ctx.driver.reboot(s, true, 1)],
      ["pausing", () => ctx.driver.pause(s)],
      ["unpausing", () => ctx.driver.unpause(s)],
      ["suspending", () => ctx.driver.suspend(s)],
      ["resuming", () => ctx.driver.resume(s)],
      ["reading the console of", () => ctx.driver.consoleOutput(s)],
      ["resizing", () => ctx.driver.resize({ ...s, flavor: f }, false)],
      ["reverting the resize of", () => ctx.driver.revertResize(s, false)],
      ["snapshotting", () => ctx.driver.snapshot(s, path.join(ctx.tmp, "never.qcow2"))],
    ];
    for (const [action, call] of cases) {
      await expect(call(), action).rejects.toThrow(`${action} ${s.instance_name} failed: there is no domain ${s.instance_name}`);
    }
    await expect(ctx.driver.confirmResize(s)).resolves.toBeUndefined();
    expect(existsSync(path.join(ctx.tmp, "never.qcow2"))).toBe(false);
  });
});

describe("LibvirtDriver lifecycle on qemu:///system with the Linux test guest", () => {
  const uri = "qemu:///system";
  const { ctx, spec } = setup(uri, "16M");
  let guest = "";
  beforeAll(async () => {
    guest = await testGuestImage();
  }, 240_000);

  const BOOT_TIMEOUT_MS = 90_000;
  const booted = async (s: SpawnSpec) => (await ctx.driver.consoleOutput(s)).includes("cirrus-test-guest: booted");
  const reason = (s: SpawnSpec) => virsh(uri, "domstate", "--reason", s.instance_name);
  const timings: Record<string, number> = {};
  afterAll(() => {
    console.log(`qemu:///system lifecycle timings (ms): ${JSON.stringify(timings)}`);
  });

  it("boots, logs to the console, and goes through power, reboot, pause and suspend", { timeout: 600_000 }, async () => {
    const s = spec(guest, flavor({ ram: 128, disk: 1 }));
    [, timings.spawn] = await elapsed(() => ctx.driver.spawn(s));
    await waitFor("the guest to boot", () => booted(s), BOOT_TIMEOUT_MS);
    expect((await ctx.driver.consoleOutput(s)).length).toBeGreaterThan(0);

    // The test guest runs no ACPI daemon: it ignores the request, so the timeout forces it off.
    let state: PowerState;
    [state, timings.powerOff3s] = await elapsed(() => ctx.driver.powerOff(s, 3));
    expect(state).toBe(PowerState.SHUTDOWN);
    expect(timings.powerOff3s).toBeGreaterThanOrEqual(3_000);
    expect(await reason(s)).toMatch(/^shut off/);
    expect(await ctx.driver.powerOff(s, 3)).toBe(PowerState.SHUTDOWN);

    [state, timings.powerOn] = await elapsed(() => ctx.driver.powerOn(s));
    expect(state).toBe(PowerState.RUNNING);
    expect(await virsh(uri, "domstate", s.instance_name)).toBe("running");
    expect(await ctx.driver.powerOn(s)).toBe(PowerState.RUNNING);
    await waitFor("the guest to boot again", () => booted(s), BOOT_TIMEOUT_MS);

    // Hard reboot: a new QEMU process, so the (append='off') log starts over and the guest boots again.
    const pid = async () => (await run("pgrep", ["-f", `guest=${s.instance_name}`])).stdout.trim();
    const pidBefore = await pid();
    [state, timings.hardReboot] = await elapsed(() => ctx.driver.reboot(s, true, 3));
    expect(state).toBe(PowerState.RUNNING);
    expect(await pid()).not.toBe(pidBefore);
    expect(await booted(s)).toBe(false);
    await waitFor("the guest to boot after the hard reboot", () => booted(s), BOOT_TIMEOUT_MS);

    // Soft reboot: the guest ignores the shutdown, so after the timeout it is rebooted hard.
    const pidSoft = await pid();
    [state, timings.softReboot3sFallback] = await elapsed(() => ctx.driver.reboot(s, false, 3));
    expect(state).toBe(PowerState.RUNNING);
    expect(timings.softReboot3sFallback).toBeGreaterThanOrEqual(3_000);
    expect(await pid()).not.toBe(pidSoft);

    [state, timings.pause] = await elapsed(() => ctx.driver.pause(s));
    expect(state).toBe(PowerState.PAUSED);
    expect(await virsh(uri, "domstate", s.instance_name)).toBe("paused");
    [state, timings.unpause] = await elapsed(() => ctx.driver.unpause(s));
    expect(state).toBe(PowerState.RUNNING);
    expect(await virsh(uri, "domstate", s.instance_name)).toBe("running");

    await waitFor("the guest to boot before suspending", () => booted(s), BOOT_TIMEOUT_MS);
    [state, timings.suspend] = await elapsed(() => ctx.driver.suspend(s));
    expect(state).toBe(PowerState.SUSPENDED);
    expect(await reason(s)).toBe("shut off (saved)");
    expect(await ctx.driver.powerState(s)).toBe(PowerState.SUSPENDED);
    expect(existsSync(path.join(ctx.instances, s.instance_id, "suspend.save"))).toBe(true);
    [state, timings.resume] = await elapsed(() => ctx.driver.resume(s));
    expect(state).toBe(PowerState.RUNNING);
    expect(await reason(s)).toBe("running (restored)");
    expect(existsSync(path.join(ctx.instances, s.instance_id, "suspend.save"))).toBe(false);

    await ctx.driver.destroy(s);
    expect(await ctx.driver.powerState(s)).toBe(PowerState.NOSTATE);
  });

  it("snapshots a running guest into a standalone image that boots on its own", { timeout: 600_000 }, async () => {
    const s = spec(guest, flavor({ ram: 128, disk: 1 }));
    await ctx.driver.spawn(s);
    await waitFor("the guest to boot", () => booted(s), BOOT_TIMEOUT_MS);
    const dest = path.join(ctx.tmp, "snapshots", "running.qcow2");
    [, timings.snapshotRunning] = await elapsed(() => ctx.driver.snapshot(s, dest));
    expect(await virsh(uri, "domstate", s.instance_name)).toBe("running");
    const info = await imageInfo(dest);
    expect(info.format).toBe("qcow2");
    expect(info["backing-filename"]).toBeUndefined();
    await ctx.driver.destroy(s);

    // The flattened copy is a whole bootable disk: a new instance boots from it.
    const fromSnapshot = spec(dest, flavor({ ram: 128, disk: 1 }));
    await ctx.driver.spawn(fromSnapshot);
    await waitFor("the snapshot's guest to boot", () => booted(fromSnapshot), BOOT_TIMEOUT_MS);
    await ctx.driver.destroy(fromSnapshot);
  });
});
