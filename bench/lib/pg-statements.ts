/**
 * Which statements the database spends its time on, without pg_stat_statements (it
 * needs a server restart to load): the bench database gets log_min_duration_statement=0,
 * and afterwards the server log is read from where it stood and the durations are summed
 * per statement shape (literals and parameters replaced by ?). Durations are the
 * server's elapsed times (parse, bind and execute each), not CPU time, and logging every
 * statement slows the database down: for finding the heavy statements, not for figures.
 */
import { open, stat } from "node:fs/promises";
import pg from "pg";

export const PG_LOG_FILE = process.env.BENCH_PG_LOG ?? "/var/log/postgresql/postgresql-15-main.log";

export async function logEveryStatement(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`ALTER DATABASE "${database}" SET log_min_duration_statement = 0`);
  } finally {
    await client.end();
  }
}

/** The log's size now: where a later summary starts reading. */
export async function logOffset(file = PG_LOG_FILE): Promise<number> {
  return (await stat(file).catch(() => ({ size: -1 }))).size;
}

export interface StatementCost {
  statement: string;
  calls: number;
  totalMs: number;
}

function shape(sql: string): string {
  return sql
    .replace(/\s+/g, " ")
    .replace(/'(?:[^']|'')*'/g, "?")
    .replace(/\$\d+/g, "?")
    .replace(/\b\d+(\.\d+)?\b/g, "?")
    .replace(/\((?:\?, ?)+\?\)/g, "(?…)")
    .replace(/(?:\(\?…\), ?)+\(\?…\)/g, "(?…)…")
    .trim()
    .slice(0, 240);
}

export async function statementCosts(database: string, fromOffset: number, file = PG_LOG_FILE, top = 20): Promise<{ totalMs: number; statements: StatementCost[] }> {
  if (fromOffset < 0) return { totalMs: 0, statements: [] };
  const handle = await open(file, "r");
  let text: string;
  try {
    const size = (await handle.stat()).size;
    const buf = Buffer.alloc(Math.max(0, size - fromOffset));
    await handle.read(buf, 0, buf.length, fromOffset);
    text = buf.toString("utf8");
  } finally {
    await handle.close();
  }
  // An entry starts with a timestamp; statements spanning lines continue it.
  const entries = text.split(/\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)/);
  const marker = `@${database} LOG:  duration: `;
  const costs = new Map<string, StatementCost>();
  let totalMs = 0;
  for (const e of entries) {
    const at = e.indexOf(marker);
    if (at < 0) continue;
    const m = /^([\d.]+) ms {2}(?:(statement|parse|bind|execute)[^:]*: )?([\s\S]*)$/.exec(e.slice(at + marker.length));
    if (!m) continue;
    const ms = Number(m[1]);
    const key = shape(m[3]!);
    const c = costs.get(key) ?? { statement: key, calls: 0, totalMs: 0 };
    // The extended protocol logs parse, bind and execute apart: a call is its execute.
    if (m[2] === undefined || m[2] === "statement" || m[2] === "execute") c.calls++;
    c.totalMs += ms;
    costs.set(key, c);
    totalMs += ms;
  }
  const statements = [...costs.values()]
    .sort((a, b) => b.totalMs - a.totalMs)
    .slice(0, top)
    .map((c) => ({ ...c, totalMs: Math.round(c.totalMs) }));
  return { totalMs: Math.round(totalMs), statements };
}
