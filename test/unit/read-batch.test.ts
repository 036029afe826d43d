import { describe, expect, it } from "vitest";
import { ReadBatcher } from "../../common/read-batch.js";

const deferred = () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  return { gate, release };
};

describe("ReadBatcher", () => {
  it("reads a key alone when idle, and what arrives meanwhile in one read after", async () => {
    const calls: number[][] = [];
    const first = deferred();
    const b = new ReadBatcher<number, string>(async (keys) => {
      calls.push(keys);
      if (calls.length === 1) await first.gate;
      return keys.map((k) => `v${k}`);
    });
    const a = b.load(1);
    const rest = [b.load(2), b.load(3), b.load(4)];
    expect(calls).toEqual([[1]]);
    first.release();
    expect(await a).toBe("v1");
    expect(await Promise.all(rest)).toEqual(["v2", "v3", "v4"]);
    expect(calls).toEqual([[1], [2, 3, 4]]);
  });

  it("fails only the batch whose read failed", async () => {
    const first = deferred();
    let n = 0;
    const b = new ReadBatcher<number, number>(async (keys) => {
      n++;
      if (n === 1) {
        await first.gate;
        throw new Error("boom");
      }
      return keys;
    });
    const a = b.load(1);
    const c = b.load(2);
    first.release();
    await expect(a).rejects.toThrow("boom");
    expect(await c).toBe(2);
  });

  it("splits what waits into batches of at most maxBatch", async () => {
    const sizes: number[] = [];
    const first = deferred();
    const b = new ReadBatcher<number, number>(async (keys) => {
      sizes.push(keys.length);
      if (sizes.length === 1) await first.gate;
      return keys;
    }, 2);
    const all = [1, 2, 3, 4, 5, 6].map((k) => b.load(k));
    first.release();
    expect(await Promise.all(all)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(sizes).toEqual([1, 2, 2, 1]);
  });

  it("refuses an answer count that does not match the keys", async () => {
    const b = new ReadBatcher<number, number>(async () => []);
    await expect(b.load(1)).rejects.toThrow("0 answers for 1 keys");
  });
});
