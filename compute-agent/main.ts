/** The compute agent process for one host. It holds no database credentials. */
import path from "node:path";
import { Redis } from "ioredis";
import { loadConfig } from "../common/config.js";
import { createLogger } from "../common/logger.js";
import { redisOptions } from "../common/queues.js";
import { onShutdown } from "../common/shutdown.js";
import { ComputeAgent } from "./agent.js";
import { openDriver } from "./driver-factory.js";
import { inventoryFor } from "./inventory.js";

const config = loadConfig();
const log = createLogger("cirrus-compute", config.logLevel).child({ host: config.agentHost });
const { driver, uri } = await openDriver(config, log);
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
});
await agent.start();

onShutdown(log, async () => {
  await agent.stop();
  await driver.close();
  redis.disconnect();
});
