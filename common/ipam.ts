/**
 * IPv4 address arithmetic for subnets: parsing, membership, default gateway and
 * allocation pool. Pure; the database decides who gets which address.
 */
export interface Cidr4 {
  network: number; // first address, as an unsigned 32-bit integer
  prefix: number;
  size: number; // number of addresses
}

export interface Pool {
  start: string;
  end: string;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIpv4(value: string): boolean {
  return IPV4.test(value);
}

export function ipToInt(ip: string): number {
  if (!isIpv4(ip)) throw new Error(`invalid IPv4 address "${ip}"`);
  return ip.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
}

/** Parses "10.0.0.0/24"; host bits must be zero, as Neutron requires. */
export function parseCidr4(cidr: string): Cidr4 {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(cidr.trim());
  if (!m || !isIpv4(m[1]!) || Number(m[2]) > 32) throw new Error(`Invalid CIDR ${cidr}`);
  const prefix = Number(m[2]);
  const size = 2 ** (32 - prefix);
  const addr = ipToInt(m[1]!);
  if (addr % size !== 0) throw new Error(`Invalid CIDR ${cidr}: host bits are set, did you mean ${intToIp(addr - (addr % size))}/${prefix}?`);
  return { network: addr, prefix, size };
}

export function contains(cidr: Cidr4, ip: string): boolean {
  if (!isIpv4(ip)) return false;
  const n = ipToInt(ip);
  return n >= cidr.network && n < cidr.network + cidr.size;
}

/** True when ip is one of the subnet's usable host addresses (not network or broadcast). */
export function isHostAddress(cidr: Cidr4, ip: string): boolean {
  if (!isIpv4(ip)) return false;
  const n = ipToInt(ip);
  const { first, last } = hostRange(cidr);
  return n >= first && n <= last;
}

/** Usable host addresses: all but network and broadcast, except for /31 and /32. */
export function hostRange(cidr: Cidr4): { first: number; last: number } {
  if (cidr.prefix >= 31) return { first: cidr.network, last: cidr.network + cidr.size - 1 };
  return { first: cidr.network + 1, last: cidr.network + cidr.size - 2 };
}

export function defaultGateway(cidr: Cidr4): string | null {
  const { first, last } = hostRange(cidr);
  return last > first ? intToIp(first) : null;
}

/** Neutron's default pool: every host address except the gateway. */
export function defaultPools(cidr: Cidr4, gateway: string | null): Pool[] {
  const { first, last } = hostRange(cidr);
  if (gateway === null) return [{ start: intToIp(first), end: intToIp(last) }];
  const g = ipToInt(gateway);
  const pools: Pool[] = [];
  if (g > first) pools.push({ start: intToIp(first), end: intToIp(g - 1) });
  if (g < last) pools.push({ start: intToIp(g + 1), end: intToIp(last) });
  return pools;
}

/** Checks given pools lie within the subnet's host range and do not overlap or hold the gateway. */
export function validatePools(cidr: Cidr4, pools: Pool[], gateway: string | null): string | null {
  const { first, last } = hostRange(cidr);
  const ranges: [number, number][] = [];
  for (const pool of pools) {
    if (!isIpv4(pool.start) || !isIpv4(pool.end)) return `Invalid allocation pool ${pool.start}-${pool.end}`;
    const s = ipToInt(pool.start);
    const e = ipToInt(pool.end);
    if (s > e) return `Invalid allocation pool ${pool.start}-${pool.end}: start is after end`;
    if (s < first || e > last) return `The allocation pool ${pool.start}-${pool.end} spans beyond the subnet cidr.`;
    if (gateway !== null && s <= ipToInt(gateway) && ipToInt(gateway) <= e) {
      return `Gateway ip ${gateway} conflicts with allocation pool ${pool.start}-${pool.end}`;
    }
    ranges.push([s, e]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i]![0] <= ranges[i - 1]![1]) return "Found overlapping allocation pools";
  }
  return null;
}

export function inPools(pools: Pool[], ip: string): boolean {
  const n = ipToInt(ip);
  return pools.some((p) => ipToInt(p.start) <= n && n <= ipToInt(p.end));
}

// ---------------------------------------------------------------------------------------
// Version-agnostic addresses as bigints: IPv4 (32 bits) and IPv6 (128 bits).
// ---------------------------------------------------------------------------------------

export type IpVersion = 4 | 6;

export interface Cidr {
  version: IpVersion;
  /** First address of the subnet. */
  network: bigint;
  prefix: number;
  /** Address width: 32 or 128. */
  bits: 32 | 128;
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Parses an IPv6 address (with "::" and an optional trailing dotted quad); null when invalid. */
export function parseIpv6(value: string): bigint | null {
  if (typeof value !== "string" || value.length < 2 || value.length > 45 || value.includes("%")) return null;
  let text = value;
  const lastColon = text.lastIndexOf(":");
  const maybeV4 = text.slice(lastColon + 1);
  if (maybeV4.includes(".")) {
    // An embedded dotted quad (::ffff:10.0.0.1) stands for the last two groups.
    if (!isIpv4(maybeV4)) return null;
    const n = ipToInt(maybeV4);
    text = `${text.slice(0, lastColon + 1)}${Math.floor(n / 65536).toString(16)}:${(n % 65536).toString(16)}`;
  }
  const parts = text.split("::");
  if (parts.length > 2) return null;
  const split = (s: string) => (s === "" ? [] : s.split(":"));
  const head = split(parts[0]!);
  const rest = parts.length === 2 ? split(parts[1]!) : [];
  const groupsWanted = 8;
  if (![...head, ...rest].every((g) => HEX_GROUP.test(g))) return null;
  let groups: number[];
  if (parts.length === 2) {
    const missing = groupsWanted - head.length - rest.length;
    if (missing < 1) return null;
    groups = [...head.map((g) => parseInt(g, 16)), ...new Array<number>(missing).fill(0), ...rest.map((g) => parseInt(g, 16))];
  } else {
    if (head.length !== groupsWanted) return null;
    groups = head.map((g) => parseInt(g, 16));
  }
  if (groups.length !== 8) return null;
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

export function isIpv6(value: string): boolean {
  return parseIpv6(value) !== null;
}

/** RFC 5952 text: lowercase, no leading zeros, the longest run (2+) of zero groups as "::". */
export function formatIpv6(n: bigint): string {
  if (n < 0n || n >= 1n << 128n) throw new RangeError(`not an IPv6 address: ${n}`);
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

export function ipVersionOf(value: string): IpVersion | null {
  if (isIpv4(value)) return 4;
  if (isIpv6(value)) return 6;
  return null;
}

export function parseIp(value: string): { version: IpVersion; value: bigint } | null {
  if (isIpv4(value)) return { version: 4, value: BigInt(ipToInt(value)) };
  const v6 = parseIpv6(value);
  return v6 === null ? null : { version: 6, value: v6 };
}

export function formatIp(version: IpVersion, n: bigint): string {
  return version === 4 ? intToIp(Number(n)) : formatIpv6(n);
}

/** The canonical text of an address (IPv6 compressed as RFC 5952), or null when invalid. */
export function canonicalIp(value: string): string | null {
  const ip = parseIp(value);
  return ip === null ? null : formatIp(ip.version, ip.value);
}

/** Parses "10.0.0.0/24" or "fd00:1::/64"; host bits must be zero, as Neutron requires. */
export function parseCidr(cidr: string): Cidr {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr.trim());
  const ip = m ? parseIp(m[1]!) : null;
  if (!m || !ip) throw new Error(`Invalid CIDR ${cidr}`);
  const bits = ip.version === 4 ? 32 : 128;
  const prefix = Number(m[2]);
  if (prefix > bits) throw new Error(`Invalid CIDR ${cidr}`);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((ip.value & hostMask) !== 0n) {
    throw new Error(`Invalid CIDR ${cidr}: host bits are set, did you mean ${formatIp(ip.version, ip.value & ~hostMask)}/${prefix}?`);
  }
  return { version: ip.version, network: ip.value, prefix, bits };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.version, c.network)}/${c.prefix}`;
}

export function cidrLast(c: Cidr): bigint {
  return c.network + (1n << BigInt(c.bits - c.prefix)) - 1n;
}

/** The netmask in address form: 255.255.255.0 or ffff:ffff:ffff:ffff:: (as network_data.json wants it). */
export function netmaskOf(c: Cidr): string {
  const all = (1n << BigInt(c.bits)) - 1n;
  const mask = all ^ ((1n << BigInt(c.bits - c.prefix)) - 1n);
  return formatIp(c.version, mask);
}

export function cidrContains(c: Cidr, ip: string): boolean {
  const p = parseIp(ip);
  return p !== null && p.version === c.version && p.value >= c.network && p.value <= cidrLast(c);
}

/**
 * Usable addresses as Neutron computes them (neutron/ipam/utils.py generate_pools): the
 * network address is never handed out (for IPv6 it is the subnet-router anycast address),
 * the IPv4 broadcast address neither; /31, /32, /127 and /128 keep every address.
 */
export function hostRangeOf(c: Cidr): { first: bigint; last: bigint } {
  const last = cidrLast(c);
  if (c.bits - c.prefix <= 1) return { first: c.network, last };
  return { first: c.network + 1n, last: c.version === 4 ? last - 1n : last };
}

export function isHostAddressOf(c: Cidr, ip: string): boolean {
  const p = parseIp(ip);
  if (p === null || p.version !== c.version) return false;
  const { first, last } = hostRangeOf(c);
  return p.value >= first && p.value <= last;
}

export function defaultGatewayOf(c: Cidr): string | null {
  const { first, last } = hostRangeOf(c);
  return last > first ? formatIp(c.version, first) : null;
}

export function defaultPoolsOf(c: Cidr, gateway: string | null): Pool[] {
  const { first, last } = hostRangeOf(c);
  const fmt = (n: bigint) => formatIp(c.version, n);
  if (gateway === null) return [{ start: fmt(first), end: fmt(last) }];
  const g = parseIp(gateway)!.value;
  const pools: Pool[] = [];
  if (g > first) pools.push({ start: fmt(first), end: fmt(g - 1n) });
  if (g < last) pools.push({ start: fmt(g + 1n), end: fmt(last) });
  return pools;
}

/** validatePools for either version; pools come back in canonical text. */
export function validatePoolsOf(c: Cidr, pools: Pool[], gateway: string | null): string | null {
  const { first, last } = hostRangeOf(c);
  const g = gateway === null ? null : parseIp(gateway);
  const ranges: [bigint, bigint][] = [];
  for (const pool of pools) {
    const s = parseIp(pool.start);
    const e = parseIp(pool.end);
    if (!s || !e || s.version !== c.version || e.version !== c.version) return `Invalid allocation pool ${pool.start}-${pool.end}`;
    if (s.value > e.value) return `Invalid allocation pool ${pool.start}-${pool.end}: start is after end`;
    if (s.value < first || e.value > last) return `The allocation pool ${pool.start}-${pool.end} spans beyond the subnet cidr.`;
    if (g !== null && s.value <= g.value && g.value <= e.value) {
      return `Gateway ip ${gateway} conflicts with allocation pool ${pool.start}-${pool.end}`;
    }
    ranges.push([s.value, e.value]);
  }
  ranges.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i]![0] <= ranges[i - 1]![1]) return "Found overlapping allocation pools";
  }
  return null;
}

/** The first address of the pools that is not taken; pure, for IPv6 (and any small allocation set). */
export function firstFreeInPools(version: IpVersion, pools: Pool[], taken: Iterable<string>): string | null {
  const used = new Set<bigint>();
  for (const t of taken) {
    const p = parseIp(t);
    if (p && p.version === version) used.add(p.value);
  }
  for (const pool of pools) {
    const start = parseIp(pool.start)!.value;
    const end = parseIp(pool.end)!.value;
    // At most |used| + 1 steps: each step past a candidate means that candidate is taken.
    for (let n = start; n <= end; n++) if (!used.has(n)) return formatIp(version, n);
  }
  return null;
}
