import type { HostFilter } from "./types.js";

/** Never send a build back to a host where it already failed. */
export const retryFilter: HostFilter = {
  name: "RetryFilter",
  passes(host, spec) {
    return !spec.ignoreHosts.includes(host.host);
  },
};
