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
  /**
   * oidc: tokens from the issuer at oidcIssuerUrl (the production mode). dev: one static
   * admin token (devToken). none: no authentication at all, every caller is an admin.
   * dev and none must be chosen explicitly and every log line then says so.
   */
  authMode: AuthMode;
  devToken: string;
  oidc: OidcConfig;
  /** Per-project limit on mutating calls (needs Redis); 0 turns it off. */
  rateLimit: { max: number; windowSec: number };
  stateDir: string;
  imageStoreDir: string;
  instancesPath: string;
  logLevel: string;
  /** Scheduler and compute agent: port of their /healthz, /readyz, /metrics listener; null (the default): none. */
  metricsPort: number | null;
  metricsHost: string;
  /** A compute service whose last heartbeat is older than this is down. */
  serviceDownTimeSec: number;
  heartbeatIntervalSec: number;
  /** Resilience (issue 7): deadlines, recovery sweeps, reconciliation. See docs/resilience.md. */
  recovery: RecoveryConfig;
  schedulerMaxAttempts: number;
  /** Postgres connections each api or scheduler process may hold (CIRRUS_DB_POOL_MAX); null: the process's default. */
  dbPoolMax: number | null;
  /** How much each scheduler weigher counts (Nova's [filter_scheduler] *_weight_multiplier). */
  weigherMultipliers: WeigherMultipliers;
  agentHost: string;
  agentDriver: "libvirt" | "fake";
  /** Fake driver only: milliseconds each spawn takes (tests hold an operation in flight with it). */
  fakeSpawnDelayMs: number;
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
  /** Enforce instances/cores/ram quotas at boot (key pair and server group quotas always are); on unless CIRRUS_QUOTA_ENFORCE=false. */
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

export type AuthMode = "oidc" | "dev" | "none";

/**
 * Each weigher's normalised value is multiplied by its multiplier: positive spreads
 * (more free is better), negative packs, 0 turns the weigher off.
 */
export interface WeigherMultipliers {
  ram: number;
  cpu: number;
  disk: number;
  /** Positive prefers hosts running more instances, negative fewer. */
  numInstances: number;
  /** As Nova's setting: positive sinks hosts with recent failed builds. */
  buildFailure: number;
  /** Soft server group policies; never negative, as in Nova. */
  softAffinity: number;
  softAntiAffinity: number;
}

/**
 * Nova's defaults, except the soft group multipliers: Nova's 1.0 lets RAM and CPU
 * spreading outvote the soft policy on an empty host, 10 makes the policy win unless a
 * host is full.
 */
export const DEFAULT_WEIGHER_MULTIPLIERS: Readonly<WeigherMultipliers> = Object.freeze({
  ram: 1.0,
  cpu: 1.0,
  disk: 1.0,
  numInstances: 0.0,
  buildFailure: 1_000_000.0,
  softAffinity: 10.0,
  softAntiAffinity: 10.0,
});

export interface OidcConfig {
  /** The issuer Cirrus trusts (discovered through /.well-known/openid-configuration); null: none configured. */
  issuerUrl: string | null;
  /** The `aud` an access token must carry (RFC 9068 resource indicator). */
  audience: string;
  /** Client credentials of the API itself, for token introspection of opaque tokens. */
  clientId: string | null;
  clientSecret: string | null;
  projectClaim: string;
  rolesClaim: string;
  userClaim: string;
  /** Seconds of clock skew allowed on exp and nbf. */
  clockToleranceSec: number;
  /** At most one JWKS refetch (for an unknown key id) per this many milliseconds. */
  jwksCooldownMs: number;
  /** An introspection result is kept at most this long (and never past the token's exp). */
  introspectionCacheSec: number;
}

export interface RecoveryConfig {
  /** A build no agent finished within this many seconds ends in ERROR with a fault (Nova's instance_build_timeout, but on); 0 turns it off. */
  buildTimeoutSec: number;
  /** An action whose task_state is held longer than this is cleared with a fault; 0 turns it off. */
  actionTimeoutSec: number;
  /** How often a scheduler runs the recovery sweep (deadlines, local deletes, lost jobs). */
  sweepIntervalSec: number;
  /** An in-flight instance unchanged this long has its job looked for in Redis and republished when it is missing. */
  requeueAfterSec: number;
  /** How often an agent reports its domains' power states (Nova's sync_power_state_interval is 600). */
  powerSyncIntervalSec: number;
  /** What an agent does with a domain whose instance is deleted or unknown (Nova's running_deleted_instance_action). */
  orphanAction: "reap" | "log" | "noop";
  /** A domain of a deleted (or moved) instance is an orphan only this many seconds after the change (running_deleted_instance_timeout). */
  orphanGraceSec: number;
}

type Env = Record<string, string | undefined>;

function orphanAction(raw: string | undefined): RecoveryConfig["orphanAction"] {
  if (raw === undefined || raw === "") return "reap";
  if (raw === "reap" || raw === "log" || raw === "noop") return raw;
  throw new Error(`CIRRUS_ORPHAN_ACTION must be reap, log or noop, got "${raw}"`);
}

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

export function nonNegative(env: Env, name: string, fallback: number): number {
  const n = num(env, name, fallback);
  if (n < 0) throw new Error(`${name} must not be negative, got "${env[name]}"`);
  return n;
}

function weigherMultipliers(env: Env): WeigherMultipliers {
  const d = DEFAULT_WEIGHER_MULTIPLIERS;
  return {
    ram: num(env, "CIRRUS_RAM_WEIGHT_MULTIPLIER", d.ram),
    cpu: num(env, "CIRRUS_CPU_WEIGHT_MULTIPLIER", d.cpu),
    disk: num(env, "CIRRUS_DISK_WEIGHT_MULTIPLIER", d.disk),
    numInstances: num(env, "CIRRUS_NUM_INSTANCES_WEIGHT_MULTIPLIER", d.numInstances),
    buildFailure: num(env, "CIRRUS_BUILD_FAILURE_WEIGHT_MULTIPLIER", d.buildFailure),
    softAffinity: nonNegative(env, "CIRRUS_SOFT_AFFINITY_WEIGHT_MULTIPLIER", d.softAffinity),
    softAntiAffinity: nonNegative(env, "CIRRUS_SOFT_ANTI_AFFINITY_WEIGHT_MULTIPLIER", d.softAntiAffinity),
  };
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
  const authModeRaw = env.CIRRUS_AUTH_MODE || "oidc";
  if (authModeRaw !== "oidc" && authModeRaw !== "dev" && authModeRaw !== "none") {
    throw new Error(`CIRRUS_AUTH_MODE must be oidc, dev or none, got "${authModeRaw}"`);
  }
  const authMode: AuthMode = authModeRaw;
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
    oidc: {
      issuerUrl: env.CIRRUS_OIDC_ISSUER_URL || null,
      audience: env.CIRRUS_OIDC_AUDIENCE || "cirrus",
      clientId: env.CIRRUS_OIDC_CLIENT_ID || null,
      clientSecret: env.CIRRUS_OIDC_CLIENT_SECRET || null,
      projectClaim: env.CIRRUS_OIDC_PROJECT_CLAIM || "project_id",
      rolesClaim: env.CIRRUS_OIDC_ROLES_CLAIM || "roles",
      userClaim: env.CIRRUS_OIDC_USER_CLAIM || "sub",
      clockToleranceSec: num(env, "CIRRUS_OIDC_CLOCK_TOLERANCE", 30),
      jwksCooldownMs: num(env, "CIRRUS_OIDC_JWKS_COOLDOWN_MS", 30_000),
      introspectionCacheSec: num(env, "CIRRUS_OIDC_INTROSPECTION_CACHE", 300),
    },
    rateLimit: { max: num(env, "CIRRUS_RATE_LIMIT", 600), windowSec: num(env, "CIRRUS_RATE_LIMIT_WINDOW", 60) },
    stateDir,
    imageStoreDir: path.resolve(env.CIRRUS_IMAGE_STORE ?? path.join(stateDir, "images")),
    instancesPath: path.resolve(env.CIRRUS_INSTANCES_PATH ?? path.join(stateDir, "instances")),
    logLevel: env.LOG_LEVEL ?? "info",
    metricsPort: optionalNum(env, "CIRRUS_METRICS_PORT"),
    metricsHost: env.CIRRUS_METRICS_HOST || "127.0.0.1",
    serviceDownTimeSec: num(env, "CIRRUS_SERVICE_DOWN_TIME", 60),
    heartbeatIntervalSec: num(env, "CIRRUS_HEARTBEAT_INTERVAL", 10),
    recovery: {
      buildTimeoutSec: num(env, "CIRRUS_BUILD_TIMEOUT", 600),
      actionTimeoutSec: num(env, "CIRRUS_ACTION_TIMEOUT", 600),
      sweepIntervalSec: num(env, "CIRRUS_RECOVERY_INTERVAL", 10),
      requeueAfterSec: num(env, "CIRRUS_REQUEUE_AFTER", 30),
      powerSyncIntervalSec: num(env, "CIRRUS_POWER_SYNC_INTERVAL", 60),
      orphanAction: orphanAction(env.CIRRUS_ORPHAN_ACTION),
      orphanGraceSec: num(env, "CIRRUS_ORPHAN_GRACE", 60),
    },
    schedulerMaxAttempts: num(env, "CIRRUS_SCHEDULER_MAX_ATTEMPTS", 3),
    dbPoolMax: optionalNum(env, "CIRRUS_DB_POOL_MAX"),
    weigherMultipliers: weigherMultipliers(env),
    agentHost: env.CIRRUS_HOST ?? os.hostname(),
    agentDriver,
    fakeSpawnDelayMs: num(env, "CIRRUS_FAKE_SPAWN_DELAY_MS", 0),
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
    enforceQuotas: !/^(0|false|no|off)$/i.test(env.CIRRUS_QUOTA_ENFORCE ?? ""),
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
