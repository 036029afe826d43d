/**
 * The figures table of docs/benchmarks.md, made from result files. A bench module may
 * export `figures(result)`; for one that does not, its numeric results are listed by path.
 */

export interface FigureRow {
  /** B1 … B7 */
  id: string;
  figure: string;
  value: string;
  target?: string;
}

export interface ResultSource {
  module: string;
  result: Record<string, unknown>;
  date: string;
  commit: string;
  file: string;
}

/** The targets, for modules that do not name their own. */
export const TARGETS: Record<string, string> = {
  B1: "p50 ≤ 5 ms at 16 clients",
  B2: "≥ 300 boots/s",
  B3: "p50 ≤ 100 ms (1,000-server page of 100,000)",
  B4: "p99 ≤ 10 ms at 10,000 hosts",
  B6: "api ≤ 150 MB",
  B7: "≤ 10 ms CPU per server",
};

export function flattenFigures(module: string, result: Record<string, unknown>, limit = 30): FigureRow[] {
  const id = /^b(\d+)/i.exec(module)?.[1] ? `B${/^b(\d+)/i.exec(module)![1]}` : module;
  const rows: FigureRow[] = [];
  const walk = (value: unknown, at: string[], depth: number) => {
    if (rows.length >= limit || depth > 4) return;
    if (typeof value === "number" || typeof value === "boolean") {
      rows.push({ id, figure: at.join(" › "), value: String(value) });
    } else if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) if (k !== "runs") walk(v, [...at, k], depth + 1);
    }
  };
  walk(result, [], 0);
  return rows;
}

const escape = (s: string) => s.replace(/\|/g, "\\|");

export function renderFigures(sources: { rows: FigureRow[]; source: ResultSource }[]): string {
  const lines = ["| | figure | value | target | measured |", "|---|---|---|---|---|"];
  for (const { rows, source } of sources) {
    for (const r of rows) {
      const target = r.target ?? "";
      lines.push(`| ${r.id} | ${escape(r.figure)} | ${escape(r.value)} | ${escape(target)} | ${source.date.slice(0, 10)} \`${source.commit}\` |`);
    }
  }
  return lines.join("\n");
}

/** Replaces what lies between `<!-- name:start -->` and `<!-- name:end -->`. */
export function replaceBetween(doc: string, name: string, content: string): string {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const a = doc.indexOf(start);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`docs/benchmarks.md has no ${start} … ${end} section`);
  return `${doc.slice(0, a + start.length)}\n${content}\n${doc.slice(b)}`;
}
