import { describe, expect, it } from "vitest";
import { pooledRandomBytes } from "../../common/random-bytes.js";

describe("pooledRandomBytes", () => {
  it("returns copies of the asked size, none handed out twice across refills of the pool", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5_000; i++) {
      const bytes = pooledRandomBytes(9);
      expect(bytes.length).toBe(9);
      seen.add(bytes.toString("hex"));
    }
    // 5,000 draws of 72 bits: a repeat would mean a reused slice, not chance.
    expect(seen.size).toBe(5_000);
  });

  it("is not changed by later draws (each result is its own buffer)", () => {
    const first = pooledRandomBytes(4);
    const copy = Buffer.from(first);
    for (let i = 0; i < 2_000; i++) pooledRandomBytes(4);
    expect(first.equals(copy)).toBe(true);
  });

  it("looks uniform: every byte value turns up in 64 KiB of draws", () => {
    const counts = new Array<number>(256).fill(0);
    for (let i = 0; i < 16_384; i++) for (const b of pooledRandomBytes(4)) counts[b]!++;
    expect(Math.min(...counts)).toBeGreaterThan(150); // mean 256
  });

  it("draws large sizes directly", () => {
    expect(pooledRandomBytes(8192).length).toBe(8192);
  });
});
