/**
 * Chooses the virt driver. With LIBVIRT_URI unset the agent wants qemu:///system; if
 * libvirtd does not answer it falls back to test:///default and says loudly that
 * guests are simulated. An explicit LIBVIRT_URI never falls back.
 *
 * It also gives the libvirt driver what the host provides: the image cache (with its
 * periodic cleanup), the bridge plumbing from bridge_mappings, the domain type
 * (CIRRUS_VIRT_TYPE=auto asks libvirt's capabilities) and the hypervisor's real
 * type and version from `virsh version`.
 */
import { execFile } from "node:child_process";
import type { Config } from "../common/config.js";
import type { Logger } from "../common/logger.js";
import { ImageCache } from "./image-cache.js";
import { BridgePlumber } from "./plumbing/bridges.js";
import type { VirtDriver } from "./virt/driver.js";
import { FakeDriver } from "./virt/fake.js";
import { LibvirtDriver } from "./virt/libvirt/driver.js";

/** Nova's [image_cache] manager_interval: 2400 s. */
const CACHE_CLEANUP_INTERVAL_MS = 2400 * 1000;

function virsh(uri: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("virsh", ["-c", uri, ...args], { encoding: "utf8", timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`virsh ${args.join(" ")} failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
  });
}

/**
 * "Running hypervisor: QEMU 7.2.22" -> { type: "QEMU", version: 7002022 } (libvirt's
 * major*1e6 + minor*1e3 + micro); null when the line is missing.
 */
export function parseVirshVersion(output: string): { type: string; version: number } | null {
  const m = /^Running hypervisor:\s*(\S+)\s+(\d+)\.(\d+)\.(\d+)/m.exec(output);
  if (!m) return null;
  const type = m[1]! === "TEST" ? "test" : m[1]!;
  return { type, version: Number(m[2]) * 1_000_000 + Number(m[3]) * 1_000 + Number(m[4]) };
}

/** kvm when libvirt's capabilities offer a kvm domain for hvm guests, else qemu. */
export function virtTypeFromCapabilities(capabilitiesXml: string): "kvm" | "qemu" {
  return /<domain\s+type=['"]kvm['"]/.test(capabilitiesXml) ? "kvm" : "qemu";
}

async function probeHypervisor(uri: string, log: Logger): Promise<{ type: string; version: number } | undefined> {
  try {
    return parseVirshVersion(await virsh(uri, ["version"])) ?? undefined;
  } catch (err) {
    log.warn({ err: String(err), uri }, "could not read the hypervisor version from virsh; reporting a stand-in");
    return undefined;
  }
}

async function resolveVirtType(config: Config, log: Logger): Promise<"qemu" | "kvm"> {
  if (config.virtType !== "auto") return config.virtType;
  try {
    const chosen = virtTypeFromCapabilities(await virsh(config.libvirtUri, ["capabilities"]));
    log.info({ virt_type: chosen }, "CIRRUS_VIRT_TYPE=auto: chose the domain type from libvirt's capabilities");
    return chosen;
  } catch (err) {
    log.warn({ err: String(err) }, "CIRRUS_VIRT_TYPE=auto: capabilities unreadable, using qemu (TCG)");
    return "qemu";
  }
}

export async function openDriver(config: Config, log: Logger): Promise<{ driver: VirtDriver; uri: string }> {
  if (config.agentDriver === "fake") {
    const driver = new FakeDriver({ resources: { hypervisor_hostname: config.agentHost }, spawnDelayMs: config.fakeSpawnDelayMs });
    await driver.init();
    return { driver, uri: "fake://" };
  }
  const imageCache = new ImageCache({
    cachePath: config.imageCachePath,
    apiUrl: config.agentApiUrl,
    token: config.agentToken,
    instancesPath: config.instancesPath,
  });
  const plumber = new BridgePlumber(config.bridgeMappings);
  const common = {
    instancesPath: config.instancesPath,
    imageCache,
    plumber,
    forceConfigDrive: config.forceConfigDrive,
    availabilityZone: config.agentAvailabilityZone,
  };
  const startCleanup = (driver: VirtDriver): VirtDriver => {
    const cleanup = () =>
      imageCache.cleanup(config.imageCacheMaxAgeSec).then(
        (removed) => removed.length > 0 && log.info({ removed }, "image cache: removed unused bases"),
        (err: unknown) => log.warn({ err: String(err) }, "image cache cleanup failed"),
      );
    const timer = setInterval(cleanup, CACHE_CLEANUP_INTERVAL_MS);
    timer.unref();
    void cleanup();
    const close = driver.close.bind(driver);
    driver.close = async () => {
      clearInterval(timer);
      await close();
    };
    return driver;
  };

  const isTest = /^test(\+[a-z]+)?:/.test(config.libvirtUri);
  const { plumber: _p, ...withoutPlumbing } = common;
  const primary = new LibvirtDriver({
    uri: config.libvirtUri,
    ...(isTest ? withoutPlumbing : common),
    virtType: await resolveVirtType(config, log),
    hypervisor: await probeHypervisor(config.libvirtUri, log),
  });
  try {
    await primary.init();
    return { driver: startCleanup(primary), uri: config.libvirtUri };
  } catch (err) {
    if (config.libvirtUriExplicit) throw err;
    log.warn(
      { err: String(err), uri: config.libvirtUri },
      "libvirt at qemu:///system does not answer: falling back to test:///default. GUESTS ARE SIMULATED, no real VM will run. Run scripts/setup-host.sh (as root) for real QEMU guests.",
    );
    // Simulated guests need no host bridges.
    const { plumber: _unused, ...simulated } = common;
    const fallback = new LibvirtDriver({ uri: "test:///default", ...simulated, hypervisor: { type: "test", version: 2 } });
    await fallback.init();
    return { driver: startCleanup(fallback), uri: "test:///default" };
  }
}
