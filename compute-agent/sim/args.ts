/** The command line of `npm run sim`. Pure. */

export interface SimArgs {
  hosts: number;
  /** Host names are <prefix>-<n>, zero-padded. */
  prefix: string;
  vcpus: number;
  ramMb: number;
  diskGb: number;
  /** Hosts that keep a worker (a blocking Redis connection) of their own; the rest take jobs on demand. */
  dedicatedWorkers: number;
  /** At most this many on-demand workers at once. */
  onDemandWorkers: number;
}

export const SIM_USAGE =
  "usage: npm run sim -- --hosts N [--prefix NAME] [--vcpus 64 --ram-mb 262144 --disk-gb 4000] [--dedicated-workers 2000] [--on-demand-workers 1000]";

const DEFAULTS: SimArgs = {
  hosts: 0,
  prefix: "sim",
  vcpus: 64,
  ramMb: 262_144,
  diskGb: 4_000,
  dedicatedWorkers: 2_000,
  onDemandWorkers: 1_000,
};

const FLAGS: Record<string, keyof SimArgs> = {
  "--hosts": "hosts",
  "--prefix": "prefix",
  "--vcpus": "vcpus",
  "--ram-mb": "ramMb",
  "--disk-gb": "diskGb",
  "--dedicated-workers": "dedicatedWorkers",
  "--on-demand-workers": "onDemandWorkers",
};

export function parseSimArgs(argv: string[]): SimArgs {
  const out: SimArgs = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === "--") continue;
    const key = FLAGS[flag];
    const value = argv[i + 1];
    if (!key || value === undefined) throw new Error(`${flag}: unknown option or missing value\n${SIM_USAGE}`);
    i++;
    if (key === "prefix") {
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value)) throw new Error(`--prefix must be letters, digits, ".", "_" or "-", got "${value}"`);
      out.prefix = value;
      continue;
    }
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} must be a whole number, got "${value}"`);
    out[key] = n;
  }
  if (out.hosts < 1) throw new Error(`--hosts is required\n${SIM_USAGE}`);
  return out;
}

export function simHostNames(prefix: string, count: number): string[] {
  const width = String(count - 1).length;
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(width, "0")}`);
}
