/**
 * Chooses the virt driver. With LIBVIRT_URI unset the agent wants qemu:///system; if
 * libvirtd does not answer it falls back to test:///default and says loudly that
 * guests are simulated. An explicit LIBVIRT_URI never falls back.
 */
import type { Config } from "../common/config.js";
import type { Logger } from "../common/logger.js";
import type { VirtDriver } from "./virt/driver.js";
import { FakeDriver } from "./virt/fake.js";
import { LibvirtDriver } from "./virt/libvirt/driver.js";

export async function openDriver(config: Config, log: Logger): Promise<{ driver: VirtDriver; uri: string }> {
  if (config.agentDriver === "fake") {
    const driver = new FakeDriver({ resources: { hypervisor_hostname: config.agentHost } });
    await driver.init();
    return { driver, uri: "fake://" };
  }
  const primary = new LibvirtDriver({ uri: config.libvirtUri, instancesPath: config.instancesPath, virtType: config.virtType });
  try {
    await primary.init();
    return { driver: primary, uri: config.libvirtUri };
  } catch (err) {
    if (config.libvirtUriExplicit) throw err;
    log.warn(
      { err: String(err), uri: config.libvirtUri },
      "libvirt at qemu:///system does not answer: falling back to test:///default. GUESTS ARE SIMULATED, no real VM will run. Run scripts/setup-host.sh (as root) for real QEMU guests.",
    );
    const fallback = new LibvirtDriver({ uri: "test:///default", instancesPath: config.instancesPath });
    await fallback.init();
    return { driver: fallback, uri: "test:///default" };
  }
}
