/**
 * Numeric evaluation of a MathJSON expression (as produced by @cortex-js/compute-engine) in double
 * precision, with values for its free variables. Double arithmetic cannot hang: a tower such as
 * 9^{9^{9^9}} becomes Infinity at once, and factorials beyond 170! are Infinity without computing.
 */

export type MathJson = number | string | { num: string } | MathJson[];

export class UnsupportedExpression extends Error {
  override name = "UnsupportedExpression";
}

const CONSTANTS: Record<string, number> = {
  Pi: Math.PI,
  ExponentialE: Math.E,
  PositiveInfinity: Infinity,
  NegativeInfinity: -Infinity,
  Half: 0.5,
};

/** Symbols that are not free variables. */
const RESERVED = new Set([...Object.keys(CONSTANTS), "ImaginaryUnit", "ComplexInfinity", "Nothing", "NaN"]);

function factorial(n: number): number {
  if (!Number.isInteger(n) || n < 0) return NaN;
  if (n > 170) return Infinity;
  let out = 1;
  for (let i = 2; i <= n; i++) out *= i;
  return out;
}

function binomial(n: number, k: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(k) || k < 0 || k > n) return NaN;
  if (n > 1000) return Infinity;
  let out = 1;
  for (let i = 1; i <= Math.min(k, n - k); i++) out = (out * (n - i + 1)) / i;
  return Math.round(out);
}

const UNARY: Record<string, (x: number) => number> = {
  Negate: (x) => -x,
  Sqrt: Math.sqrt,
  Square: (x) => x * x,
  Exp: Math.exp,
  Ln: Math.log,
  Lb: Math.log2,
  Lg: Math.log10,
  Abs: Math.abs,
  Floor: Math.floor,
  Ceil: Math.ceil,
  Round: Math.round,
  Factorial: factorial,
  Sin: Math.sin,
  Cos: Math.cos,
  Tan: Math.tan,
  Sec: (x) => 1 / Math.cos(x),
  Csc: (x) => 1 / Math.sin(x),
  Cot: (x) => 1 / Math.tan(x),
  Arcsin: Math.asin,
  Arccos: Math.acos,
  Arctan: Math.atan,
  Sinh: Math.sinh,
  Cosh: Math.cosh,
  Tanh: Math.tanh,
};

/** The free variables of an expression (symbols that are not known constants). */
export function freeVariables(expr: MathJson, into = new Set<string>()): Set<string> {
  if (typeof expr === "string") {
    if (!expr.startsWith("'") && !RESERVED.has(expr)) into.add(expr);
  } else if (Array.isArray(expr)) {
    for (const arg of expr.slice(1)) freeVariables(arg, into);
  }
  return into;
}

/** Number of nodes, to refuse absurdly large expressions before evaluating them. */
export function nodeCount(expr: MathJson): number {
  return Array.isArray(expr) ? expr.reduce<number>((sum, arg) => sum + nodeCount(arg), 0) : 1;
}

const MAX_TERMS = 10_000;

/** `\\sum_{i=1}^{3} i`: ["Sum", body, ["Tuple", "i", 1, 3]], with integer bounds and at most 10,000 terms. */
function bigOperator(head: string, args: MathJson[], variables: ReadonlyMap<string, number>): number {
  const [body, range] = args;
  if (body === undefined || !Array.isArray(range) || range[0] !== "Tuple" || typeof range[1] !== "string") {
    throw new UnsupportedExpression(head);
  }
  const [, index, lower, upper] = range as [string, string, MathJson, MathJson];
  const from = evaluate(lower, variables);
  const to = evaluate(upper, variables);
  if (!Number.isInteger(from) || !Number.isInteger(to) || to - from >= MAX_TERMS) throw new UnsupportedExpression(`${head} bounds`);
  let out = head === "Sum" ? 0 : 1;
  for (let i = from; i <= to; i++) {
    const value = evaluate(body, new Map([...variables, [index, i]]));
    out = head === "Sum" ? out + value : out * value;
  }
  return out;
}

export function evaluate(expr: MathJson, variables: ReadonlyMap<string, number>): number {
  if (typeof expr === "number") return expr;
  if (typeof expr === "string") {
    const constant = CONSTANTS[expr];
    if (constant !== undefined) return constant;
    const value = variables.get(expr);
    if (value === undefined) throw new UnsupportedExpression(`symbol ${expr}`);
    return value;
  }
  if (!Array.isArray(expr)) return Number.parseFloat(expr.num.replace(/^\+/, ""));
  const [head, ...args] = expr;
  if (typeof head !== "string") throw new UnsupportedExpression("applied expression");
  const values = (): number[] => args.map((arg) => evaluate(arg, variables));
  const unary = UNARY[head];
  if (unary && args.length === 1) return unary(evaluate(args[0] as MathJson, variables));
  switch (head) {
    case "Add":
      return values().reduce((a, b) => a + b, 0);
    case "Multiply":
      return values().reduce((a, b) => a * b, 1);
    case "Subtract": {
      const [a = NaN, b = NaN] = values();
      return args.length === 1 ? -a : a - b;
    }
    case "Divide":
    case "Rational": {
      const [a = NaN, b = NaN] = values();
      return a / b;
    }
    case "Power": {
      const [base = NaN, exponent = NaN] = values();
      return Math.pow(base, exponent);
    }
    case "Root": {
      const [x = NaN, n = NaN] = values();
      // Odd roots of negative numbers are real: \sqrt[3]{-8} = -2.
      return x < 0 && Number.isInteger(n) && n % 2 === 1 ? -Math.pow(-x, 1 / n) : Math.pow(x, 1 / n);
    }
    case "Log": {
      const [x = NaN, base = 10] = values();
      return Math.log(x) / Math.log(base);
    }
    case "Complex": {
      const [re = NaN, im = NaN] = values();
      if (im !== 0) throw new UnsupportedExpression("complex number");
      return re;
    }
    case "Binomial":
    case "Choose": {
      const [n = NaN, k = NaN] = values();
      return binomial(n, k);
    }
    case "Max":
      return Math.max(...values());
    case "Min":
      return Math.min(...values());
    case "Delimiter":
      if (args.length === 1) return evaluate(args[0] as MathJson, variables);
      break;
    case "Sum":
    case "Product":
      return bigOperator(head, args, variables);
  }
  throw new UnsupportedExpression(head);
}
