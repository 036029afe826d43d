/**
 * Bridge plumbing on this host's root network namespace: real Linux bridges and VLAN
 * subinterfaces named cirtest*, removed afterwards. Needs root (CAP_NET_ADMIN).
 */
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, readlinkSync } from "node:fs";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import type { PortSpec } from "../../common/messages.js";
import { BridgePlumber, networkBridge, planVif, tapDevice, vlanDevice } from "../../compute-agent/plumbing/bridges.js";

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const suffix = randomBytes(2).toString("hex");
const bridge = `cirtest${suffix}`; // 11 characters
const created: string[] = [];

/** Some kernels (containers without the 8021q module) cannot make VLAN devices at all. */
async function kernelHasVlan(): Promise<boolean> {
  const probe = `cirtestq${suffix}`;
  const parent = `cirtestp${suffix}`;
  try {
    await run("ip", ["link", "add", parent, "type", "bridge"]);
    await run("ip", ["link", "add", "link", parent, "name", probe, "type", "vlan", "id", "2"]);
    return true;
  } catch {
    return false;
  } finally {
    await run("ip", ["link", "del", probe]).catch(() => undefined);
    await run("ip", ["link", "del", parent]).catch(() => undefined);
  }
}

function port(overrides: Partial<PortSpec> = {}): PortSpec {
  return {
    id: randomUUID(), network_id: randomUUID(), network_name: "n", mac_address: "fa:16:3e:00:00:01", mtu: 1500, fixed_ips: [],
    network_type: "flat", physical_network: "physnet1", segmentation_id: null, ...overrides,
  };
}

describe("planVif (pure)", () => {
  it("keeps user-mode networking without a mapped physical network", () => {
    expect(planVif(port({ physical_network: null }), { physnet1: "br0" })).toEqual({ kind: "user" });
    expect(planVif(port({ physical_network: "physnet9" }), { physnet1: "br0" })).toEqual({ kind: "user" });
  });
  it("maps flat and vlan ports to the bridge with Nova's tap name", () => {
    const p = port();
    expect(planVif(p, { physnet1: "br0" })).toEqual({ kind: "bridge", physicalBridge: "br0", bridge: "br0", vlan: null, tap: `tap${p.id.slice(0, 11)}` });
    expect(planVif(port({ network_type: "vlan", segmentation_id: 42 }), { physnet1: "br0" })).toMatchObject({ vlan: 42 });
    expect(() => planVif(port({ network_type: "vlan", segmentation_id: null }), { physnet1: "br0" })).toThrow(/segmentation id/);
  });
  it("names devices within 15 characters", () => {
    expect(tapDevice("5b8a9c1d-2e3f-4a5b")).toBe("tap5b8a9c1d-2e");
    expect(networkBridge("7c1e2d3f-4a5b-4c6d")).toBe("brq7c1e2d3f-4a");
    expect(vlanDevice("br-ex", 42)).toBe("br-ex.42");
    expect(vlanDevice("a-very-long-bridge", 4094)).toBe("a-very-lon.4094");
  });
});

describe.skipIf(!isRoot)("BridgePlumber on this host", () => {
  afterAll(async () => {
    for (const dev of created.reverse()) await run("ip", ["link", "del", dev]).catch(() => undefined);
  });

  it("creates a missing Linux bridge for a flat network, idempotently", async () => {
    const plumber = new BridgePlumber({ physnet1: bridge });
    created.push(bridge);
    const p = port();
    const first = await plumber.plug(p);
    expect(first).toEqual({ attach: { type: "bridge", bridge }, targetDev: tapDevice(p.id) });
    expect(existsSync(`/sys/class/net/${bridge}/bridge`)).toBe(true);
    expect((await run("ip", ["-o", "link", "show", bridge])).stdout).toMatch(/state (UP|UNKNOWN)|,UP/);
    // Concurrent plugs of the same network change nothing more.
    const again = await Promise.all([plumber.plug(p), plumber.plug(port())]);
    expect(again[0]).toEqual(first);
  });

  it("for a vlan network: a VLAN subinterface of the bridge inside a per-network brq bridge", async (ctx) => {
    if (!(await kernelHasVlan())) ctx.skip("this kernel has no 802.1Q support (no 8021q module)");
    const plumber = new BridgePlumber({ physnet1: bridge });
    const p = port({ network_type: "vlan", segmentation_id: 123 });
    const brq = networkBridge(p.network_id);
    const vlanDev = vlanDevice(bridge, 123);
    created.push(vlanDev, brq);
    const res = await plumber.plug(p);
    expect(res).toEqual({ attach: { type: "bridge", bridge: brq }, targetDev: tapDevice(p.id) });
    expect(existsSync(`/sys/class/net/${brq}/bridge`)).toBe(true);
    expect(readlinkSync(`/sys/class/net/${vlanDev}/master`)).toMatch(new RegExp(`/${brq}$`));
    const details = (await run("ip", ["-d", "link", "show", vlanDev])).stdout;
    expect(details).toMatch(/vlan protocol 802.1Q id 123/);
    expect(details).toContain(`${vlanDev}@${bridge}`);
    expect(await plumber.plug(p)).toEqual(res);
  });

  it("refuses a mapped name that exists but is not a bridge", async () => {
    const dummy = `cirtestd${suffix}`;
    await run("ip", ["link", "add", dummy, "type", "veth", "peer", "name", `cirteste${suffix}`]);
    created.push(dummy);
    await expect(new BridgePlumber({ physnet1: dummy }).plug(port())).rejects.toThrow(/is not a bridge/);
  });

  it("ports without a mapping touch nothing", async () => {
    expect(await new BridgePlumber({}).plug(port())).toEqual({ attach: { type: "user" } });
  });
});
