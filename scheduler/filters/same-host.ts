import type { ScopedFilter } from "./scoped.js";

/**
 * SameHostFilter (same_host hint): only the hosts of the named instances. A hint whose
 * instances are on no host at all leaves no host, as in Nova; no hint passes everything.
 */
export const sameHostFilter: ScopedFilter = {
  name: "SameHostFilter",
  appliesTo: (spec) => spec.sameHost !== undefined && spec.sameHost !== null,
  passes(host, spec) {
    const hosts = spec.sameHost;
    return hosts === undefined || hosts === null || hosts.includes(host.host);
  },
};
