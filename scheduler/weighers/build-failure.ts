import type { Weigher } from "./types.js";

/**
 * BuildFailureWeigher: builds that failed on the host since its last success, negated,
 * so with Nova's multiplier of 1,000,000 a host with any recent failure ranks below
 * every host without, whatever the other weighers say.
 */
export const buildFailureWeigher = (multiplier = 1_000_000.0): Weigher => ({
  name: "BuildFailureWeigher",
  multiplier,
  value: (h) => -h.failedBuilds,
});
