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
