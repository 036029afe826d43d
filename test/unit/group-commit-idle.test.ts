import { describe, expect, it } from "vitest";
import { GroupCommit } from "../../common/group-commit.js";

describe("GroupCommit with flushWhenIdle", () => {
  it("writes at once when idle and batches what arrives while a write is in flight", async () => {
    const batches: number[][] = [];
    let running = 0;
    let most = 0;
    const gc = new GroupCommit<number>({
      maxBatch: 3,
      maxDelayMs: 10_000, // unused: no timer
      maxInFlight: 1,
      flushWhenIdle: true,
      applyBatch: async (items) => {
        running++;
        most = Math.max(most, running);
        batches.push(items);
        await new Promise((r) => setTimeout(r, 10));
        running--;
      },
      applyOne: async () => {},
    });
    const started = Date.now();
    await gc.submit(0); // alone, no wait
    expect(Date.now() - started).toBeLessThan(1000);
    await Promise.all([1, 2, 3, 4, 5, 6].map((n) => gc.submit(n)));
    expect(most).toBe(1);
    // The first batch's bookkeeping ends a few microtasks after its submitter resumes, so 1
    // may wait for it; either way nothing runs beside it and no batch exceeds maxBatch.
    expect(batches[0]).toEqual([0]);
    expect(batches.flat()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(batches.every((b) => b.length <= 3)).toBe(true);
    expect(batches.length).toBeLessThanOrEqual(4);
  });

  it("runs up to maxInFlight batches at once", async () => {
    const batches: number[][] = [];
    const gc = new GroupCommit<number>({
      maxBatch: 10,
      maxDelayMs: 0,
      maxInFlight: 2,
      flushWhenIdle: true,
      applyBatch: async (items) => {
        batches.push(items);
        await new Promise((r) => setTimeout(r, 10));
      },
      applyOne: async () => {},
    });
    await Promise.all([1, 2, 3, 4, 5].map((n) => gc.submit(n)));
    expect(batches).toEqual([[1], [2], [3, 4, 5]]);
  });

  it("a failed batch falls back to one by one, failing only the bad item", async () => {
    const gc = new GroupCommit<number>({
      maxBatch: 10,
      maxDelayMs: 0,
      maxInFlight: 1,
      flushWhenIdle: true,
      applyBatch: async (items) => {
        await new Promise((r) => setTimeout(r, 5));
        if (items.includes(13)) throw new Error("batch failed");
      },
      applyOne: async (item) => {
        if (item === 13) throw new Error("thirteen");
      },
    });
    const results = await Promise.allSettled([1, 2, 13, 3].map((n) => gc.submit(n)));
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    expect((results[2] as PromiseRejectedResult).reason.message).toBe("thirteen");
  });
});
