/** The Redis hash where every agent records when it was last alive (host -> epoch ms). */
export const heartbeatKey = (prefix: string) => `${prefix}:heartbeats`;
