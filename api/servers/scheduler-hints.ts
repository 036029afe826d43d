/**
 * The same_host and different_host scheduler hints of a boot request, checked as Nova's
 * schema checks them and normalised for instances.scheduler_hints: lower-case server
 * UUIDs, each once, a key only when it names at least one server (Nova ignores an empty
 * list). Nova leaves a single same_host string unchecked (it then finds no host); Cirrus
 * refuses a non-UUID there with the same message as in a list.
 */
import { badRequest } from "../../common/errors.js";
import { isUuid } from "../../common/ids.js";

export interface HostHints {
  same_host?: string[];
  different_host?: string[];
}

interface HintsBody {
  "os:scheduler_hints"?: Record<string, unknown>;
  "OS-SCH-HNT:scheduler_hints"?: Record<string, unknown>;
}

/** Both spellings are checked, as Nova's schema checks both; os:scheduler_hints is the one used. */
export function parseHostHints(body: HintsBody): HostHints {
  const legacy = body["OS-SCH-HNT:scheduler_hints"];
  const current = body["os:scheduler_hints"];
  if (legacy !== undefined) hostHintsOf(legacy);
  return current !== undefined ? hostHintsOf(current) : legacy !== undefined ? hostHintsOf(legacy) : {};
}

function hostHintsOf(hints: Record<string, unknown>): HostHints {
  const out: HostHints = {};
  if (hints.same_host !== undefined) {
    const ids = sameHost(hints.same_host);
    if (ids.length > 0) out.same_host = ids;
  }
  if (hints.different_host !== undefined) {
    const ids = differentHost(hints.different_host);
    if (ids.length > 0) out.different_host = ids;
  }
  return out;
}

const invalid = (field: string, value: unknown, reason: string) =>
  badRequest(`Invalid input for field/attribute ${field}. Value: ${pythonStr(value)}. ${reason}`);

/** same_host: a string or a list of UUID strings (Nova: type [string, array], items uuid). */
function sameHost(value: unknown): string[] {
  if (typeof value !== "string" && !Array.isArray(value)) throw invalid("same_host", value, `${pythonRepr(value)} is not of type 'string', 'array'`);
  const items: unknown[] = typeof value === "string" ? [value] : value;
  for (const item of items) {
    if (typeof item !== "string") throw invalid("same_host", item, `${pythonRepr(item)} is not of type 'string'`);
    if (!isUuid(item)) throw invalid("same_host", item, `${pythonRepr(item)} is not a 'uuid'`);
  }
  return normalised(items as string[]);
}

/** different_host: one UUID string or a list of them (Nova: oneOf, so one message for every way of failing). */
function differentHost(value: unknown): string[] {
  const items = typeof value === "string" ? [value] : Array.isArray(value) ? (value as unknown[]) : null;
  if (!items || !items.every((i): i is string => typeof i === "string" && isUuid(i))) {
    throw invalid("different_host", value, `${pythonRepr(value)} is not valid under any of the given schemas`);
  }
  return normalised(items);
}

const normalised = (ids: string[]): string[] => [...new Set(ids.map((id) => id.toLowerCase()))];

/** Python's str() of a JSON value, as Nova's messages print the "Value:". */
function pythonStr(value: unknown): string {
  return typeof value === "string" ? value : pythonRepr(value);
}

/** Python's repr() of a JSON value, as jsonschema's messages print it. */
export function pythonRepr(value: unknown): string {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "string") {
    const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
    const escaped = value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\t/g, "\\t");
    return quote + (quote === "'" ? escaped.replace(/'/g, "\\'") : escaped) + quote;
  }
  if (Array.isArray(value)) return `[${value.map(pythonRepr).join(", ")}]`;
  if (typeof value === "object") {
    return `{${Object.entries(value as Record<string, unknown>).map(([k, v]) => `${pythonRepr(k)}: ${pythonRepr(v)}`).join(", ")}}`;
  }
  return String(value);
}
