import type { Weigher } from "./types.js";

/** NumInstancesWeigher: how many instances a host runs; positive packs, negative spreads, Nova's default 0 ignores it. */
export const numInstancesWeigher = (multiplier = 0.0): Weigher => ({
  name: "NumInstancesWeigher",
  multiplier,
  value: (h) => h.instanceCount,
});
