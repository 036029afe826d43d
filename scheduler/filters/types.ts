import type { HostState, ResourceRequest } from "../host-state.js";

export interface RequestSpec {
  instanceId: string;
  resources: ResourceRequest;
  availabilityZone: string | null;
  /** Hosts that already failed this build. */
  ignoreHosts: string[];
}

/** A filter keeps the hosts that can take the request. Pure. */
export interface HostFilter {
  name: string;
  passes(host: HostState, spec: RequestSpec): boolean;
}
