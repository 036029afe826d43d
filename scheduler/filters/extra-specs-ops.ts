/**
 * Nova's extra spec operators (nova/scheduler/filters/extra_specs_ops.py), compiled once
 * per requirement into a predicate over one aggregate value:
 *   "<op> arg": = (number >=), ==, !=, >=, <= (numbers); s==, s!=, s<, s<=, s>, s>=
 *   (strings); <in> (arg is a substring); <all-in> a b ... (every arg a substring);
 *   "<or> a <or> b ...": equals one of them; anything else: the value equals it exactly.
 * Where Nova raises (a value that is not a number for a numeric operator, a bare
 * "<or>"), the value simply does not match.
 */
export type ValueMatcher = (value: string) => boolean;

const FLOAT = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;
const SPECIAL_FLOAT = /^\s*([+-]?)(inf|infinity|nan)\s*$/i;

/** Python's float() for the forms that matter; NaN for anything it would refuse. */
export function pythonFloat(s: string): number {
  if (FLOAT.test(s)) return Number(s);
  const special = SPECIAL_FLOAT.exec(s);
  if (!special) return Number.NaN;
  if (special[2]!.toLowerCase() === "nan") return Number.NaN;
  return special[1] === "-" ? -Infinity : Infinity;
}

const numeric = (test: (value: number, arg: number) => boolean) => (arg: string): ValueMatcher => {
  const a = pythonFloat(arg);
  return (value) => {
    const v = pythonFloat(value);
    return !Number.isNaN(v) && !Number.isNaN(a) && test(v, a);
  };
};

const UNARY: Record<string, (arg: string) => ValueMatcher> = {
  "=": numeric((v, a) => v >= a),
  "==": numeric((v, a) => v === a),
  "!=": numeric((v, a) => v !== a),
  ">=": numeric((v, a) => v >= a),
  "<=": numeric((v, a) => v <= a),
  "s==": (a) => (v) => v === a,
  "s!=": (a) => (v) => v !== a,
  "s<": (a) => (v) => v < a,
  "s<=": (a) => (v) => v <= a,
  "s>": (a) => (v) => v > a,
  "s>=": (a) => (v) => v >= a,
  "<in>": (a) => (v) => v.includes(a),
};

const never: ValueMatcher = () => false;

export function compileRequirement(req: string): ValueMatcher {
  const words = req.split(/\s+/).filter((w) => w !== "");
  const op = words[0];
  if (op === "<or>") {
    // Every other word after the first "<or>" is an alternative; the words between are separators.
    const options = words.slice(1).filter((_, i) => i % 2 === 0);
    return options.length === 0 ? never : (v) => options.includes(v);
  }
  if (op === "<all-in>") {
    const args = words.slice(1);
    return args.length === 0 ? never : (v) => args.every((a) => v.includes(a));
  }
  const unary = op !== undefined && Object.hasOwn(UNARY, op) ? UNARY[op] : undefined;
  if (!unary) return (v) => v === req;
  return words.length < 2 ? never : unary(words[1]!);
}
