/**
 * Simulated compute hosts inside the test process: one ComputeAgent on a FakeDriver per
 * host, each registering its inventory, heartbeating and reporting through Redis like
 * an agent process does. One Redis connection carries every host's heartbeat.
 */
import { Redis } from "ioredis";
import { createLogger } from "../../common/logger.js";
import type { InventorySpec, ResourceClass } from "../../common/messages.js";
import { ComputeAgent } from "../../compute-agent/agent.js";
import { FakeDriver } from "../../compute-agent/virt/fake.js";
import { TEST_REDIS_URL } from "./services.js";

export type Inventory = Record<ResourceClass, InventorySpec>;

export interface FakeHostSpec {
  host: string;
  inventory: Inventory;
}

export interface FakeHosts {
  /** Each host's driver, to look at the domains it runs. */
  drivers: Map<string, FakeDriver>;
  stop(): Promise<void>;
}

/** An inventory row with Nova's defaults for min_unit, max_unit and step_size. */
export function inventorySpec(total: number, reserved: number, allocationRatio: number): InventorySpec {
  return { total, reserved, min_unit: 1, max_unit: total, step_size: 1, allocation_ratio: allocationRatio };
}

export async function startFakeHosts(opts: {
  hosts: FakeHostSpec[];
  prefix: string;
  redisUrl?: string;
  /** Jobs each agent runs at once. */
  concurrency?: number;
  heartbeatIntervalSec?: number;
}): Promise<FakeHosts> {
  const redisUrl = opts.redisUrl ?? TEST_REDIS_URL;
  const redis = new Redis(redisUrl);
  const log = createLogger("fake-hosts", "warn");
  const drivers = new Map<string, FakeDriver>();
  const agents: ComputeAgent[] = [];
  for (const spec of opts.hosts) {
    const driver = new FakeDriver({ resources: { hypervisor_hostname: spec.host } });
    await driver.init();
    drivers.set(spec.host, driver);
    agents.push(
      new ComputeAgent({
        host: spec.host,
        driver,
        libvirtUri: "fake://",
        redisUrl,
        queuePrefix: opts.prefix,
        redis,
        log: log.child({ host: spec.host }),
        concurrency: opts.concurrency ?? 4,
        heartbeatIntervalSec: opts.heartbeatIntervalSec ?? 2,
        availabilityZone: null,
        inventory: () => spec.inventory,
        apiUrl: "http://127.0.0.1:1",
        apiToken: "unused",
        scratchDir: "/tmp",
        powerSyncIntervalSec: 0,
        orphanAction: "log",
      }),
    );
  }
  await Promise.all(agents.map((a) => a.start()));
  return {
    drivers,
    stop: async () => {
      await Promise.all(agents.map((a) => a.stop()));
      await Promise.all([...drivers.values()].map((d) => d.close()));
      redis.disconnect();
    },
  };
}
