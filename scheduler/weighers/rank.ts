/**
 * Turning weighers into an order. Every weigher's values are normalised across all the
 * candidates (Nova's rule), so a host's weight depends on the others; ties go to the
 * lower tie key (the process's own order, scheduler/tie-order.ts), then to the host name
 * in code-unit order.
 */
import type { HostState } from "../host-state.js";
import type { Weigher } from "./types.js";

/**
 * Each host's total: sum of multiplier * (value - min) / (max - min); a weigher whose
 * values are all equal adds 0. Each phase is a function of its own: one loop per
 * function gets optimised with complete type feedback, where code after a long first
 * loop would be reached by on-stack-replaced code without any and be thrown away.
 */
export function hostWeights(hosts: readonly HostState[], weighers: readonly Weigher[]): Float64Array {
  return weightsOf(hosts, weighers, freshBuffers);
}

/**
 * The arrays rank() works in, kept from one call to the next (it uses them before it
 * returns). At 10,000 hosts the weigher matrix is 320 KB: allocated afresh, each one was
 * mapped and faulted in page by page, and hostWeights' own time was 0.8 ms per B4
 * decision in a CPU profile.
 */
interface Buffers {
  values: Float64Array;
  totals: Float64Array;
  rows: Int32Array;
}

const scratch: Buffers = { values: new Float64Array(0), totals: new Float64Array(0), rows: new Int32Array(0) };

function scratchFor(n: number, m: number): Buffers {
  if (scratch.values.length < n * m) scratch.values = new Float64Array(n * m * 2);
  if (scratch.totals.length < n) scratch.totals = new Float64Array(n * 2);
  if (scratch.rows.length < n) {
    scratch.rows = new Int32Array(n * 2);
    for (let i = 0; i < scratch.rows.length; i++) scratch.rows[i] = i;
  }
  return { values: scratch.values.subarray(0, n * m), totals: scratch.totals.subarray(0, n).fill(0), rows: scratch.rows.subarray(0, n) };
}

function freshBuffers(n: number, m: number): Buffers {
  const rows = new Int32Array(n);
  for (let i = 0; i < n; i++) rows[i] = i;
  return { values: new Float64Array(n * m), totals: new Float64Array(n), rows };
}

/** Each host's total, in the arrays `buffers` gives (the scratch ones are valid until the next call). */
function weightsOf(hosts: readonly HostState[], weighers: readonly Weigher[], buffers: (n: number, m: number) => Buffers): Float64Array {
  const active = weighers.filter((w) => w.multiplier !== 0);
  const bufs = buffers(hosts.length, active.length);
  fillRows(active, hosts, bufs.values);
  return totalsOf(bufs.values, active, bufs.rows, bufs.totals);
}

/** Each of `rows`' total: its values normalised across those rows, multiplied and summed (into `totals`, zeroed). */
function totalsOf(values: Float64Array, weighers: readonly Weigher[], rows: Int32Array, totals: Float64Array = new Float64Array(rows.length)): Float64Array {
  for (let j = 0; j < weighers.length; j++) accumulate(values, weighers.length, j, weighers[j]!.multiplier, rows, totals);
  return totals;
}

const NO_WEIGHER: Weigher = { name: "none", multiplier: 0, value: () => 0 };

/**
 * Row i holds host i's value for every weigher: each host is fetched from memory once.
 * The first six weighers are called from call sites of their own (w0 to w5), each of
 * which then always sees the same weigher and gets inlined; one call site for all of them
 * sees several and stays a slow generic call (at 10,000 hosts and Nova's 4 default
 * weighers, 0.27 ms instead of 0.48: medians of 900 runs of this loop alone).
 */
function fillRows(ws: Weigher[], hosts: readonly HostState[], out: Float64Array): void {
  const m = ws.length;
  const w0 = ws[0] ?? NO_WEIGHER;
  const w1 = ws[1] ?? NO_WEIGHER;
  const w2 = ws[2] ?? NO_WEIGHER;
  const w3 = ws[3] ?? NO_WEIGHER;
  const w4 = ws[4] ?? NO_WEIGHER;
  const w5 = ws[5] ?? NO_WEIGHER;
  for (let i = 0; i < hosts.length; i++) {
    const h = hosts[i]!;
    const k = i * m;
    if (m > 0) out[k] = w0.value(h);
    if (m > 1) out[k + 1] = w1.value(h);
    if (m > 2) out[k + 2] = w2.value(h);
    if (m > 3) out[k + 3] = w3.value(h);
    if (m > 4) out[k + 4] = w4.value(h);
    if (m > 5) out[k + 5] = w5.value(h);
    for (let j = 6; j < m; j++) out[k + j] = ws[j]!.value(h);
  }
}

/** Adds column `offset` of the given rows of `values`, normalised across them and multiplied, to their totals. */
function accumulate(values: Float64Array, stride: number, offset: number, multiplier: number, rows: Int32Array, totals: Float64Array): void {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < rows.length; i++) {
    const v = values[rows[i]! * stride + offset]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!(max > min)) return;
  const scale = multiplier / (max - min);
  for (let i = 0; i < rows.length; i++) totals[i]! += (values[rows[i]! * stride + offset]! - min) * scale;
}

/** Whether a goes before b when they weigh the same. */
function tieBefore(a: HostState, b: HostState): boolean {
  if (a.tieKey !== b.tieKey) return a.tieKey < b.tieKey;
  return a.host < b.host;
}

/** Whether host i ranks before host j. */
type Before = (i: number, j: number) => boolean;

function before(hosts: readonly HostState[], weights: Float64Array): Before {
  return (i, j) => {
    const wi = weights[i]!;
    const wj = weights[j]!;
    if (wi !== wj) return wi > wj;
    return tieBefore(hosts[i]!, hosts[j]!);
  };
}

const comparator = (first: Before) => (i: number, j: number): number => (first(i, j) ? -1 : first(j, i) ? 1 : 0);

/** Hosts best first (a new array; the input is left as it is). */
export function weighAll(hosts: readonly HostState[], weighers: readonly Weigher[]): HostState[] {
  if (hosts.length <= 1) return [...hosts];
  const first = before(hosts, hostWeights(hosts, weighers));
  return Array.from(hosts.keys()).sort(comparator(first)).map((i) => hosts[i]!);
}

/**
 * The best k hosts, best first: O(n·w) to weigh, O(n·log k) to select with a heap of
 * the k best so far whose root is the worst of them, O(k·log k) to order them.
 */
export function rank(hosts: readonly HostState[], weighers: readonly Weigher[], k: number): HostState[] {
  return bestK(hosts.length, before(hosts, weightsOf(hosts, weighers, scratchFor)), k).map((i) => hosts[i]!);
}

/**
 * Indices 0..n-1, the best k by `first`, best first. With `among`, only the members, and
 * a member that weighs less than the k-th best so far is passed over without a call to
 * `first` (nearly every one, once the heap is full): `first` must then put a heavier
 * weight first.
 */
function bestK(n: number, first: Before, k: number, among?: { member: Uint8Array; weights: Float64Array }): number[] {
  const size = Math.min(Math.max(0, Math.floor(k)), n);
  if (size === 0) return [];
  const worse: Before = (i, j) => first(j, i);
  const heap = new Int32Array(size);
  let count = 0;
  let floor = -Infinity;
  for (let i = 0; i < n; i++) {
    if (among !== undefined && (among.member[i] === 0 || among.weights[i]! < floor)) continue;
    if (count < size) {
      heap[count] = i;
      siftUp(heap, count++, worse);
    } else if (first(i, heap[0]!)) {
      heap[0] = i;
      siftDown(heap, count, worse);
    } else continue;
    if (among !== undefined && count === size) floor = among.weights[heap[0]!]!;
  }
  return Array.from(heap.subarray(0, count)).sort(comparator(first));
}

/**
 * Weighers' raw values for many hosts, kept so that a run of identical requests
 * (scheduler/batch-decisions.ts) weighs each host once: after a decision only the
 * chosen host's row changes, and ranking a subset of the rows normalises across that
 * subset exactly as rank() over those hosts would.
 */
export class WeighedRows {
  readonly weighers: Weigher[];
  /** Row i's value for weigher j at i * weighers.length + j. */
  readonly values: Float64Array;

  /** Weighs every host (`values` given: they are these hosts' rows already, weighed by `weighers`). */
  constructor(
    readonly hosts: HostState[],
    weighers: readonly Weigher[],
    values?: Float64Array,
  ) {
    this.weighers = weighers.filter((w) => w.multiplier !== 0);
    if (values) this.values = values;
    else {
      this.values = new Float64Array(hosts.length * this.weighers.length);
      fillRows(this.weighers, hosts, this.values);
    }
  }

  /** A copy whose updates leave this one as it is. */
  copy(): WeighedRows {
    return new WeighedRows(this.hosts.slice(), this.weighers, this.values.slice());
  }

  /** Host `row` is now `host` (the batch took resources on it, in its copy): weighs it again. */
  update(row: number, host: HostState): void {
    this.hosts[row] = host;
    this.reweigh(row);
  }

  /** Host `row` changed in place: weighs it again. */
  reweigh(row: number): void {
    const host = this.hosts[row]!;
    const m = this.weighers.length;
    for (let j = 0; j < m; j++) this.values[row * m + j] = this.weighers[j]!.value(host);
  }

  /** The best k of `rows`, best first, as rank() would order those hosts. */
  rank(rows: Int32Array, k: number): number[] {
    const totals = totalsOf(this.values, this.weighers, rows);
    const hosts = this.hosts;
    const first: Before = (a, b) => {
      const wa = totals[a]!;
      const wb = totals[b]!;
      if (wa !== wb) return wa > wb;
      return tieBefore(hosts[rows[a]!]!, hosts[rows[b]!]!);
    };
    return bestK(rows.length, first, k).map((i) => rows[i]!);
  }
}

/** A binary heap whose root is the element `higher` puts on top. */
function siftUp(heap: Int32Array, at: number, higher: Before): void {
  const item = heap[at]!;
  while (at > 0) {
    const parent = (at - 1) >> 1;
    if (!higher(item, heap[parent]!)) break;
    heap[at] = heap[parent]!;
    at = parent;
  }
  heap[at] = item;
}

function siftDown(heap: Int32Array, count: number, higher: Before): void {
  let at = 0;
  const item = heap[0]!;
  for (;;) {
    const left = 2 * at + 1;
    if (left >= count) break;
    const right = left + 1;
    const child = right < count && higher(heap[right]!, heap[left]!) ? right : left;
    if (!higher(heap[child]!, item)) break;
    heap[at] = heap[child]!;
    at = child;
  }
  heap[at] = item;
}

/**
 * The weights of the member rows of a WeighedRows (`member[row]` 1), normalised across
 * the members as totalsOf() does, kept up to date as rows change: a row's change recomputes
 * that row's total alone while no weigher's minimum or maximum over the members moves, and
 * everything, once, when one does. Each weigher's minimum and maximum are counted (how
 * many members hold each) so that a row leaving the top, while others share it, moves
 * nothing. The totals are exactly the ones totalsOf() gives for those rows.
 */
export class KeptTotals {
  private readonly m: number;
  private readonly min: Float64Array;
  private readonly max: Float64Array;
  private readonly atMin: Int32Array;
  private readonly atMax: Int32Array;
  private readonly totals: Float64Array;
  private stale = true;

  constructor(
    private readonly rows: WeighedRows,
    private readonly member: Uint8Array,
  ) {
    this.m = rows.weighers.length;
    this.min = new Float64Array(this.m);
    this.max = new Float64Array(this.m);
    this.atMin = new Int32Array(this.m);
    this.atMax = new Int32Array(this.m);
    this.totals = new Float64Array(rows.hosts.length);
  }

  /** Row `row` (its values or its membership) is about to change. */
  leaving(row: number): void {
    if (this.stale || this.member[row] === 0) return;
    const { values, m } = this;
    for (let j = 0; j < m; j++) {
      const v = values[row * m + j]!;
      if (v === this.min[j] && --this.atMin[j]! === 0) this.stale = true;
      if (v === this.max[j] && --this.atMax[j]! === 0) this.stale = true;
    }
  }

  /** Row `row` has changed. */
  entered(row: number): void {
    if (this.stale || this.member[row] === 0) return;
    const { values, m } = this;
    for (let j = 0; j < m; j++) {
      const v = values[row * m + j]!;
      if (v < this.min[j]! || v > this.max[j]!) this.stale = true;
      if (v === this.min[j]) this.atMin[j]! += 1;
      if (v === this.max[j]) this.atMax[j]! += 1;
    }
    if (!this.stale) this.totals[row] = this.totalOf(row);
  }

  /** The best k members, best first, as rank() would order their hosts. */
  best(k: number): number[] {
    if (this.stale) this.recount();
    const totals = this.totals;
    const hosts = this.rows.hosts;
    const first: Before = (a, b) => {
      const wa = totals[a]!;
      const wb = totals[b]!;
      if (wa !== wb) return wa > wb;
      return tieBefore(hosts[a]!, hosts[b]!);
    };
    return bestK(hosts.length, first, k, { member: this.member, weights: totals });
  }

  private get values(): Float64Array {
    return this.rows.values;
  }

  private totalOf(row: number): number {
    const { values, m } = this;
    let total = 0;
    for (let j = 0; j < m; j++) {
      const min = this.min[j]!;
      const max = this.max[j]!;
      if (max > min) total += (values[row * m + j]! - min) * (this.rows.weighers[j]!.multiplier / (max - min));
    }
    return total;
  }

  private recount(): void {
    const { values, m, member } = this;
    const n = this.rows.hosts.length;
    this.min.fill(Infinity);
    this.max.fill(-Infinity);
    this.atMin.fill(0);
    this.atMax.fill(0);
    for (let i = 0; i < n; i++) {
      if (member[i] === 0) continue;
      for (let j = 0; j < m; j++) {
        const v = values[i * m + j]!;
        if (v < this.min[j]!) {
          this.min[j] = v;
          this.atMin[j] = 0;
        }
        if (v === this.min[j]) this.atMin[j]! += 1;
        if (v > this.max[j]!) {
          this.max[j] = v;
          this.atMax[j] = 0;
        }
        if (v === this.max[j]) this.atMax[j]! += 1;
      }
    }
    for (let i = 0; i < n; i++) this.totals[i] = member[i] === 0 ? 0 : this.totalOf(i);
    this.stale = false;
  }
}
