/**
 * Many simulated compute hosts in one process: each a real ComputeAgent on its own
 * FakeDriver, registering, heartbeating and reporting like an agent process. What a
 * host would own alone is shared: one producer connection and QueueSet for reports,
 * a few connections for the Workers' non-blocking commands, and one HSET a heartbeat
 * interval for every host instead of a timer and a write each.
 */
import { Redis } from "ioredis";
import { heartbeatKey } from "../../common/heartbeat.js";
import type { Logger } from "../../common/logger.js";
import type { InventorySpec, ResourceClass } from "../../common/messages.js";
import { QueueSet, redisOptions } from "../../common/queues.js";
import { ComputeAgent } from "../agent.js";
import type { HostResources } from "../virt/driver.js";
import { FakeDriver } from "../virt/fake.js";
import { OnDemandConsumers } from "./on-demand.js";

export interface FleetOptions {
  hosts: string[];
  redisUrl: string;
  queuePrefix: string;
  log: Logger;
  heartbeatIntervalSec: number;
  resources: Pick<HostResources, "vcpus" | "memory_mb" | "disk_gb">;
  inventory: (resources: HostResources) => Record<ResourceClass, InventorySpec>;
  /** The first this many hosts keep a Worker of their own; the others take jobs on demand (on-demand.ts). */
  dedicatedWorkers: number;
  onDemandWorkers: number;
  concurrency: number;
  availabilityZone: string | null;
  powerSyncIntervalSec: number;
  orphanAction: "reap" | "log" | "noop";
  spawnDelayMs?: number;
  apiUrl: string;
  apiToken: string;
  scratchDir: string;
}

/** Workers per shared non-blocking connection. */
const WORKERS_PER_CONNECTION = 500;
/** Agents started at once (each opens a blocking connection and sends its registration). */
const START_BATCH = 100;

export class SimulatedFleet {
  readonly drivers = new Map<string, FakeDriver>();
  private readonly agents: ComputeAgent[] = [];
  private readonly redis: Redis;
  private readonly queues: QueueSet;
  private readonly workerRedis: Redis[] = [];
  private onDemand: OnDemandConsumers | null = null;
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(private readonly opts: FleetOptions) {
    this.redis = new Redis(redisOptions(opts.redisUrl));
    this.redis.on("error", (err) => opts.log.warn({ err: String(err) }, "redis connection error"));
    this.queues = new QueueSet(opts.redisUrl, opts.queuePrefix);
    const dedicated = Math.min(opts.dedicatedWorkers, opts.hosts.length);
    for (let i = 0; i < Math.max(1, Math.ceil(dedicated / WORKERS_PER_CONNECTION)); i++) {
      const conn = new Redis(redisOptions(opts.redisUrl));
      conn.on("error", () => {});
      this.workerRedis.push(conn);
    }
    opts.hosts.forEach((host, i) => {
      const driver = new FakeDriver({ resources: { ...opts.resources, hypervisor_hostname: host }, spawnDelayMs: opts.spawnDelayMs ?? 0 });
      this.drivers.set(host, driver);
      this.agents.push(
        new ComputeAgent({
          host,
          driver,
          libvirtUri: "fake://",
          redisUrl: opts.redisUrl,
          queuePrefix: opts.queuePrefix,
          redis: this.redis,
          log: opts.log.child({ host }),
          concurrency: opts.concurrency,
          heartbeatIntervalSec: opts.heartbeatIntervalSec,
          availabilityZone: opts.availabilityZone,
          inventory: opts.inventory,
          apiUrl: opts.apiUrl,
          apiToken: opts.apiToken,
          scratchDir: opts.scratchDir,
          powerSyncIntervalSec: opts.powerSyncIntervalSec,
          orphanAction: opts.orphanAction,
          shared: { queues: this.queues, workerRedis: this.workerRedis[i % this.workerRedis.length]! },
          consumeOnStart: i < dedicated,
        }),
      );
    });
  }

  get size(): number {
    return this.agents.length;
  }

  /** On-demand workers alive now and started so far. */
  onDemandStats(): { live: number; started: number } {
    return { live: this.onDemand?.liveWorkers ?? 0, started: this.onDemand?.started ?? 0 };
  }

  async start(): Promise<void> {
    await this.beat();
    this.heartbeat = setInterval(() => {
      this.beat().catch((err) => this.opts.log.warn({ err: String(err) }, "heartbeat failed"));
    }, this.opts.heartbeatIntervalSec * 1000);
    const passive = this.agents.slice(this.opts.dedicatedWorkers);
    if (passive.length > 0) {
      this.onDemand = new OnDemandConsumers({
        redisUrl: this.opts.redisUrl,
        queuePrefix: this.opts.queuePrefix,
        agents: passive,
        maxWorkers: this.opts.onDemandWorkers,
        log: this.opts.log,
      });
      this.onDemand.start();
    }
    for (let i = 0; i < this.agents.length; i += START_BATCH) {
      await Promise.all(this.agents.slice(i, i + START_BATCH).map((a) => a.start()));
    }
  }

  async stop(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.onDemand?.stop();
    await Promise.all(this.agents.map((a) => a.stop()));
    await this.queues.close();
    for (const conn of this.workerRedis) conn.disconnect();
    this.redis.disconnect();
  }

  /** One write for every host's heartbeat. */
  private async beat(): Promise<void> {
    const now = String(Date.now());
    await this.redis.hset(heartbeatKey(this.opts.queuePrefix), Object.fromEntries(this.opts.hosts.map((h) => [h, now])));
  }
}
