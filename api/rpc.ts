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

interface HostChannel {
  queue: Queue;
  events: QueueEvents;
  /** Resolves once the event stream listens: a reply sent before that would be missed. */
  ready: Promise<unknown>;
  /** Calls waiting on this channel now; a channel in use is never closed. */
  users: number;
}

/**
 * Each host's channel holds a blocking Redis connection of its own (QueueEvents reads the
 * queue's event stream), so only the `maxChannels` most recently used stay open: a
 * region of 10,000 hosts must not cost the API a connection per host it ever asked.
 */
export class QueueRpc implements ComputeRpc {
  private readonly channels = new Map<string, HostChannel>();
  private readonly connection;

  constructor(
    private readonly redisUrl: string,
    private readonly prefix: string,
    private readonly timeoutMs = 10_000,
    private readonly maxChannels = 32,
  ) {
    this.connection = producerConnection(redisUrl);
    this.connection.on("error", () => {});
  }

  /** Host channels open now (for tests and metrics). */
  get openChannels(): number {
    return this.channels.size;
  }

  private open(name: string): HostChannel {
    const queue = new Queue(name, { connection: this.connection, prefix: this.prefix, skipVersionCheck: this.channels.size > 0 });
    const events = new QueueEvents(name, { connection: workerConnection(this.redisUrl), prefix: this.prefix });
    queue.on("error", () => {});
    events.on("error", () => {});
    return { queue, events, ready: events.waitUntilReady(), users: 0 };
  }

  /** The host's channel, taken for one call: give it back with release(). */
  private take(host: string): HostChannel {
    const name = computeQueueName(host);
    let channel = this.channels.get(name);
    if (channel) this.channels.delete(name); // Map order is use order: it moves to the end.
    else channel = this.open(name);
    this.channels.set(name, channel);
    channel.users++;
    return channel;
  }

  private release(channel: HostChannel): void {
    channel.users--;
    for (const [name, old] of this.channels) {
      if (this.channels.size <= this.maxChannels) break;
      if (old.users > 0) continue;
      this.channels.delete(name);
      void Promise.all([old.queue.close(), old.events.close()]).catch(() => {});
    }
  }

  async consoleOutput(host: string, instance: InstanceRef, requestId: string): Promise<string> {
    const channel = this.take(host);
    try {
      await channel.ready;
      const data: ComputeJob = { kind: "console", request_id: requestId, instance };
      const job = await channel.queue.add("console", data, { removeOnComplete: { age: 60 }, removeOnFail: { age: 60 }, attempts: 1 });
      return (await job.waitUntilFinished(channel.events, this.timeoutMs)) as string;
    } finally {
      this.release(channel);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.channels.values()].flatMap((c) => [c.queue.close(), c.events.close()]));
    this.channels.clear();
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
