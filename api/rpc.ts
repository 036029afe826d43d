/**
 * Request and reply through a host's queue, for the few reads that need the hypervisor
 * (the console log), as Nova uses an RPC call for them. Bounded by a timeout, so an
 * unreachable host costs a 503 after a few seconds, never a hung request.
 */
import { Queue, QueueEvents } from "bullmq";
import type { ComputeJob, InstanceRef } from "../common/messages.js";
import { computeQueueName, producerConnection, workerConnection } from "../common/queues.js";

export interface ComputeRpc {
  consoleOutput(host: string, instance: InstanceRef, requestId: string): Promise<string>;
  close(): Promise<void>;
}

export class QueueRpc implements ComputeRpc {
  private readonly queues = new Map<string, { queue: Queue; events: QueueEvents }>();
  private readonly connection;

  constructor(
    private readonly redisUrl: string,
    private readonly prefix: string,
    private readonly timeoutMs = 10_000,
  ) {
    this.connection = producerConnection(redisUrl);
    this.connection.on("error", () => {});
  }

  private async forHost(host: string) {
    const name = computeQueueName(host);
    let entry = this.queues.get(name);
    if (!entry) {
      const queue = new Queue(name, { connection: this.connection, prefix: this.prefix });
      const events = new QueueEvents(name, { connection: workerConnection(this.redisUrl), prefix: this.prefix });
      queue.on("error", () => {});
      events.on("error", () => {});
      entry = { queue, events };
      this.queues.set(name, entry);
      await events.waitUntilReady();
    }
    return entry;
  }

  async consoleOutput(host: string, instance: InstanceRef, requestId: string): Promise<string> {
    const { queue, events } = await this.forHost(host);
    const data: ComputeJob = { kind: "console", request_id: requestId, instance };
    const job = await queue.add("console", data, { removeOnComplete: { age: 60 }, removeOnFail: { age: 60 }, attempts: 1 });
    return (await job.waitUntilFinished(events, this.timeoutMs)) as string;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].flatMap((e) => [e.queue.close(), e.events.close()]));
    this.connection.disconnect();
  }
}

/** The last `length` lines of a console log (all of it when length is null or -1). */
export function tailLines(text: string, length: number | null): string {
  if (length === null || length < 0) return text;
  if (length === 0) return "";
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.slice(-length).join("\n") + (lines.length > 0 ? "\n" : "");
}
