import type { ScopedFilter } from "./scoped.js";
import type { ServerGroupSpec } from "./types.js";

const membersOn = (group: ServerGroupSpec, host: string): number => (Object.hasOwn(group.hosts, host) ? group.hosts[host]! : 0);

/**
 * ServerGroupAntiAffinityFilter: a member of an anti-affinity group never lands on a
 * host that already runs another member of the group.
 */
export const serverGroupAntiAffinityFilter: ScopedFilter = {
  name: "ServerGroupAntiAffinityFilter",
  appliesTo: (spec) => spec.group?.policy === "anti-affinity",
  passes(host, spec) {
    if (!spec.group || spec.group.policy !== "anti-affinity") return true;
    return !(membersOn(spec.group, host.host) > 0);
  },
};

/**
 * ServerGroupAffinityFilter: a member of an affinity group lands on the host of the
 * group's other members; the first member may go anywhere.
 */
export const serverGroupAffinityFilter: ScopedFilter = {
  name: "ServerGroupAffinityFilter",
  appliesTo: (spec) => spec.group?.policy === "affinity" && anyMemberPlaced(spec.group),
  passes(host, spec) {
    if (!spec.group || spec.group.policy !== "affinity") return true;
    return !anyMemberPlaced(spec.group) || membersOn(spec.group, host.host) > 0;
  },
};

/** No cache: a scheduler placing several members in one pass may update the counts in place between them. */
function anyMemberPlaced(group: ServerGroupSpec): boolean {
  for (const host in group.hosts) if (Object.hasOwn(group.hosts, host) && group.hosts[host]! > 0) return true;
  return false;
}
