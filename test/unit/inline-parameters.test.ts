/**
 * A statement's values written into its text as literals (common/db/begun-with.ts), for the
 * one query that carries a transaction's BEGIN. Postgres reads them back as the values.
 */
import { describe, expect, it } from "vitest";
import pg from "pg";
import { inlineParameters, literal, quoteLiteral } from "../../common/db/simple-statement.js";

describe("inlineParameters", () => {
  it("replaces each $n by its value, $10 and $1 apart", () => {
    const sql = Array.from({ length: 10 }, (_, i) => `$${i + 1}`).join(", ");
    const values = Array.from({ length: 10 }, (_, i) => i * 11);
    expect(inlineParameters(`SELECT ${sql}`, values)).toBe("SELECT 0, 11, 22, 33, 44, 55, 66, 77, 88, 99");
  });

  it("leaves quoted text alone, doubled quotes included", () => {
    expect(inlineParameters(`SELECT 'costs $1', "col$1", 'it''s $2', $1`, [5, 6])).toBe(`SELECT 'costs $1', "col$1", 'it''s $2', 5`);
  });

  it("writes strings so that quotes and backslashes cannot end the literal", () => {
    expect(literal("x'); DROP TABLE instances; --")).toBe("'x''); DROP TABLE instances; --'");
    expect(literal("a\\'b")).toBe(" E'a\\\\''b'");
  });

  it("quotes a string exactly as node-postgres' escapeLiteral does", () => {
    const alphabet = ["a", "'", "\\", '"', " ", "\n", "é", "😀", "$", "E", "\u0000"];
    const samples = ["", "'", "\\", "''", "\\\\", "a'b\\c", '{"k":"it\'s"}', " E'x'"];
    let seed = 7;
    for (let n = 0; n < 500; n++) {
      let s = "";
      for (let i = 0; i < n % 23; i++) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        s += alphabet[seed % alphabet.length];
      }
      samples.push(s);
    }
    for (const s of samples) expect(quoteLiteral(s), JSON.stringify(s)).toBe(pg.escapeLiteral(s));
  });

  it("writes arrays as Postgres array literals, their elements quoted", () => {
    expect(literal(["6f1c…", 'say "hi"', "back\\slash", null])).toBe(` E'{"6f1c…","say \\\\"hi\\\\"","back\\\\\\\\slash",NULL}'`);
    expect(literal([1, 2.5])).toBe("'{1,2.5}'");
    expect(literal([])).toBe("'{}'");
  });

  it("writes numbers, negative ones in parentheses, and null, booleans and dates", () => {
    expect([literal(3), literal(-3), literal(1.5), literal(null), literal(undefined), literal(true), literal(false)]).toEqual(["3", "(-3)", "1.5", "NULL", "NULL", "TRUE", "FALSE"]);
    expect(literal(new Date("2026-11-26T00:00:00Z"))).toBe("'2026-11-26T00:00:00.000Z'");
  });

  it("refuses what it cannot write, and a $n with no value", () => {
    expect(() => literal(Number.NaN)).toThrow(/finite/);
    expect(() => literal({ a: 1 })).toThrow(/literal/);
    expect(() => literal([{}])).toThrow(/array element/);
    expect(() => inlineParameters("SELECT $2", [1])).toThrow(/\$2/);
  });
});
