import { describe, expect, it } from "vitest";
import { KeyedSerial } from "../../compute-agent/keyed-serial.js";

/** A promise the test settles by hand. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const flush = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

describe("KeyedSerial", () => {
  it("runs the tasks of one key one after another, in arrival order", async () => {
    const ks = new KeyedSerial();
    const log: string[] = [];
    const gates = [deferred(), deferred(), deferred()];
    const results = gates.map((g, i) =>
      ks.run("vm-1", async () => {
        log.push(`start ${i}`);
        await g.promise;
        log.push(`end ${i}`);
        return i;
      }),
    );
    await flush();
    expect(log).toEqual(["start 0"]);
    // finishing out of order does not let a later task overtake
    gates[2]!.resolve();
    gates[1]!.resolve();
    await flush();
    expect(log).toEqual(["start 0"]);
    gates[0]!.resolve();
    expect(await Promise.all(results)).toEqual([0, 1, 2]);
    expect(log).toEqual(["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]);
  });

  it("goes on with the next task when one rejects, and hands each caller its own outcome", async () => {
    const ks = new KeyedSerial();
    const log: string[] = [];
    const first = deferred();
    const p1 = ks.run("vm-1", async () => {
      log.push("start 1");
      await first.promise;
      throw new Error("boom");
    });
    const p2 = ks.run("vm-1", async () => {
      log.push("start 2");
      return "two";
    });
    const p3 = ks.run("vm-1", () => {
      log.push("start 3");
      throw new Error("sync boom"); // a synchronous throw is a rejection too
    });
    const p4 = ks.run("vm-1", async () => (log.push("start 4"), "four"));
    await flush();
    expect(log).toEqual(["start 1"]);
    first.resolve();
    await expect(p1).rejects.toThrow("boom");
    await expect(p2).resolves.toBe("two");
    await expect(p3).rejects.toThrow("sync boom");
    await expect(p4).resolves.toBe("four");
    expect(log).toEqual(["start 1", "start 2", "start 3", "start 4"]);
  });

  it("runs different keys concurrently", async () => {
    const ks = new KeyedSerial();
    const log: string[] = [];
    const a = deferred();
    const b = deferred();
    const pa = ks.run("vm-a", async () => (log.push("start a"), await a.promise, log.push("end a")));
    const pb = ks.run("vm-b", async () => (log.push("start b"), await b.promise, log.push("end b")));
    await flush();
    expect(log).toEqual(["start a", "start b"]); // b did not wait for a
    b.resolve();
    await pb;
    expect(log).toEqual(["start a", "start b", "end b"]); // and finished first
    a.resolve();
    await pa;
    expect(log).toEqual(["start a", "start b", "end b", "end a"]);
  });

  it("a later task of a key still waits after the key's queue drained and refilled", async () => {
    const ks = new KeyedSerial();
    await ks.run("k", async () => 1);
    const log: string[] = [];
    const gate = deferred();
    const p1 = ks.run("k", async () => (log.push("x"), await gate.promise, log.push("x done")));
    const p2 = ks.run("k", async () => log.push("y"));
    await flush();
    expect(log).toEqual(["x"]);
    gate.resolve();
    await Promise.all([p1, p2]);
    expect(log).toEqual(["x", "x done", "y"]);
  });

  it("a task arriving after an earlier one finished still waits for the one running", async () => {
    const ks = new KeyedSerial();
    const log: string[] = [];
    const g1 = deferred();
    const g2 = deferred();
    const p1 = ks.run("k", async () => (log.push("1"), await g1.promise, log.push("1 done")));
    const p2 = ks.run("k", async () => (log.push("2"), await g2.promise, log.push("2 done")));
    g1.resolve();
    await p1;
    await flush();
    expect(log).toEqual(["1", "1 done", "2"]);
    const p3 = ks.run("k", async () => log.push("3"));
    await flush();
    expect(log).toEqual(["1", "1 done", "2"]); // 3 waits for 2
    g2.resolve();
    await Promise.all([p2, p3]);
    expect(log).toEqual(["1", "1 done", "2", "2 done", "3"]);
  });
});
