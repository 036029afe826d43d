import type { ScopedFilter } from "./scoped.js";

/** Never send a build back to a host where it already failed. */
export const retryFilter: ScopedFilter = {
  name: "RetryFilter",
  appliesTo: (spec) => spec.ignoreHosts.length > 0,
  passes(host, spec) {
    return !spec.ignoreHosts.includes(host.host);
  },
};
