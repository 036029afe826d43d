import type { HostState } from "../host-state.js";
import { compileRequirement, type ValueMatcher } from "./extra-specs-ops.js";
import type { ScopedFilter } from "./scoped.js";

const SCOPE = "aggregate_instance_extra_specs";

export interface AggregateRequirement {
  key: string;
  matches: ValueMatcher;
}

/**
 * The flavor extra specs this filter checks: keys scoped "aggregate_instance_extra_specs:KEY"
 * and keys without any scope (no colon). Keys of any other scope (hw:, quota:, ...) are
 * not its business.
 */
export function aggregateRequirements(extraSpecs: Record<string, string> | undefined): AggregateRequirement[] {
  const out: AggregateRequirement[] = [];
  for (const [rawKey, req] of Object.entries(extraSpecs ?? {})) {
    const colon = rawKey.indexOf(":");
    if (colon >= 0 && rawKey.slice(0, colon) !== SCOPE) continue;
    out.push({ key: colon >= 0 ? rawKey.slice(colon + 1) : rawKey, matches: compileRequirement(String(req)) });
  }
  return out;
}

// Nova splits every aggregate metadata value on commas ("ssd, nvme" is ssd and nvme).
// Aggregate values are few and shared by many hosts: split each distinct one once.
const splitValues = new Map<string, string[]>();
const SPLIT_CACHE_LIMIT = 10_000;

function partsOf(value: string): string[] {
  let parts = splitValues.get(value);
  if (!parts) {
    if (splitValues.size >= SPLIT_CACHE_LIMIT) splitValues.clear();
    parts = value.split(",").map((p) => p.trim());
    splitValues.set(value, parts);
  }
  return parts;
}

function anyValueMatches(values: string[], matches: ValueMatcher): boolean {
  for (const value of values) {
    for (const part of partsOf(value)) if (matches(part)) return true;
  }
  return false;
}

export function hostMeets(host: HostState, requirements: AggregateRequirement[]): boolean {
  const metadata = host.aggregateMetadata;
  for (const { key, matches } of requirements) {
    // Only arrays count: a key such as "constructor" must not find Object.prototype's.
    const values: unknown = metadata[key];
    if (!Array.isArray(values) || values.length === 0 || !anyValueMatches(values as string[], matches)) return false;
  }
  return true;
}

// The extra specs are the same for every host of a request: compile them once per object.
let lastSpecs: Record<string, string> | undefined;
let lastRequirements: AggregateRequirement[] = [];

function requirementsOf(specs: Record<string, string> | undefined): AggregateRequirement[] {
  if (specs !== lastSpecs) {
    lastRequirements = aggregateRequirements(specs);
    lastSpecs = specs;
  }
  return lastRequirements;
}

/**
 * AggregateInstanceExtraSpecsFilter: each checked extra spec needs a value, among those
 * the host's aggregates set for its key, that satisfies it (see extra-specs-ops.ts).
 * A host in no aggregate setting the key fails.
 */
export const aggregateInstanceExtraSpecsFilter: ScopedFilter = {
  name: "AggregateInstanceExtraSpecsFilter",
  appliesTo: (spec) => requirementsOf(spec.flavorExtraSpecs).length > 0,
  passes(host, spec) {
    const requirements = requirementsOf(spec.flavorExtraSpecs);
    return requirements.length === 0 || hostMeets(host, requirements);
  },
};
