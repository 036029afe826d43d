import type { HostFilter } from "./types.js";

/**
 * ComputeFilter: the host's compute service is enabled, not forced down, and was heard
 * from recently. A heartbeat exactly at the cut-off still counts (Nova's servicegroup
 * treats elapsed <= service_down_time as up).
 */
export const computeFilter: HostFilter = {
  name: "ComputeFilter",
  passes(host, spec) {
    if (!host.enabled || host.forcedDown) return false;
    return spec.upSinceMs === undefined || host.lastSeenMs >= spec.upSinceMs;
  },
};
