/** The compute agent process for one host. It holds no database credentials. */
import path from "node:path";
import { Redis } from "ioredis";
import { loadConfig } from "../common/config.js";
import { createLogger } from "../common/logger.js";
import { redisOptions } from "../common/queues.js";
import { onShutdown } from "../common/shutdown.js";
import { agentMetrics, driverLabel, instrumentSpawn, startMetricsPush } from "../common/metrics.js";
import { startOpsServer } from "../common/ops-server.js";
import { ComputeAgent } from "./agent.js";
import { openDriver } from "./driver-factory.js";
import { inventoryFor } from "./inventory.js";

const config = loadConfig();
const log = createLogger("cirrus-compute", config.logLevel).child({ host: config.agentHost });
const opened = await openDriver(config, log);
const uri = opened.uri;
// Spawn durations by driver: pushed to Redis for the api's /metrics, and on the optional listener.
const metrics = agentMetrics();
const driver = instrumentSpawn(opened.driver, metrics, { driver: driverLabel(uri), host: config.agentHost });
const redis = new Redis(redisOptions(config.redisUrl));
redis.on("error", (err) => log.warn({ err: String(err) }, "redis connection error"));

const agent = new ComputeAgent({
  host: config.agentHost,
  driver,
  libvirtUri: uri,
  redisUrl: config.redisUrl,
  queuePrefix: config.queuePrefix,
  redis,
  log,
  concurrency: config.agentConcurrency,
  heartbeatIntervalSec: config.heartbeatIntervalSec,
  availabilityZone: config.agentAvailabilityZone,
  inventory: (resources) => inventoryFor(resources, config.agentInventory),
  apiUrl: config.agentApiUrl,
  apiToken: config.agentToken,
  scratchDir: path.join(config.instancesPath, "_snapshots"),
  shutdownTimeoutSec: config.shutdownTimeoutSec,
  powerSyncIntervalSec: config.recovery.powerSyncIntervalSec,
  orphanAction: config.recovery.orphanAction,
});
await agent.start();
const stopMetricsPush = startMetricsPush(redis, config.queuePrefix, `agent:${config.agentHost}`, metrics.registry);
const opsServer = config.metricsPort === null ? null : await startOpsServer({
  host: config.metricsHost, port: config.metricsPort, service: "compute-agent", registry: metrics.served, log,
  checks: { redis: () => redis.ping() },
});

onShutdown(log, async () => {
  await opsServer?.close();
  await stopMetricsPush();
  await agent.stop();
  await driver.close();
  redis.disconnect();
});
