import { randomUUID } from "node:crypto";
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
});
