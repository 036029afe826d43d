import { describe, expect, it } from "vitest";
import type { BootLookup, LookupKey } from "../../api/servers/boot-lookup.js";
import { LookupCache } from "../../api/servers/lookup-cache.js";

const key = (over: Partial<LookupKey> = {}): LookupKey => ({
  kind: "ids",
  net_ids: ["0b7e1f9c-4b0a-4a57-9f6e-0c1d2e3f4a5b"],
  admin: false,
  project: "p1",
  flavor: "1",
  image: "5c1d7e8f-0a1b-4c2d-8e3f-4a5b6c7d8e9f",
  image_bypass: false,
  ...over,
});
const lookup = (fingerprint: string): BootLookup => ({ flavor: null, image: null, networks: [], subnets: [], limits: {}, fingerprint });

describe("LookupCache", () => {
  it("keys a look-up by everything it was asked, and never an \"auto\" one", () => {
    expect(LookupCache.keyOf(key())).toBe(LookupCache.keyOf(key()));
    for (const other of [{ project: "p2" }, { admin: true }, { image_bypass: true }, { flavor: "2" }, { net_ids: [] }, { kind: "none" as const }]) {
      expect(LookupCache.keyOf(key(other))).not.toBe(LookupCache.keyOf(key()));
    }
    expect(LookupCache.keyOf(key({ kind: "auto", net_ids: [] }))).toBeNull();
  });

  it("keeps at most its capacity, dropping the one remembered longest ago", () => {
    const cache = new LookupCache(2);
    cache.remember("a", lookup("1"));
    cache.remember("b", lookup("2"));
    cache.remember("a", lookup("3")); // a is now the newest
    cache.remember("c", lookup("4"));
    expect(cache.size).toBe(2);
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")?.fingerprint).toBe("3");
    expect(cache.get("c")?.fingerprint).toBe("4");
    cache.forget("a");
    expect(cache.get("a")).toBeUndefined();
  });
});
