/**
 * Exact values of MathJSON expressions, as mathjs fractions (arbitrary-size integers): integers,
 * decimals, fractions and their sums, products, quotients, integer powers and factorials. Two
 * exact answers compare exactly, so `10^{20}+1` is not `10^{20}` and `2^{64}` is not
 * `18446744073709551617`. Anything else (radicals, pi, variables) has no exact value here and is
 * compared numerically by compare.ts. Sizes are bounded: a value beyond about 10,000 digits has none.
 */
import { restrictedMath, type Fraction } from "../mathjs.js";
import type { MathJson } from "./evaluate.js";

const MAX_DIGITS = 10_000;
const MAX_FACTORIAL = 2_000;

function digits(value: Fraction): number {
  const abs = (n: bigint) => (n < 0n ? -n : n);
  return abs(value.n).toString().length + abs(value.d).toString().length;
}

function bounded(value: Fraction | null): Fraction | null {
  return value !== null && digits(value) <= MAX_DIGITS ? value : null;
}

function literal(text: string): Fraction | null {
  const math = restrictedMath();
  // The parser writes large round numbers with an exponent: 582076609134674072265625e+6.
  const match = /^\+?(-?(?:\d+\.?\d*|\.\d+))(?:e([-+]?\d+))?$/i.exec(text);
  if (match === null) return null;
  const [, mantissa, exponent] = match as unknown as [string, string, string | undefined];
  const power = Number(exponent ?? 0);
  if (mantissa.replace(/\D/g, "").length + Math.abs(power) > MAX_DIGITS) return null;
  const scale = math.pow(math.fraction(10), Math.abs(power)) as Fraction;
  const value = math.fraction(mantissa);
  return (power >= 0 ? math.multiply(value, scale) : math.divide(value, scale)) as Fraction;
}

/** The exact value of `expr`, or null when it has none (or too large a one). */
export function exactValue(expr: MathJson, depth = 0): Fraction | null {
  if (depth > 200) return null;
  const math = restrictedMath();
  if (typeof expr === "number") return Number.isSafeInteger(expr) ? math.fraction(expr) : literal(String(expr));
  if (typeof expr === "string") return null;
  if (!Array.isArray(expr)) return literal(expr.num);
  const [head, ...args] = expr;
  const values = args.map((arg) => exactValue(arg, depth + 1));
  if (values.some((value) => value === null)) return null;
  const [a, b] = values as Fraction[];
  switch (head) {
    case "Add":
      return bounded((values as Fraction[]).reduce((sum, v) => math.add(sum, v) as Fraction, math.fraction(0)));
    case "Multiply":
      return bounded((values as Fraction[]).reduce((product, v) => math.multiply(product, v) as Fraction, math.fraction(1)));
    case "Negate":
      return a && args.length === 1 ? (math.unaryMinus(a) as Fraction) : null;
    case "Subtract":
      if (a && args.length === 1) return math.unaryMinus(a) as Fraction;
      return a && b ? bounded(math.subtract(a, b) as Fraction) : null;
    case "Divide":
    case "Rational":
      return a && b && b.n !== 0n ? bounded(math.divide(a, b) as Fraction) : null;
    case "Power":
    case "Square": {
      const exponent = head === "Square" ? math.fraction(2) : b;
      if (!a || !exponent || exponent.d !== 1n || (a.n === 0n && exponent.s < 0)) return null;
      // Only powers whose result stays within the digit bound are computed.
      if (Number(exponent.n) * digits(a) > MAX_DIGITS) return null;
      return bounded(math.pow(a, math.number(exponent)) as Fraction);
    }
    case "Factorial": {
      if (!a || a.d !== 1n || a.s < 0 || a.n > BigInt(MAX_FACTORIAL)) return null;
      let out = 1n;
      for (let i = 2n; i <= a.n; i++) out *= i;
      return bounded(math.fraction(out, 1n));
    }
    case "Delimiter":
      return args.length === 1 && a ? a : null;
  }
  return null;
}

const EXACT_HEADS = new Set(["Add", "Multiply", "Negate", "Subtract", "Divide", "Rational", "Power", "Square", "Factorial", "Delimiter"]);

/** Whether an expression is built only of numbers and the operations exactValue knows (no mathjs needed to tell). */
function exactShape(expr: MathJson, depth = 0): boolean {
  if (typeof expr === "number") return true;
  if (typeof expr === "string") return false;
  if (!Array.isArray(expr)) return true;
  const [head, ...args] = expr;
  return depth < 200 && typeof head === "string" && EXACT_HEADS.has(head) && args.every((arg) => exactShape(arg, depth + 1));
}

/**
 * Whether two expressions have the same exact value, after rounding both to `places` decimals
 * when given (Math-Verify's `float_rounding`, for answers given as decimals); null when either has none.
 */
export function exactlyEqual(a: MathJson, b: MathJson, places: number | null = null): boolean | null {
  if (!exactShape(a) || !exactShape(b)) return null;
  const x = exactValue(a);
  const y = x === null ? null : exactValue(b);
  if (x === null || y === null) return null;
  const math = restrictedMath();
  return places === null ? (math.equal(x, y) as boolean) : (math.equal(math.round(x, places), math.round(y, places)) as boolean);
}
