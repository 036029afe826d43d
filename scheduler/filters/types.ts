import type { HostState, ResourceRequest } from "../host-state.js";

export interface RequestSpec {
  instanceId: string;
  resources: ResourceRequest;
  availabilityZone: string | null;
  /** Hosts that already failed this build. */
  ignoreHosts: string[];
  /** The server group the instance joined at boot, if any (os:scheduler_hints.group). */
  group?: ServerGroupSpec | null;
}

export type ServerGroupPolicy = "affinity" | "anti-affinity" | "soft-affinity" | "soft-anti-affinity";

export interface ServerGroupSpec {
  id: string;
  policy: ServerGroupPolicy;
  /** Hosts of the group's other placed, undeleted members, with how many members each has. */
  hosts: Record<string, number>;
}

/** A filter keeps the hosts that can take the request. Pure. */
export interface HostFilter {
  name: string;
  passes(host: HostState, spec: RequestSpec): boolean;
}
