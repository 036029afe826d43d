import { describe, expect, it } from "vitest";
import { parseHostHints, pythonRepr } from "../../api/servers/scheduler-hints.js";
import { NovaError } from "../../common/errors.js";

const A = "6f1c3a1e-7b1d-4a4e-9a53-0c6a3f3f2b11";
const B = "0b7e9c52-3c1f-4f7e-8e0a-2d7c5a9b8e22";

const refusal = (body: Parameters<typeof parseHostHints>[0]): string => {
  try {
    parseHostHints(body);
  } catch (e) {
    expect(e).toBeInstanceOf(NovaError);
    expect((e as NovaError).statusCode).toBe(400);
    return (e as NovaError).message;
  }
  throw new Error("accepted");
};

describe("parseHostHints: accepted", () => {
  it("no hints, or hints without same_host / different_host, give nothing", () => {
    expect(parseHostHints({})).toEqual({});
    expect(parseHostHints({ "os:scheduler_hints": {} })).toEqual({});
    expect(parseHostHints({ "os:scheduler_hints": { group: A, query: "x", anything: 1 } })).toEqual({});
  });

  it("a single UUID or a list, normalised to a list", () => {
    expect(parseHostHints({ "os:scheduler_hints": { same_host: A } })).toEqual({ same_host: [A] });
    expect(parseHostHints({ "os:scheduler_hints": { different_host: [A, B] } })).toEqual({ different_host: [A, B] });
    expect(parseHostHints({ "os:scheduler_hints": { same_host: [A], different_host: B } })).toEqual({ same_host: [A], different_host: [B] });
  });

  it("lower-cases and drops repeats, keeping the order", () => {
    expect(parseHostHints({ "os:scheduler_hints": { different_host: [B.toUpperCase(), A, B] } })).toEqual({ different_host: [B, A] });
  });

  it("an empty list is no hint (Nova ignores it)", () => {
    expect(parseHostHints({ "os:scheduler_hints": { same_host: [], different_host: [] } })).toEqual({});
  });

  it("reads the legacy OS-SCH-HNT:scheduler_hints key; os:scheduler_hints wins when both are sent", () => {
    expect(parseHostHints({ "OS-SCH-HNT:scheduler_hints": { same_host: A } })).toEqual({ same_host: [A] });
    expect(parseHostHints({ "os:scheduler_hints": { same_host: A }, "OS-SCH-HNT:scheduler_hints": { same_host: B } })).toEqual({ same_host: [A] });
  });
});

describe("parseHostHints: refused with Nova's messages", () => {
  it("different_host that is not a UUID or a list of them", () => {
    expect(refusal({ "os:scheduler_hints": { different_host: "abc" } })).toBe(
      "Invalid input for field/attribute different_host. Value: abc. 'abc' is not valid under any of the given schemas",
    );
    expect(refusal({ "os:scheduler_hints": { different_host: [A, "abc"] } })).toBe(
      `Invalid input for field/attribute different_host. Value: ['${A}', 'abc']. ['${A}', 'abc'] is not valid under any of the given schemas`,
    );
    expect(refusal({ "os:scheduler_hints": { different_host: 5 } })).toBe(
      "Invalid input for field/attribute different_host. Value: 5. 5 is not valid under any of the given schemas",
    );
    expect(refusal({ "os:scheduler_hints": { different_host: null } })).toBe(
      "Invalid input for field/attribute different_host. Value: None. None is not valid under any of the given schemas",
    );
    expect(refusal({ "os:scheduler_hints": { different_host: { id: A } } })).toContain("is not valid under any of the given schemas");
  });

  it("same_host of the wrong type, or with a non-UUID", () => {
    expect(refusal({ "os:scheduler_hints": { same_host: 5 } })).toBe("Invalid input for field/attribute same_host. Value: 5. 5 is not of type 'string', 'array'");
    expect(refusal({ "os:scheduler_hints": { same_host: true } })).toBe("Invalid input for field/attribute same_host. Value: True. True is not of type 'string', 'array'");
    expect(refusal({ "os:scheduler_hints": { same_host: [A, 7] } })).toBe("Invalid input for field/attribute same_host. Value: 7. 7 is not of type 'string'");
    expect(refusal({ "os:scheduler_hints": { same_host: ["nope"] } })).toBe("Invalid input for field/attribute same_host. Value: nope. 'nope' is not a 'uuid'");
    expect(refusal({ "os:scheduler_hints": { same_host: "nope" } })).toBe("Invalid input for field/attribute same_host. Value: nope. 'nope' is not a 'uuid'");
  });

  it("an invalid legacy hint is refused even when os:scheduler_hints is also sent", () => {
    expect(refusal({ "os:scheduler_hints": { same_host: A }, "OS-SCH-HNT:scheduler_hints": { same_host: "x" } })).toContain("same_host");
  });
});

describe("pythonRepr", () => {
  it("prints JSON values as Python's repr does", () => {
    expect([null, true, false, 3, 1.5, "a", "it's", ["a", 1], { k: ["v"] }].map(pythonRepr)).toEqual([
      "None", "True", "False", "3", "1.5", "'a'", `"it's"`, "['a', 1]", "{'k': ['v']}",
    ]);
  });
});
