/**
 * `tsx bench/profile-summary.ts <file.cpuprofile> [top]`: where a V8 CPU profile (from
 * `node --cpu-prof`, e.g. `npm run bench -- --only B2 --profile`) spent its time, as
 * self time per function and self time per package or source folder.
 */
import { readFileSync } from "node:fs";
import path from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Self milliseconds per function ("name (file:line)"), largest first. */
  functions: [string, number][];
  /** Self milliseconds per package (node_modules/<pkg>), Node internal, or project folder. */
  areas: [string, number][];
}

function areaOf(url: string): string {
  if (url === "") return "(native, GC, idle or program)";
  if (url.startsWith("node:")) return "node internals";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + "node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const rel = url.replace(/^file:\/\//, "").split(path.sep);
  const at = rel.findIndex((p) => ["api", "scheduler", "common", "compute-agent", "bench"].includes(p));
  return at >= 0 ? rel.slice(at, at + 2).join("/") : url;
}

export function summarizeProfile(profile: CpuProfile, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfMs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000));
  const functions = new Map<string, number>();
  const areas = new Map<string, number>();
  let totalMs = 0;
  for (const [id, ms] of selfMs) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === "(idle)") continue;
    totalMs += ms;
    const file = f.url ? `${f.url.replace(/^file:\/\/.*?node_modules\//, "").replace(/^file:\/\/.*?\/(api|scheduler|common|compute-agent|bench)\//, "$1/")}:${f.lineNumber + 1}` : "";
    const name = `${f.functionName || "(anonymous)"}${file ? ` (${file})` : ""}`;
    functions.set(name, (functions.get(name) ?? 0) + ms);
    const area = areaOf(f.url);
    areas.set(area, (areas.get(area) ?? 0) + ms);
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => [k, Math.round(v)] as [string, number]);
  return { totalMs: Math.round(totalMs), functions: sorted(functions), areas: sorted(areas) };
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const file = process.argv[2];
  if (!file) {
    console.error("usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]");
    process.exit(2);
  }
  const summary = summarizeProfile(JSON.parse(readFileSync(file, "utf8")) as CpuProfile, Number(process.argv[3] ?? 25));
  const pct = (ms: number) => `${((100 * ms) / summary.totalMs).toFixed(1)}%`.padStart(6);
  console.log(`${file}: ${summary.totalMs} ms on CPU (idle excluded)\n\nby area:`);
  for (const [k, v] of summary.areas) console.log(`${pct(v)} ${String(v).padStart(7)} ms  ${k}`);
  console.log("\nby function (self time):");
  for (const [k, v] of summary.functions) console.log(`${pct(v)} ${String(v).padStart(7)} ms  ${k}`);
}
