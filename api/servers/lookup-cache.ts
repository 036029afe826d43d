/**
 * Boot look-ups remembered by the API process, so that a boot like one accepted before
 * skips the look-up statement (boot-lookup.ts) and goes straight to its write. A
 * remembered look-up is never trusted: the write re-reads its fingerprint in its own
 * snapshot and writes nothing if it changed (boot-write.ts); the boot is then judged
 * again on a fresh look-up (create.ts). So what is remembered may be stale, but nothing
 * accepted was accepted on stale data.
 *
 * Only look-ups that led to an accepted boot are remembered: an answer that led to an
 * error never reaches a write, so it could never be checked. "auto" networks are not
 * remembered either: any new network could change which one "auto" picks, and the
 * fingerprint covers only the rows a look-up read.
 */
import type { BootLookup, LookupKey } from "./boot-lookup.js";

/** Distinct look-ups kept (project × flavor × image × networks); the oldest goes first. */
export const LOOKUP_CACHE_SIZE = 1024;

export class LookupCache {
  private readonly entries = new Map<string, BootLookup>();

  constructor(private readonly capacity = LOOKUP_CACHE_SIZE) {}

  static keyOf(key: LookupKey): string | null {
    if (key.kind === "auto") return null;
    return JSON.stringify([key.kind, key.net_ids, key.admin, key.project, key.flavor, key.image, key.image_bypass]);
  }

  get(key: string): BootLookup | undefined {
    return this.entries.get(key);
  }

  remember(key: string, lookup: BootLookup): void {
    this.entries.delete(key); // re-inserted as the newest
    this.entries.set(key, lookup);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }

  forget(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
