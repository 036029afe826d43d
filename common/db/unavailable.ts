/**
 * Whether an error means "the database (or the queue) is unreachable right now" rather
 * than a bug: the API answers those 503 with Retry-After, so a client retries instead of
 * reporting a 500, and nothing hangs while Postgres restarts.
 */
const PG_UNAVAILABLE = new Set(["57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006", "53300"]);
const NET_UNAVAILABLE = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENOTCONN", "EAI_AGAIN"]);
const MESSAGES = [
  /Connection terminated/i,
  /connection error and is not queryable/i,
  /timeout exceeded when trying to connect/i,
  /Knex: Timeout acquiring a connection/i,
  /the database system is (starting up|shutting down|in recovery mode)/i,
  /Connection is closed/i,
];

export function isUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === "object" && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, name, message } = e as { code?: unknown; name?: unknown; message?: unknown };
    if (typeof code === "string" && (PG_UNAVAILABLE.has(code) || NET_UNAVAILABLE.has(code))) return true;
    if (name === "KnexTimeoutError") return true;
    if (typeof message === "string" && MESSAGES.some((m) => m.test(message))) return true;
    if (e instanceof AggregateError && e.errors.some((x) => isUnavailable(x))) return true;
  }
  return false;
}
