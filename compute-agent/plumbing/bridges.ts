/**
 * Host-side network plumbing, as Neutron's agents do it with bridge_mappings
 * (physical network -> host bridge). See docs/networking.md.
 *
 * - A port whose network has no physical network, or one this host does not map, keeps
 *   QEMU user-mode networking (the guest still gets its MAC; no host bridge is touched).
 * - flat network on physnet P mapped to bridge B: B is created when missing (Linux bridge)
 *   and the tap `tap<port id[:11]>` joins B.
 * - vlan network with segmentation id V: on a Linux bridge B, Neutron linuxbridge style:
 *   a VLAN subinterface `<B>.<V>` of B and a per-network bridge `brq<network id[:11]>`
 *   holding it; the tap joins brq…. On an Open vSwitch bridge B the tap joins B with
 *   `<vlan><tag id=V/>` and `<virtualport type='openvswitch'>` (interfaceid = port id).
 */
import { execFile } from "node:child_process";
import { access } from "node:fs/promises";
import type { PortSpec } from "../../common/messages.js";
import type { InterfaceAttachment } from "../virt/libvirt/domain-xml.js";

export type Runner = (cmd: string, args: string[]) => Promise<string>;

const MAX_IFNAME = 15; // IFNAMSIZ - 1

export const defaultRunner: Runner = (cmd, args) =>
  new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: "utf8", timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(new Error(`${cmd} ${args.join(" ")} failed: ${stderr.trim() || err.message}`, { cause: err }), { code: (err as NodeJS.ErrnoException).code }));
      else resolve(stdout);
    });
  });

/** Nova's tap name: tap + the port id's first 11 characters (14 characters in all). */
export function tapDevice(portId: string): string {
  return `tap${portId.slice(0, 11)}`;
}

/** Neutron linuxbridge's per-network bridge name. */
export function networkBridge(networkId: string): string {
  return `brq${networkId.slice(0, 11)}`;
}

/** `<bridge>.<vlan>`, the bridge name shortened when the whole would pass 15 characters. */
export function vlanDevice(bridge: string, vlan: number): string {
  const suffix = `.${vlan}`;
  return bridge.slice(0, MAX_IFNAME - suffix.length) + suffix;
}

export type VifPlan =
  | { kind: "user" }
  | { kind: "bridge"; physicalBridge: string; bridge: string; vlan: number | null; tap: string };

/** Pure: where a port's NIC goes on this host, from its network and the bridge mappings. */
export function planVif(port: PortSpec, mappings: Record<string, string>): VifPlan {
  const physnet = port.physical_network ?? null;
  const mapped = physnet === null ? undefined : mappings[physnet];
  if (mapped === undefined) return { kind: "user" };
  const vlan = port.network_type === "vlan" ? (port.segmentation_id ?? null) : null;
  if (port.network_type === "vlan" && vlan === null) throw new Error(`port ${port.id}: vlan network ${port.network_id} has no segmentation id`);
  return { kind: "bridge", physicalBridge: mapped, bridge: mapped, vlan, tap: tapDevice(port.id) };
}

const exists = (p: string) => access(p).then(() => true, () => false);
const alreadyExists = (e: unknown) => e instanceof Error && /File exists/i.test(e.message);

export class BridgePlumber {
  private ovsVsctl: boolean | null = null;
  /** One plumbing change at a time: `ip link add` of one name from two spawns must not race. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly mappings: Record<string, string>,
    private readonly run: Runner = defaultRunner,
  ) {}

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** True when `bridge` is an Open vSwitch bridge (ovs-vsctl present and `br-exists` says so). */
  async isOvsBridge(bridge: string): Promise<boolean> {
    if (this.ovsVsctl === false) return false;
    try {
      await this.run("ovs-vsctl", ["br-exists", bridge]);
      this.ovsVsctl = true;
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") this.ovsVsctl = false;
      return false;
    }
  }

  private async ensureLinuxBridge(name: string): Promise<void> {
    if (!(await exists(`/sys/class/net/${name}`))) {
      try {
        await this.run("ip", ["link", "add", name, "type", "bridge"]);
      } catch (e) {
        if (!alreadyExists(e)) throw e;
      }
    } else if (!(await exists(`/sys/class/net/${name}/bridge`))) {
      throw new Error(`${name} exists on this host but is not a bridge`);
    }
    await this.run("ip", ["link", "set", name, "up"]);
  }

  private async ensureVlan(parent: string, vlan: number): Promise<string> {
    const dev = vlanDevice(parent, vlan);
    if (!(await exists(`/sys/class/net/${dev}`))) {
      try {
        await this.run("ip", ["link", "add", "link", parent, "name", dev, "type", "vlan", "id", String(vlan)]);
      } catch (e) {
        if (!alreadyExists(e)) throw e;
      }
    }
    await this.run("ip", ["link", "set", dev, "up"]);
    return dev;
  }

  /**
   * Makes the host side ready for the port and says how the domain's interface attaches.
   * Idempotent: a second call for the same port changes nothing.
   */
  plug(port: PortSpec): Promise<{ attach: InterfaceAttachment; targetDev?: string }> {
    const plan = planVif(port, this.mappings);
    if (plan.kind === "user") return Promise.resolve({ attach: { type: "user" } });
    return this.serial(async () => {
      if (await this.isOvsBridge(plan.physicalBridge)) {
        return {
          attach: { type: "bridge", bridge: plan.physicalBridge, ovsInterfaceId: port.id, ...(plan.vlan !== null ? { vlan: plan.vlan } : {}) },
          targetDev: plan.tap,
        };
      }
      await this.ensureLinuxBridge(plan.physicalBridge);
      if (plan.vlan === null) return { attach: { type: "bridge", bridge: plan.physicalBridge }, targetDev: plan.tap };
      // The VLAN device sends through B's host side; B must hand unknown unicast up to it.
      await this.run("ip", ["link", "set", plan.physicalBridge, "promisc", "on"]);
      const vlanDev = await this.ensureVlan(plan.physicalBridge, plan.vlan);
      const brq = networkBridge(port.network_id);
      await this.ensureLinuxBridge(brq);
      await this.run("ip", ["link", "set", vlanDev, "master", brq]);
      return { attach: { type: "bridge", bridge: brq }, targetDev: plan.tap };
    });
  }

  /** Where each physical network goes on this host (for logs and host reports). */
  get bridgeMappings(): Record<string, string> {
    return { ...this.mappings };
  }
}
