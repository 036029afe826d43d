/**
 * The compute agent: registers its host, heartbeats, and carries out the jobs of its
 * own queue through the virt driver, one operation at a time per instance. It talks to
 * libvirt and Redis only; every result goes back to the conductor as a report.
 */
import os from "node:os";
import { Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import { heartbeatKey } from "../common/heartbeat.js";
import type { Logger } from "../common/logger.js";
import type { ComputeJob, InventorySpec, Report, ResourceClass } from "../common/messages.js";
import { QueueSet, REPORTS_QUEUE, computeQueueName, workerConnection } from "../common/queues.js";
import { KeyedSerial } from "./keyed-serial.js";
import type { VirtDriver } from "./virt/driver.js";

export interface AgentOptions {
  host: string;
  driver: VirtDriver;
  /** The URI the driver speaks, reported to the control plane. */
  libvirtUri: string;
  redisUrl: string;
  queuePrefix: string;
  redis: Redis;
  log: Logger;
  concurrency: number;
  heartbeatIntervalSec: number;
  availabilityZone: string | null;
  inventory: (resources: Awaited<ReturnType<VirtDriver["hostResources"]>>) => Record<ResourceClass, InventorySpec>;
}

function hostIp(): string {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}

export class ComputeAgent {
  private readonly reports: QueueSet;
  private readonly serial = new KeyedSerial();
  /** Instances deleted here, so a spawn that arrives late does not bring one back. */
  private readonly deleted = new Set<string>();
  private worker: Worker<ComputeJob> | null = null;
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(private readonly opts: AgentOptions) {
    this.reports = new QueueSet(opts.redisUrl, opts.queuePrefix);
  }

  get queueName(): string {
    return computeQueueName(this.opts.host);
  }

  async start(): Promise<void> {
    const { driver, log } = this.opts;
    const resources = await driver.hostResources();
    await this.beat();
    await this.report(
      {
        kind: "register",
        host: this.opts.host,
        hypervisor_type: resources.hypervisor_type,
        hypervisor_version: resources.hypervisor_version,
        hypervisor_hostname: resources.hypervisor_hostname === os.hostname() ? this.opts.host : resources.hypervisor_hostname,
        host_ip: hostIp(),
        libvirt_uri: this.opts.libvirtUri,
        availability_zone: this.opts.availabilityZone,
        inventory: this.opts.inventory(resources),
      },
      `register-${this.opts.host}-${Date.now()}`,
    );
    this.heartbeat = setInterval(() => {
      this.beat().catch((err) => log.warn({ err: String(err) }, "heartbeat failed"));
    }, this.opts.heartbeatIntervalSec * 1000);
    this.worker = new Worker<ComputeJob>(this.queueName, (job) => this.handle(job), {
      connection: workerConnection(this.opts.redisUrl),
      prefix: this.opts.queuePrefix,
      concurrency: this.opts.concurrency,
    });
    this.worker.on("error", (err) => log.warn({ err: String(err) }, "worker error"));
    this.worker.on("failed", (job, err) => log.warn({ job_id: job?.id, err: String(err) }, "job failed"));
    log.info({ host: this.opts.host, queue: this.queueName, driver: driver.description }, "compute agent ready");
  }

  /** Finishes the operation in hand, then stops taking jobs. */
  async stop(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.worker?.close();
    await this.reports.close();
  }

  private async beat(): Promise<void> {
    await this.opts.redis.hset(heartbeatKey(this.opts.queuePrefix), this.opts.host, String(Date.now()));
  }

  private async report(report: Report, jobId: string): Promise<void> {
    await this.reports.get(REPORTS_QUEUE).add(report.kind, report, { jobId });
  }

  private async handle(job: Job<ComputeJob>): Promise<void> {
    const data = job.data;
    const instanceId = data.kind === "spawn" ? data.spec.instance_id : data.instance.instance_id;
    await this.serial.run(instanceId, () => (data.kind === "spawn" ? this.spawn(data) : this.destroy(data)));
  }

  private async spawn(job: Extract<ComputeJob, { kind: "spawn" }>): Promise<void> {
    const { spec } = job;
    const log = this.opts.log.child({ request_id: job.request_id, instance_id: spec.instance_id });
    if (this.deleted.has(spec.instance_id)) {
      log.info("spawn skipped: the instance was deleted on this host");
      return;
    }
    const started = Date.now();
    const base = { host: this.opts.host, request_id: job.request_id, instance_id: spec.instance_id, attempt: job.attempt };
    let report: Report;
    try {
      const powerState = await this.opts.driver.spawn(spec);
      log.info({ ms: Date.now() - started, domain: spec.instance_name }, "spawned");
      report = { kind: "spawned", ...base, power_state: powerState };
    } catch (err) {
      log.warn({ err: String(err) }, "spawn failed");
      report = { kind: "spawn_failed", ...base, reason: err instanceof Error ? err.message : String(err) };
    }
    await this.report(report, `${report.kind}-${spec.instance_id}-${job.attempt}`);
  }

  private async destroy(job: Extract<ComputeJob, { kind: "delete" }>): Promise<void> {
    const { instance } = job;
    const log = this.opts.log.child({ request_id: job.request_id, instance_id: instance.instance_id });
    this.deleted.add(instance.instance_id);
    const base = { host: this.opts.host, request_id: job.request_id, instance_id: instance.instance_id };
    let report: Report;
    try {
      await this.opts.driver.destroy(instance);
      log.info({ domain: instance.instance_name }, "destroyed");
      report = { kind: "deleted", ...base };
    } catch (err) {
      log.warn({ err: String(err) }, "destroy failed");
      report = { kind: "delete_failed", ...base, reason: err instanceof Error ? err.message : String(err) };
    }
    await this.report(report, `${report.kind}-${instance.instance_id}`);
  }
}
