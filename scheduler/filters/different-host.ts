import type { ScopedFilter } from "./scoped.js";

/** DifferentHostFilter (different_host hint): none of the hosts of the named instances. */
export const differentHostFilter: ScopedFilter = {
  name: "DifferentHostFilter",
  appliesTo: (spec) => !!spec.differentHost && spec.differentHost.length > 0,
  passes(host, spec) {
    const hosts = spec.differentHost;
    return !hosts || !hosts.includes(host.host);
  },
};
