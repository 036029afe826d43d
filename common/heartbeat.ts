/** The Redis hash where every agent records when it was last alive (host -> epoch ms). */
export const heartbeatKey = (prefix: string) => `${prefix}:heartbeats`;

/**
 * The Redis hash where every agent publishes its latest domain listing (host -> JSON
 * {at, domains}), written by each power-state sync: what libvirt on that host runs, for
 * operators and for tests that cannot reach a host's hypervisor from outside.
 */
export const domainsKey = (prefix: string) => `${prefix}:domains`;
