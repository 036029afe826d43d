/**
 * The compute agent: registers its host, heartbeats, and carries out the jobs of its
 * own queue through the virt driver, one operation at a time per instance. It talks to
 * libvirt and Redis only; every result goes back to the conductor as a report.
 */
import { createReadStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import { domainsKey, heartbeatKey } from "../common/heartbeat.js";
import type { Logger } from "../common/logger.js";
import type { ComputeJob, InstanceRef, InventorySpec, PowerAction, Report, ReportedAction, ResourceClass } from "../common/messages.js";
import { PowerState } from "../common/power-state.js";
import { HOST_WORKER_SETTINGS, QueueSet, REPORTS_QUEUE, computeQueueName, workerConnection } from "../common/queues.js";
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
  /** Where snapshots are uploaded (the API root) and the agent's own credential for it. */
  apiUrl: string;
  apiToken: string;
  /** Scratch space for snapshots on their way to the image store. */
  scratchDir: string;
  /** Seconds a clean shutdown may take before the domain is powered off hard (Nova: 60). */
  shutdownTimeoutSec?: number;
  /** How often every domain's power state is reported (Nova's sync_power_state_interval); 0: never. */
  powerSyncIntervalSec?: number;
  /** What to do with a domain the conductor says has no live instance here (Nova's running_deleted_instance_action). */
  orphanAction?: "reap" | "log" | "noop";
  /** Connections shared by the many agents of one process (compute-agent/sim); absent: the agent opens its own. */
  shared?: SharedAgentConnections;
  /** false: start() registers without taking jobs, until consume() (default true). */
  consumeOnStart?: boolean;
}

/**
 * What many agents in one process share. The owner writes every host's heartbeat
 * (one HSET per interval) and closes these after the agents.
 */
export interface SharedAgentConnections {
  /** Producer queues (reports) on one connection. */
  queues: QueueSet;
  /** The Workers' connection for non-blocking commands; each Worker still opens its own blocking one. */
  workerRedis: Redis;
}

/** BullMQ states in which a job will still run by itself. */
const STILL_QUEUED = new Set(["waiting", "delayed", "prioritized", "waiting-children"]);

function hostIp(): string {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}

/** Node's os.arch() in Nova's spelling, for a driver that does not say. */
export function novaArchitecture(nodeArch: string): string {
  if (nodeArch === "x64") return "x86_64";
  if (nodeArch === "arm64") return "aarch64";
  return nodeArch;
}

export class ComputeAgent {
  private readonly reports: QueueSet;
  private readonly serial = new KeyedSerial();
  /** Instances deleted here, so a spawn that arrives late does not bring one back. */
  private readonly deleted = new Set<string>();
  /** Spawn jobs given up at start-up reconciliation: a redelivery of one does nothing. */
  private readonly abandoned = new Set<string>();
  /** Ids of the jobs this process has taken and not finished. */
  private readonly pending = new Set<string>();
  private worker: Worker<ComputeJob> | null = null;
  private lastJobAt = 0;
  /** Jobs of any kind the worker is running now. */
  private running = 0;
  private heartbeat: NodeJS.Timeout | null = null;
  private syncTimer: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  private stopping = false;

  constructor(private readonly opts: AgentOptions) {
    this.reports = opts.shared?.queues ?? new QueueSet(opts.redisUrl, opts.queuePrefix);
  }

  get queueName(): string {
    return computeQueueName(this.opts.host);
  }

  async start(): Promise<void> {
    const { driver, log } = this.opts;
    const resources = await driver.hostResources();
    if (!this.opts.shared) await this.beat();
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
        cpu_arch: resources.cpu_arch || novaArchitecture(os.arch()),
        inventory: this.opts.inventory(resources),
      },
      `register-${this.opts.host}-${Date.now()}`,
    );
    if (!this.opts.shared) {
      this.heartbeat = setInterval(() => {
        this.beat().catch((err) => log.warn({ err: String(err) }, "heartbeat failed"));
      }, this.opts.heartbeatIntervalSec * 1000);
    }
    if (this.opts.consumeOnStart ?? true) this.consume();
    const every = this.opts.powerSyncIntervalSec ?? 60;
    if (every > 0) {
      this.syncTimer = setInterval(() => {
        this.syncPower().catch((err) => log.warn({ err: String(err) }, "power-state sync failed"));
      }, every * 1000);
    }
    log.info({ host: this.opts.host, queue: this.queueName, driver: driver.description }, "compute agent ready");
  }

  /** Starts taking jobs from this host's queue (a no-op while a worker runs). */
  consume(): void {
    if (this.worker || this.stopping) return;
    const { log } = this.opts;
    this.lastJobAt = Date.now();
    const worker = new Worker<ComputeJob>(this.queueName, (job) => this.handle(job), {
      connection: this.opts.shared?.workerRedis ?? workerConnection(this.opts.redisUrl),
      prefix: this.opts.queuePrefix,
      concurrency: this.opts.concurrency,
      ...HOST_WORKER_SETTINGS,
    });
    worker.on("error", (err) => log.warn({ err: String(err) }, "worker error"));
    worker.on("failed", (job, err) => log.warn({ job_id: job?.id, err: String(err) }, "job failed"));
    this.worker = worker;
  }

  /** Milliseconds since this agent's worker last took or finished a job; null when it holds one or has no worker. */
  idleMs(now = Date.now()): number | null {
    if (!this.worker || this.running > 0) return null;
    return now - this.lastJobAt;
  }

  /** Stops taking jobs once the operations in hand are done (consume() starts again). */
  async release(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    await worker?.close();
  }

  /** Finishes the operation in hand (and a sync under way), then stops taking jobs. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.syncTimer) clearInterval(this.syncTimer);
    await this.release();
    await this.syncing?.catch(() => {});
    if (!this.opts.shared) await this.reports.close();
  }

  /**
   * Power-state sync: lists every domain with its power state, publishes the listing in
   * Redis (domainsKey) and reports it to the conductor, which applies Nova's rules and
   * answers with the orphans it finds.
   */
  syncPower(): Promise<void> {
    if (this.syncing) return this.syncing;
    const run = async () => {
      const listedAt = Date.now();
      const domains = await this.opts.driver.listInstances();
      const listing = domains.map((d) => ({ instance_id: d.instance_id, instance_name: d.instance_name, power_state: d.power_state }));
      await this.opts.redis.hset(domainsKey(this.opts.queuePrefix), this.opts.host, JSON.stringify({ at: listedAt, domains: listing }));
      await this.report({ kind: "power_sync", host: this.opts.host, listed_at: listedAt, domains: listing }, `power_sync-${this.opts.host}-${listedAt}`);
    };
    this.syncing = run().finally(() => {
      this.syncing = null;
    });
    return this.syncing;
  }

  /**
   * Start-up reconciliation (Nova's _init_instance), from the list the conductor sends on
   * registration: a build whose domain runs is reported spawned (its report was lost); a
   * build this host was working on when it died (its job is neither queued nor held by this
   * process) is cleaned up and reported failed, so the conductor reschedules or errors it;
   * a delete in progress is finished. Then a power-state sync lets the conductor find
   * domains without a live instance (orphans).
   */
  private async reconcile(job: Extract<ComputeJob, { kind: "reconcile" }>): Promise<void> {
    const log = this.opts.log.child({ request_id: job.request_id });
    const counts = { expected: job.expected.length, reported_spawned: 0, reported_failed: 0, left_queued: 0, deletes_finished: 0 };
    for (const inst of job.expected) {
      const ref: InstanceRef = { instance_id: inst.instance_id, instance_name: inst.instance_name };
      if (inst.task_state === "deleting") {
        await this.serial.run(inst.instance_id, () => this.destroy({ kind: "delete", request_id: job.request_id, instance: ref }, `-r-${job.request_id}`));
        counts.deletes_finished++;
        continue;
      }
      if (inst.vm_state !== "building" || inst.task_state !== "spawning") continue;
      await this.serial.run(inst.instance_id, async () => {
        const base = { host: this.opts.host, request_id: job.request_id, instance_id: inst.instance_id, attempt: inst.attempt };
        const powerState = await this.opts.driver.powerState(ref);
        if (powerState === PowerState.RUNNING) {
          counts.reported_spawned++;
          await this.report({ kind: "spawned", ...base, power_state: powerState }, `spawned-${inst.instance_id}-${inst.attempt}-r-${job.request_id}`);
          return;
        }
        const spawnJobId = `spawn-${inst.instance_id}-${inst.attempt}`;
        if (this.pending.has(spawnJobId)) return;
        const state = await this.reports.get(this.queueName).getJobState(spawnJobId);
        if (STILL_QUEUED.has(state)) {
          counts.left_queued++;
          return;
        }
        this.abandoned.add(spawnJobId);
        await this.opts.driver.destroy(ref).catch((err: unknown) => log.warn({ err: String(err), instance_id: inst.instance_id }, "cleaning up a half-built instance failed"));
        counts.reported_failed++;
        const reason = `The compute service on ${this.opts.host} restarted while the instance was being built (spawn job ${state}).`;
        await this.report({ kind: "spawn_failed", ...base, reason }, `spawn_failed-${inst.instance_id}-${inst.attempt}-r-${job.request_id}`);
      });
    }
    const acted = counts.reported_spawned + counts.reported_failed + counts.deletes_finished > 0;
    log[acted ? "warn" : "info"](counts, "start-up reconciliation done");
    await this.syncPower();
  }

  /** Domains without a live instance here, as the conductor found them: reap, log or leave them. */
  private async orphans(job: Extract<ComputeJob, { kind: "orphans" }>): Promise<void> {
    const action = this.opts.orphanAction ?? "reap";
    if (action === "noop") return;
    let reaped = 0;
    for (const d of job.domains) {
      const log = this.opts.log.child({ request_id: job.request_id, instance_id: d.instance_id, domain: d.instance_name, reason: d.reason });
      if (action === "log") {
        log.warn("orphan domain (CIRRUS_ORPHAN_ACTION=log: left alone)");
        continue;
      }
      await this.serial.run(d.instance_id, async () => {
        this.deleted.add(d.instance_id);
        await this.opts.driver.destroy({ instance_id: d.instance_id, instance_name: d.instance_name });
        reaped++;
        log.warn("orphan domain reaped");
      });
    }
    if (reaped > 0 && !this.stopping) await this.syncPower();
  }

  private async beat(): Promise<void> {
    await this.opts.redis.hset(heartbeatKey(this.opts.queuePrefix), this.opts.host, String(Date.now()));
  }

  private async report(report: Report, jobId: string): Promise<void> {
    await this.reports.get(REPORTS_QUEUE).add(report.kind, report, { jobId });
  }

  private async handle(job: Job<ComputeJob>): Promise<string | void> {
    this.running++;
    try {
      return await this.handleJob(job);
    } finally {
      this.running--;
      this.lastJobAt = Date.now();
    }
  }

  private async handleJob(job: Job<ComputeJob>): Promise<string | void> {
    const data = job.data;
    // A console read does not wait behind a long operation on the same instance.
    if (data.kind === "console") return this.opts.driver.consoleOutput(data.instance);
    if (data.kind === "reconcile") return this.reconcile(data);
    if (data.kind === "orphans") return this.orphans(data);
    const instanceId = "spec" in data ? data.spec.instance_id : data.instance.instance_id;
    const id = job.id ?? "";
    this.pending.add(id);
    try {
      return await this.serial.run(instanceId, () => this.dispatch(data));
    } finally {
      this.pending.delete(id);
    }
  }

  private async dispatch(job: ComputeJob): Promise<void> {
    switch (job.kind) {
      case "spawn":
        return this.spawn(job);
      case "delete":
        return this.destroy(job);
      case "power":
        return this.act(job.request_id, job.instance, job.action, () => this.power(job.action, job.instance));
      case "rebuild":
        return this.act(job.request_id, job.spec, "rebuild", () => this.opts.driver.rebuild(job.spec, job.stopped));
      case "resize":
        return this.act(job.request_id, job.spec, "resize", () => this.opts.driver.resize(job.spec, job.stopped));
      case "revert_resize":
        return this.act(job.request_id, job.spec, "revert_resize", () => this.opts.driver.revertResize(job.spec, job.stopped));
      case "confirm_resize":
        return this.opts.driver.confirmResize(job.instance);
      case "snapshot":
        return this.act(job.request_id, job.instance, "snapshot", () => this.snapshot(job.instance, job.image_id));
      case "console":
      case "reconcile":
      case "orphans":
        return;
    }
  }

  private power(action: PowerAction, instance: InstanceRef): Promise<PowerState> {
    const d = this.opts.driver;
    const timeout = this.opts.shutdownTimeoutSec ?? 60;
    switch (action) {
      case "stop":
        return d.powerOff(instance, timeout);
      case "start":
        return d.powerOn(instance);
      case "reboot_soft":
        return d.reboot(instance, false, timeout);
      case "reboot_hard":
        return d.reboot(instance, true, timeout);
      case "pause":
        return d.pause(instance);
      case "unpause":
        return d.unpause(instance);
      case "suspend":
        return d.suspend(instance);
      case "resume":
        return d.resume(instance);
    }
  }

  /** Runs one action and reports its outcome; a repeated job reports again, the conductor dedupes. */
  private async act(requestId: string, instance: InstanceRef, action: ReportedAction, work: () => Promise<PowerState>): Promise<void> {
    if (this.deleted.has(instance.instance_id)) return;
    const log = this.opts.log.child({ request_id: requestId, instance_id: instance.instance_id, action });
    const base = { host: this.opts.host, request_id: requestId, instance_id: instance.instance_id, action };
    let report: Report;
    const started = Date.now();
    try {
      const powerState = await work();
      log.info({ ms: Date.now() - started }, "action done");
      report = { kind: "action_done", ...base, power_state: powerState };
    } catch (err) {
      log.warn({ err: String(err) }, "action failed");
      report = { kind: "action_failed", ...base, reason: err instanceof Error ? err.message : String(err) };
    }
    await this.report(report, `${report.kind}-${action}-${instance.instance_id}-${requestId}`);
  }

  /** Flattens the root disk into scratch space and uploads it as the image's bytes. */
  private async snapshot(instance: InstanceRef, imageId: string): Promise<PowerState> {
    await mkdir(this.opts.scratchDir, { recursive: true });
    const file = path.join(this.opts.scratchDir, `${imageId}.qcow2`);
    try {
      await this.opts.driver.snapshot(instance, file);
      const size = (await stat(file)).size;
      const res = await fetch(`${this.opts.apiUrl}/v2/images/${imageId}/file`, {
        method: "PUT",
        headers: { "x-auth-token": this.opts.apiToken, "content-type": "application/octet-stream", "content-length": String(size) },
        body: createReadStream(file) as unknown as ReadableStream,
        duplex: "half",
      } as RequestInit);
      if (!res.ok) throw new Error(`uploading the snapshot to image ${imageId} failed: ${res.status} ${await res.text()}`);
    } finally {
      await rm(file, { force: true });
    }
    return this.opts.driver.powerState(instance);
  }

  private async spawn(job: Extract<ComputeJob, { kind: "spawn" }>): Promise<void> {
    const { spec } = job;
    const log = this.opts.log.child({ request_id: job.request_id, instance_id: spec.instance_id });
    if (this.deleted.has(spec.instance_id)) {
      log.info("spawn skipped: the instance was deleted on this host");
      return;
    }
    if (this.abandoned.has(`spawn-${spec.instance_id}-${job.attempt}`)) {
      log.info("spawn skipped: start-up reconciliation reported this build failed");
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

  private async destroy(job: Extract<ComputeJob, { kind: "delete" }>, reportSuffix = ""): Promise<void> {
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
    await this.report(report, `${report.kind}-${instance.instance_id}${reportSuffix}`);
  }
}
