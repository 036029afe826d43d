import type { HostFilter } from "./types.js";

/**
 * ServerGroupAntiAffinityFilter: a member of an anti-affinity group never lands on a
 * host that already runs another member of the group.
 */
export const serverGroupAntiAffinityFilter: HostFilter = {
  name: "ServerGroupAntiAffinityFilter",
  passes(host, spec) {
    if (!spec.group || spec.group.policy !== "anti-affinity") return true;
    return !((spec.group.hosts[host.host] ?? 0) > 0);
  },
};

/**
 * ServerGroupAffinityFilter: a member of an affinity group lands on the host of the
 * group's other members; the first member may go anywhere.
 */
export const serverGroupAffinityFilter: HostFilter = {
  name: "ServerGroupAffinityFilter",
  passes(host, spec) {
    if (!spec.group || spec.group.policy !== "affinity") return true;
    const hosts = Object.keys(spec.group.hosts).filter((h) => spec.group!.hosts[h]! > 0);
    return hosts.length === 0 || hosts.includes(host.host);
  },
};
