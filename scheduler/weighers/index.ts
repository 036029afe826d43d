/**
 * Weighers as Nova has them: each gives a raw value per host, values are normalised
 * to [0, 1] across the candidates, multiplied and summed. A positive multiplier
 * spreads (more free is better), a negative one packs.
 */
import type { RequestSpec } from "../filters/types.js";
import { free, type HostState } from "../host-state.js";
import { softAffinityWeigher, softAntiAffinityWeigher } from "./server-group.js";

export interface Weigher {
  name: string;
  multiplier: number;
  value(host: HostState): number;
}

export const ramWeigher = (multiplier = 1.0): Weigher => ({
  name: "RAMWeigher",
  multiplier,
  value: (h) => (h.resources.MEMORY_MB ? free(h.resources.MEMORY_MB) : 0),
});

export const cpuWeigher = (multiplier = 1.0): Weigher => ({
  name: "CPUWeigher",
  multiplier,
  value: (h) => (h.resources.VCPU ? free(h.resources.VCPU) : 0),
});

export const DEFAULT_WEIGHERS: Weigher[] = [ramWeigher(), cpuWeigher()];

/** The weighers for a request: the defaults, plus the soft group weigher when its group has a soft policy. */
export function weighersFor(spec: RequestSpec): Weigher[] {
  const g = spec.group;
  if (g?.policy === "soft-affinity") return [...DEFAULT_WEIGHERS, softAffinityWeigher(g)];
  if (g?.policy === "soft-anti-affinity") return [...DEFAULT_WEIGHERS, softAntiAffinityWeigher(g)];
  return DEFAULT_WEIGHERS;
}

function normalise(values: number[]): number[] {
  const min = Math.min(...values);
  const max = Math.max(...values);
  if (max === min) return values.map(() => 0);
  return values.map((v) => (v - min) / (max - min));
}

/** Hosts best first; ties keep a stable order by host name. */
export function weigh(hosts: HostState[], weighers: Weigher[] = DEFAULT_WEIGHERS): HostState[] {
  if (hosts.length <= 1) return [...hosts];
  const totals = new Array<number>(hosts.length).fill(0);
  for (const w of weighers) {
    const norm = normalise(hosts.map((h) => w.value(h)));
    norm.forEach((n, i) => (totals[i]! += n * w.multiplier));
  }
  return hosts
    .map((host, i) => ({ host, weight: totals[i]! }))
    .sort((a, b) => b.weight - a.weight || a.host.host.localeCompare(b.host.host))
    .map((x) => x.host);
}
