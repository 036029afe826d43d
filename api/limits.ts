/**
 * Request limits that keep hostile input from costing more than a 400: a JSON nesting
 * limit (checked without recursion, before schema validation walks the body) and the
 * slow-client timeouts handed to Fastify (a client that dribbles its request is cut off).
 * The body size limit (1 MiB) is Fastify's bodyLimit, answered 413 by api/errors.ts.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { badRequest, errorBody } from "../common/errors.js";

/** Deeper than any Nova request body; a deeper one is refused with 400. */
export const MAX_JSON_DEPTH = 32;

/** Fastify server options: idle sockets and requests that take too long to arrive are closed. */
export const SLOW_CLIENT_LIMITS = {
  /** Socket inactivity (ms): a client that sends nothing for this long is disconnected. */
  connectionTimeout: 30_000,
  /** The whole request, headers and body, must arrive within this (ms); Node answers 408. */
  requestTimeout: 60_000,
  /** Headers must arrive within this (ms) (Node's headersTimeout, slowloris), checked every 5 s. */
  http: { headersTimeout: 15_000, connectionsCheckingInterval: 5_000 },
} as const;

/**
 * Errors the router raises before any route runs, in Nova's envelope: a path parameter
 * longer than the router accepts names nothing (404), a malformed URL is a 400.
 */
export function frameworkErrors(err: { code?: string; message: string }, _req: FastifyRequest, reply: FastifyReply): void {
  if (err.code === "FST_ERR_MAX_PARAM_LENGTH") {
    void reply.status(404).send(errorBody(404, "The resource could not be found."));
    return;
  }
  void reply.status(400).send(errorBody(400, `Malformed request URL: ${err.message.slice(0, 200)}`));
}

/** An array or a plain object, as JSON.parse makes them (not a Buffer or a stream body). */
function isJsonContainer(v: unknown): v is object {
  if (v === null || typeof v !== "object") return false;
  if (Array.isArray(v)) return true;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** The depth of a parsed JSON value, walked iteratively (stops counting past the limit). */
export function jsonDepth(value: unknown, limit = MAX_JSON_DEPTH): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (!isJsonContainer(v)) continue;
    if (depth > max) max = depth;
    if (max > limit) return max;
    for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) {
      if (isJsonContainer(child)) stack.push([child, depth + 1]);
    }
  }
  return max;
}

export function installRequestLimits(app: FastifyInstance): void {
  // Not async: an async hook costs a promise and a turn of the microtask queue per request.
  app.addHook("preValidation", (req, _reply, done) => {
    // A raw upload (application/octet-stream) is a stream, not parsed JSON: nothing to measure.
    const isStream = typeof (req.body as { pipe?: unknown } | null)?.pipe === "function";
    if (req.body !== undefined && req.body !== null && typeof req.body === "object" && !isStream && jsonDepth(req.body) > MAX_JSON_DEPTH) {
      done(badRequest(`Malformed request body: JSON nested deeper than ${MAX_JSON_DEPTH} levels.`));
      return;
    }
    done();
  });
}
