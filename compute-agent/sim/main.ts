/**
 * `npm run sim -- --hosts N`: N simulated compute hosts in one process (fleet.ts), for
 * benchmarks and scale tests. Redis, the queue prefix, heartbeat interval, allocation
 * ratios and logging come from the usual environment (common/config.ts).
 */
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../../common/config.js";
import { createLogger } from "../../common/logger.js";
import { onShutdown } from "../../common/shutdown.js";
import { inventoryFor } from "../inventory.js";
import { parseSimArgs, simHostNames } from "./args.js";
import { SimulatedFleet } from "./fleet.js";

let args;
try {
  args = parseSimArgs(process.argv.slice(2));
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
const config = loadConfig();
const log = createLogger("cirrus-sim", config.logLevel).child({ sim: args.prefix });
const startedAt = Date.now();
const fleet = new SimulatedFleet({
  hosts: simHostNames(args.prefix, args.hosts),
  redisUrl: config.redisUrl,
  queuePrefix: config.queuePrefix,
  log,
  heartbeatIntervalSec: config.heartbeatIntervalSec,
  resources: { vcpus: args.vcpus, memory_mb: args.ramMb, disk_gb: args.diskGb },
  // The host sizes given here are the inventory: no reserved memory on a simulated host.
  inventory: (r) => inventoryFor(r, { ...config.agentInventory, vcpus: r.vcpus, memoryMb: r.memory_mb, diskGb: r.disk_gb }),
  dedicatedWorkers: args.dedicatedWorkers,
  onDemandWorkers: args.onDemandWorkers,
  concurrency: config.agentConcurrency,
  availabilityZone: config.agentAvailabilityZone,
  powerSyncIntervalSec: config.recovery.powerSyncIntervalSec,
  orphanAction: config.recovery.orphanAction,
  spawnDelayMs: config.fakeSpawnDelayMs,
  apiUrl: config.agentApiUrl,
  apiToken: config.agentToken,
  scratchDir: path.join(os.tmpdir(), `cirrus-sim-${process.pid}`),
});
await fleet.start();
const dedicated = Math.min(args.dedicatedWorkers, args.hosts);
// Always printed, whatever LOG_LEVEL says: the bench harness and people read it.
console.log(
  `cirrus-sim: ${args.hosts} hosts ${args.prefix}-* registered in ${((Date.now() - startedAt) / 1000).toFixed(1)} s ` +
    `(${dedicated} with their own worker, ${args.hosts - dedicated} on demand, at most ${args.onDemandWorkers} at once)`,
);
onShutdown(log, () => fleet.stop());
