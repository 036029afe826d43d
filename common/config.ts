/**
 * Every setting Cirrus reads from the environment, typed, each with a default that
 * works on a developer's machine. Nothing else in the code reads process.env.
 */
import os from "node:os";
import path from "node:path";

export interface Config {
  databaseUrl: string;
  redisUrl: string;
  /** Prefix of every BullMQ key, so several Cirrus deployments can share one Redis. */
  queuePrefix: string;
  apiHost: string;
  apiPort: number;
  /** The URL clients reach the API at; used in links and Location headers. */
  publicUrl: string;
  authMode: "dev";
  devToken: string;
  stateDir: string;
  imageStoreDir: string;
  instancesPath: string;
  logLevel: string;
  /** A compute service whose last heartbeat is older than this is down. */
  serviceDownTimeSec: number;
  heartbeatIntervalSec: number;
  schedulerMaxAttempts: number;
  agentHost: string;
  agentDriver: "libvirt" | "fake";
  libvirtUri: string;
  /** Nova's [libvirt] virt_type: qemu (TCG, works everywhere), kvm (needs a working /dev/kvm), or auto (kvm when libvirt offers it). */
  virtType: "qemu" | "kvm" | "auto";
  /** True when LIBVIRT_URI was set explicitly (no silent fallback then). */
  libvirtUriExplicit: boolean;
  agentConcurrency: number;
  /** Seconds a guest gets to shut down cleanly before a hard power-off (Nova's shutdown_timeout). */
  shutdownTimeoutSec: number;
  /** The API root the agent downloads images from and uploads snapshots to. */
  agentApiUrl: string;
  /** The agent's own credential for the API (dev mode: a token with the service role). */
  agentToken: string;
  /** Host-local image cache: one base file per image, removed after this many seconds unused. */
  imageCachePath: string;
  imageCacheMaxAgeSec: number;
  /** Neutron-style bridge_mappings: physical network name -> host bridge, e.g. "physnet1:br-ex". */
  bridgeMappings: Record<string, string>;
  /** Enforce instances/cores/ram quotas at boot (key pair and server group quotas always are). */
  enforceQuotas: boolean;
  /** Attach a config drive to every server, as Nova's force_config_drive. */
  forceConfigDrive: boolean;
  agentAvailabilityZone: string | null;
  agentInventory: {
    vcpus: number | null;
    memoryMb: number | null;
    diskGb: number | null;
    cpuAllocationRatio: number;
    ramAllocationRatio: number;
    diskAllocationRatio: number;
    reservedHostMemoryMb: number;
    reservedHostDiskGb: number;
  };
}

type Env = Record<string, string | undefined>;

function num(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got "${raw}"`);
  return n;
}

function optionalNum(env: Env, name: string): number | null {
  const raw = env[name];
  return raw === undefined || raw === "" ? null : num(env, name, 0);
}

function parseMappings(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of (raw ?? "").split(",").map((x) => x.trim()).filter(Boolean)) {
    const [physnet, bridge] = item.split(":");
    if (!physnet || !bridge) throw new Error(`CIRRUS_BRIDGE_MAPPINGS item "${item}" must be physnet:bridge`);
    out[physnet] = bridge;
  }
  return out;
}

function virtType(raw: string | undefined): "qemu" | "kvm" | "auto" {
  if (raw === undefined || raw === "" || raw === "qemu") return "qemu";
  if (raw === "kvm" || raw === "auto") return raw;
  throw new Error(`CIRRUS_VIRT_TYPE must be qemu, kvm or auto, got "${raw}"`);
}

export function loadConfig(env: Env = process.env): Config {
  const stateDir = path.resolve(env.CIRRUS_STATE_DIR ?? ".cirrus");
  const apiHost = env.CIRRUS_API_HOST ?? "127.0.0.1";
  const apiPort = num(env, "CIRRUS_API_PORT", 8774);
  const authMode = env.CIRRUS_AUTH_MODE ?? "dev";
  if (authMode !== "dev") throw new Error(`CIRRUS_AUTH_MODE must be "dev" (OIDC is not built yet), got "${authMode}"`);
  const agentDriver = env.CIRRUS_AGENT_DRIVER ?? "libvirt";
  if (agentDriver !== "libvirt" && agentDriver !== "fake") {
    throw new Error(`CIRRUS_AGENT_DRIVER must be libvirt or fake, got "${agentDriver}"`);
  }
  return {
    databaseUrl: env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/cirrus",
    redisUrl: env.REDIS_URL ?? "redis://127.0.0.1:6379",
    queuePrefix: env.CIRRUS_QUEUE_PREFIX ?? "cirrus",
    apiHost,
    apiPort,
    publicUrl: (env.CIRRUS_PUBLIC_URL ?? `http://${apiHost}:${apiPort}`).replace(/\/+$/, ""),
    authMode,
    devToken: env.CIRRUS_DEV_TOKEN ?? "cirrus-dev-admin-token",
    stateDir,
    imageStoreDir: path.resolve(env.CIRRUS_IMAGE_STORE ?? path.join(stateDir, "images")),
    instancesPath: path.resolve(env.CIRRUS_INSTANCES_PATH ?? path.join(stateDir, "instances")),
    logLevel: env.LOG_LEVEL ?? "info",
    serviceDownTimeSec: num(env, "CIRRUS_SERVICE_DOWN_TIME", 60),
    heartbeatIntervalSec: num(env, "CIRRUS_HEARTBEAT_INTERVAL", 10),
    schedulerMaxAttempts: num(env, "CIRRUS_SCHEDULER_MAX_ATTEMPTS", 3),
    agentHost: env.CIRRUS_HOST ?? os.hostname(),
    agentDriver,
    libvirtUri: env.LIBVIRT_URI ?? "qemu:///system",
    virtType: virtType(env.CIRRUS_VIRT_TYPE),
    libvirtUriExplicit: env.LIBVIRT_URI !== undefined && env.LIBVIRT_URI !== "",
    agentConcurrency: num(env, "CIRRUS_AGENT_CONCURRENCY", 8),
    shutdownTimeoutSec: num(env, "CIRRUS_SHUTDOWN_TIMEOUT", 60),
    agentApiUrl: (env.CIRRUS_AGENT_API_URL ?? env.CIRRUS_PUBLIC_URL ?? `http://${apiHost}:${apiPort}`).replace(/\/+$/, ""),
    agentToken: env.CIRRUS_AGENT_TOKEN ?? env.CIRRUS_DEV_TOKEN ?? "cirrus-dev-admin-token",
    imageCachePath: path.resolve(env.CIRRUS_IMAGE_CACHE ?? path.join(stateDir, "image-cache")),
    imageCacheMaxAgeSec: num(env, "CIRRUS_IMAGE_CACHE_MAX_AGE", 86_400),
    bridgeMappings: parseMappings(env.CIRRUS_BRIDGE_MAPPINGS),
    forceConfigDrive: /^(1|true|yes)$/i.test(env.CIRRUS_FORCE_CONFIG_DRIVE ?? ""),
    enforceQuotas: /^(1|true|yes|on)$/i.test(env.CIRRUS_QUOTA_ENFORCE ?? ""),
    agentAvailabilityZone: env.CIRRUS_AVAILABILITY_ZONE || null,
    agentInventory: {
      vcpus: optionalNum(env, "CIRRUS_AGENT_VCPUS"),
      memoryMb: optionalNum(env, "CIRRUS_AGENT_MEMORY_MB"),
      diskGb: optionalNum(env, "CIRRUS_AGENT_DISK_GB"),
      // Nova's initial_*_allocation_ratio and reserved_host_memory_mb defaults.
      cpuAllocationRatio: num(env, "CIRRUS_CPU_ALLOCATION_RATIO", 4.0),
      ramAllocationRatio: num(env, "CIRRUS_RAM_ALLOCATION_RATIO", 1.0),
      diskAllocationRatio: num(env, "CIRRUS_DISK_ALLOCATION_RATIO", 1.0),
      reservedHostMemoryMb: num(env, "CIRRUS_RESERVED_HOST_MEMORY_MB", 512),
      reservedHostDiskGb: num(env, "CIRRUS_RESERVED_HOST_DISK_GB", 0),
    },
  };
}
