import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { SpawnSpec } from "../../common/messages.js";
import { PowerState } from "../../common/power-state.js";
import { FakeDriver } from "../../compute-agent/virt/fake.js";

function spec(overrides: Partial<SpawnSpec> = {}): SpawnSpec {
  return {
    instance_id: randomUUID(),
    instance_name: "instance-00000001",
    project_id: "p1",
    user_id: "u1",
    name: "vm",
    flavor: { id: "1", name: "m1.tiny", vcpus: 1, ram: 512, disk: 1, ephemeral: 0, swap: 0, extra_specs: {} },
    image: { id: "img", name: "cirros", disk_format: "qcow2", location: "/images/cirros", size: null, checksum: null, properties: {} },
    ports: [],
    metadata: {},
    config_drive: false,
    user_data: null,
    ...overrides,
  };
}

describe("FakeDriver", () => {
  it("spawns once, however often it is asked", async () => {
    const d = new FakeDriver();
    await d.init();
    const s = spec();
    expect(await d.spawn(s)).toBe(PowerState.RUNNING);
    expect(await d.spawn(s)).toBe(PowerState.RUNNING);
    expect(await d.listInstances()).toEqual([
      { instance_id: s.instance_id, instance_name: s.instance_name, power_state: PowerState.RUNNING },
    ]);
    expect(await d.powerState(s)).toBe(PowerState.RUNNING);
  });

  it("starts a shut-off instance again on spawn, but leaves a paused one paused", async () => {
    const d = new FakeDriver();
    const a = spec({ instance_name: "instance-0000000a" });
    const b = spec({ instance_name: "instance-0000000b" });
    await d.spawn(a);
    await d.spawn(b);
    d.setPowerState(a.instance_id, PowerState.SHUTDOWN);
    d.setPowerState(b.instance_id, PowerState.PAUSED);
    expect(await d.powerState(a)).toBe(PowerState.SHUTDOWN);
    expect(await d.spawn(a)).toBe(PowerState.RUNNING);
    expect(await d.powerState(a)).toBe(PowerState.RUNNING);
    expect(await d.spawn(b)).toBe(PowerState.PAUSED);
  });

  it("destroys idempotently and reports NOSTATE afterwards", async () => {
    const d = new FakeDriver();
    const s = spec();
    await d.spawn(s);
    await d.destroy(s);
    await d.destroy(s);
    expect(await d.powerState(s)).toBe(PowerState.NOSTATE);
    expect(await d.listInstances()).toEqual([]);
  });

  it("fails a spawn with the hook's message and keeps nothing", async () => {
    const d = new FakeDriver({ failSpawn: (s) => (s.name === "doomed" ? "no valid host: simulated failure" : undefined) });
    const doomed = spec({ name: "doomed" });
    await expect(d.spawn(doomed)).rejects.toThrow("no valid host: simulated failure");
    expect(await d.powerState(doomed)).toBe(PowerState.NOSTATE);
    const fine = spec({ name: "fine", instance_name: "instance-00000002" });
    expect(await d.spawn(fine)).toBe(PowerState.RUNNING);
    expect((await d.listInstances()).map((i) => i.instance_id)).toEqual([fine.instance_id]);
  });

  it("refuses a second domain with the same name, as libvirt does", async () => {
    const d = new FakeDriver();
    await d.spawn(spec({ instance_name: "instance-00000005" }));
    await expect(d.spawn(spec({ instance_name: "instance-00000005" }))).rejects.toThrow(/already exists/);
    expect(await d.listInstances()).toHaveLength(1);
  });

  it("reports configured resources over the defaults, as a copy", async () => {
    const d = new FakeDriver({ resources: { vcpus: 4, hypervisor_hostname: "sim-17" } });
    const r = await d.hostResources();
    expect(r).toMatchObject({ vcpus: 4, hypervisor_hostname: "sim-17", hypervisor_type: "fake", cpu_arch: "x86_64" });
    expect(r.memory_mb).toBeGreaterThan(0);
    r.vcpus = 999;
    expect((await d.hostResources()).vcpus).toBe(4);
  });

  it("refuses to change the state of an instance it does not have", () => {
    expect(() => new FakeDriver().setPowerState(randomUUID(), PowerState.CRASHED)).toThrow(/no instance/);
  });

  describe("lifecycle actions", () => {
    async function running(): Promise<{ d: FakeDriver; s: SpawnSpec }> {
      const d = new FakeDriver();
      const s = spec();
      await d.spawn(s);
      return { d, s };
    }

    it("powers off and on idempotently", async () => {
      const { d, s } = await running();
      expect(await d.powerOff(s, 5)).toBe(PowerState.SHUTDOWN);
      expect(await d.powerOff(s, 5)).toBe(PowerState.SHUTDOWN);
      expect(await d.powerState(s)).toBe(PowerState.SHUTDOWN);
      expect(await d.powerOn(s)).toBe(PowerState.RUNNING);
      expect(await d.powerOn(s)).toBe(PowerState.RUNNING);
      d.setPowerState(s.instance_id, PowerState.CRASHED);
      expect(await d.powerOn(s)).toBe(PowerState.RUNNING);
    });

    it("reboots from any state into RUNNING, each time a new boot on the console", async () => {
      const { d, s } = await running();
      expect(await d.consoleOutput(s)).toBe(`${s.instance_name}: booted\n`);
      expect(await d.reboot(s, false, 5)).toBe(PowerState.RUNNING);
      await d.pause(s);
      expect(await d.reboot(s, true, 5)).toBe(PowerState.RUNNING);
      await d.powerOff(s, 5);
      expect(await d.reboot(s, false, 5)).toBe(PowerState.RUNNING);
      expect((await d.consoleOutput(s)).split("booted").length - 1).toBe(4);
    });

    it("pauses and unpauses idempotently, and refuses it when the domain is off", async () => {
      const { d, s } = await running();
      expect(await d.pause(s)).toBe(PowerState.PAUSED);
      expect(await d.pause(s)).toBe(PowerState.PAUSED);
      expect(await d.unpause(s)).toBe(PowerState.RUNNING);
      expect(await d.unpause(s)).toBe(PowerState.RUNNING);
      await d.powerOff(s, 5);
      await expect(d.pause(s)).rejects.toThrow(/pausing .* failed: the domain is not running/);
      await expect(d.unpause(s)).rejects.toThrow(/unpausing .* failed: the domain is not paused/);
    });

    it("suspends to SUSPENDED and resumes, with spawn, power on and power off treating it as libvirt does", async () => {
      const { d, s } = await running();
      expect(await d.suspend(s)).toBe(PowerState.SUSPENDED);
      expect(await d.suspend(s)).toBe(PowerState.SUSPENDED);
      expect(await d.powerState(s)).toBe(PowerState.SUSPENDED);
      expect(await d.spawn(s)).toBe(PowerState.SUSPENDED);
      const boots = (await d.consoleOutput(s)).length;
      expect(await d.resume(s)).toBe(PowerState.RUNNING);
      expect(await d.resume(s)).toBe(PowerState.RUNNING);
      expect((await d.consoleOutput(s)).length).toBe(boots); // restored, not booted

      await d.pause(s);
      await d.suspend(s);
      expect(await d.powerOn(s)).toBe(PowerState.RUNNING);
      await d.suspend(s);
      expect(await d.powerOff(s, 5)).toBe(PowerState.SHUTDOWN);
      await expect(d.suspend(s)).rejects.toThrow(/suspending .* failed: the domain is not running/);
      await expect(d.resume(s)).rejects.toThrow(/resuming .* failed: the domain is off and has no saved state/);
    });

    it("rebuilds onto the new image, running or stopped, and defines a missing domain", async () => {
      const { d, s } = await running();
      const image = { ...s.image, id: "img-2", name: "debian" };
      expect(await d.rebuild({ ...s, image }, false)).toBe(PowerState.RUNNING);
      expect(d.details(s.instance_id)?.image.id).toBe("img-2");
      expect(await d.rebuild(s, true)).toBe(PowerState.SHUTDOWN);
      expect(d.details(s.instance_id)?.image.id).toBe("img");
      const fresh = spec({ instance_name: "instance-00000099" });
      expect(await d.rebuild(fresh, false)).toBe(PowerState.RUNNING);
      expect(await d.powerState(fresh)).toBe(PowerState.RUNNING);
    });

    it("resizes, keeps the first backup across retries, reverts to it, and confirms", async () => {
      const { d, s } = await running();
      const large = { ...s.flavor, id: "2", name: "m1.small", vcpus: 2, ram: 2048, disk: 20 };
      expect(await d.resize({ ...s, flavor: large }, false)).toBe(PowerState.RUNNING);
      expect(d.details(s.instance_id)).toMatchObject({ flavor: large, hasResizeBackup: true });
      expect(await d.resize({ ...s, flavor: large }, true)).toBe(PowerState.SHUTDOWN);
      expect(await d.revertResize(s, false)).toBe(PowerState.RUNNING);
      expect(d.details(s.instance_id)).toMatchObject({ flavor: s.flavor, hasResizeBackup: false });
      expect(await d.revertResize(s, true)).toBe(PowerState.SHUTDOWN);

      await d.resize({ ...s, flavor: large }, true);
      await d.confirmResize(s);
      await d.confirmResize(s);
      expect(d.details(s.instance_id)).toMatchObject({ flavor: large, hasResizeBackup: false, state: PowerState.SHUTDOWN });
      await d.powerOn(s);
      await d.suspend(s);
      await expect(d.resize({ ...s, flavor: large }, false)).rejects.toThrow(/resizing .* failed: the instance is suspended/);
    });

    it("writes a snapshot file atomically where asked, making the folder", async () => {
      const { d, s } = await running();
      const tmp = await mkdtemp(path.join(os.tmpdir(), "cirrus-fake-"));
      try {
        const dest = path.join(tmp, "a", "b", "snap.qcow2");
        await d.snapshot(s, dest);
        expect(await readFile(dest, "utf8")).toContain(s.instance_name);
        expect(await readdir(path.dirname(dest))).toEqual(["snap.qcow2"]);
        expect(d.snapshots).toEqual([{ instance_id: s.instance_id, destination: dest }]);
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    });

    it("refuses every action on an instance it does not have, except confirming a resize", async () => {
      const d = new FakeDriver();
      const s = spec();
      const dest = path.join(os.tmpdir(), `cirrus-fake-never-${randomUUID()}.qcow2`);
      const calls: (() => Promise<unknown>)[] = [
        () => d.powerOff(s, 1),
        () => d.powerOn(s),
        () => d.reboot(s, true, 1),
        () => d.pause(s),
        () => d.unpause(s),
        () => d.suspend(s),
        () => d.resume(s),
        () => d.consoleOutput(s),
        () => d.resize(s, false),
        () => d.revertResize(s, false),
        () => d.snapshot(s, dest),
      ];
      for (const call of calls) await expect(call()).rejects.toThrow(/failed: there is no domain with uuid/);
      await expect(d.confirmResize(s)).resolves.toBeUndefined();
      expect(existsSync(dest)).toBe(false);
    });
  });
});
