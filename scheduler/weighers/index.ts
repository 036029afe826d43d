/**
 * The weighers a request is ranked by, with their multipliers from configuration
 * (common/config.ts). A positive multiplier spreads (more free is better), a negative
 * one packs; a weigher with multiplier 0 is left out.
 */
import { DEFAULT_WEIGHER_MULTIPLIERS, type WeigherMultipliers } from "../../common/config.js";
import type { RequestSpec } from "../filters/types.js";
import type { HostState } from "../host-state.js";
import { buildFailureWeigher } from "./build-failure.js";
import { numInstancesWeigher } from "./num-instances.js";
import { weighAll } from "./rank.js";
import { cpuWeigher, diskWeigher, ramWeigher } from "./resources.js";
import { softAffinityWeigher, softAntiAffinityWeigher } from "./server-group.js";
import type { Weigher } from "./types.js";

export type { Weigher } from "./types.js";
export { buildFailureWeigher } from "./build-failure.js";
export { numInstancesWeigher } from "./num-instances.js";
export { cpuWeigher, diskWeigher, ramWeigher } from "./resources.js";
export { hostWeights, KeptTotals, rank, WeighedRows } from "./rank.js";

/** The weighers every request gets, for one set of multipliers. */
export function baseWeighers(m: Readonly<WeigherMultipliers>): readonly Weigher[] {
  const all = [ramWeigher(m.ram), cpuWeigher(m.cpu), diskWeigher(m.disk), numInstancesWeigher(m.numInstances), buildFailureWeigher(m.buildFailure)];
  return all.filter((w) => w.multiplier !== 0);
}

export const DEFAULT_WEIGHERS: readonly Weigher[] = baseWeighers(DEFAULT_WEIGHER_MULTIPLIERS);

// Multipliers come from configuration, read once: build their weighers once too.
const built = new WeakMap<Readonly<WeigherMultipliers>, readonly Weigher[]>([[DEFAULT_WEIGHER_MULTIPLIERS, DEFAULT_WEIGHERS]]);

function weighersOf(m: Readonly<WeigherMultipliers>): readonly Weigher[] {
  let ws = built.get(m);
  if (!ws) built.set(m, (ws = baseWeighers(m)));
  return ws;
}

/** The weighers for a request: the base ones, plus the soft group weigher when its group has a soft policy. */
export function weighersFor(spec: RequestSpec, multipliers: Readonly<WeigherMultipliers> = DEFAULT_WEIGHER_MULTIPLIERS): readonly Weigher[] {
  const base = weighersOf(multipliers);
  const g = spec.group;
  if (g?.policy === "soft-affinity" && multipliers.softAffinity !== 0) return [...base, softAffinityWeigher(g, multipliers.softAffinity)];
  if (g?.policy === "soft-anti-affinity" && multipliers.softAntiAffinity !== 0) return [...base, softAntiAffinityWeigher(g, multipliers.softAntiAffinity)];
  return base;
}

/** Every host, best first (rank() gives just the best k, cheaper). */
export function weigh(hosts: readonly HostState[], weighers: readonly Weigher[] = DEFAULT_WEIGHERS): HostState[] {
  return weighAll(hosts, weighers);
}
