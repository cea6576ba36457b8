/**
 * The equivalence rules for MATH answers, after Math-Verify: an answer is read into a structure
 * (a set, a tuple or interval, a union, a matrix, a relation, an expression or text), and two
 * structures are compared part by part; expressions by value, numerically, with sampling of free
 * variables as the last resort for symbolic equality. This runs inside the grading worker, which
 * bounds its time; see grader.ts.
 */
import { ComputeEngine } from "@cortex-js/compute-engine";
import { evaluate, freeVariables, nodeCount, UnsupportedExpression, type MathJson } from "./evaluate.js";
import { normalizeAnswer, stripVariablePrefix, topLevel, type NormalizedAnswer } from "./normalize.js";
import { answerCandidates } from "./extract.js";
import { exactlyEqual, exactValue } from "./exact.js";
import { restrictedMath, type Fraction } from "../mathjs.js";

export interface CompareOptions {
  /**
   * How a percent sign on one side counts: "ignore" (default: `10\%` equals `10` written without
   * the sign, as in MATH, and its value `0.1`), "fraction" (`10\%` is only its value `0.1`),
   * "strict" (both must carry it or neither).
   */
  percent?: "ignore" | "fraction" | "strict";
  /**
   * When a decimal number is involved, both values are rounded to this many decimal places before
   * they are compared, as Math-Verify does. Default 6.
   */
  decimalPlaces?: number;
  /** Largest answer (after extraction) that is compared, in characters. Default 5,000. */
  maxAnswerChars?: number;
  /**
   * What is read out of a whole text, as Math-Verify's extraction targets: "latex" (boxed answers
   * and math in `$...$`, `\\(...\\)`, `\\[...\\]`) and "expr" (plain numbers and expressions in prose).
   * Default both.
   */
  extraction?: ("latex" | "expr")[];
  /**
   * Whether a gold interval also accepts the inequality that describes it (`[-2, 7]` against
   * `-2 \\le x \\le 7`). A gold inequality always accepts its interval. Default true: a MATH answer
   * is right in either form (Math-Verify's `allow_set_relation_comp` defaults to false).
   */
  allowSetRelationComparison?: boolean;
  /**
   * Whether variable and function names must match (Math-Verify's `strict`, default true there and
   * here): `f(y)` is not `f(x)`. Off, a prediction's variables that the gold lacks stand for the
   * gold's own (in alphabetical order, when both have as many variables).
   */
  strictVariables?: boolean;
}

export interface Verdict {
  equal: boolean;
  /** Which rule decided, or why the comparison could not be made. */
  reason: string;
  /** The normalized forms that were compared (null when no answer was found). */
  pred: string | null;
  gold: string | null;
  /**
   * True when the comparison did not finish (it ran past the grader's time limit, or its worker
   * crashed): `equal` is then false without a judgment, and `reason` says what happened.
   */
  incomplete?: boolean;
}

type Answer =
  | { kind: "expr"; latex: string }
  | { kind: "text"; text: string }
  | { kind: "relation"; ops: string[]; sides: string[] }
  | { kind: "sequence"; open: string; close: string; items: Answer[] }
  | { kind: "union"; parts: Answer[] }
  | { kind: "matrix"; rows: Answer[][] };

const EXACT_TOLERANCE = 1e-9;
const MAX_NODES = 2_000;
const SAMPLE_POINTS = [0.7831, 1.3217, 2.1919, -0.5137, 3.0411, -1.7723];

let engine: ComputeEngine | undefined;
function ce(): ComputeEngine {
  engine ??= new ComputeEngine();
  return engine;
}

/** Splits at top-level occurrences of `separator` (outside any bracket or brace). */
function splitTopLevel(text: string, separator: RegExp): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === "\\") {
      const command = /^\\(?:\{|\}|[a-zA-Z]+)/.exec(text.slice(i))?.[0] ?? "\\";
      if (command === "\\{" || command === "\\begin") depth++;
      else if (command === "\\}" || command === "\\end") depth--;
      if (depth === 0) {
        const match = separator.exec(text.slice(i));
        if (match?.index === 0) {
          parts.push(text.slice(start, i));
          start = i + match[0].length;
        }
      }
      i += command.length - 1;
      continue;
    }
    if ("([{".includes(ch)) depth++;
    else if (")]}".includes(ch)) depth--;
    else if (depth === 0) {
      const match = separator.exec(text.slice(i));
      if (match?.index === 0) {
        parts.push(text.slice(start, i));
        start = i + match[0].length;
        i += match[0].length - 1;
      }
    }
  }
  parts.push(text.slice(start));
  return parts.map((part) => part.trim());
}

/** True when the bracket opening at 0 closes exactly at the end of the text. */
function enclosedWhole(text: string, openLength: number, closeLength: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === "\\") {
      const command = text.slice(i, i + 2);
      if (command === "\\{") depth++;
      else if (command === "\\}") depth--;
      i++;
    } else if ("([{".includes(ch)) depth++;
    else if (")]}".includes(ch)) depth--;
    if (depth === 0) return i === text.length - 1 && text.length >= openLength + closeLength;
  }
  return false;
}

const RELATION = /^(?:\\leq|\\geq|\\neq|<|>|=)/;

/** Deepest nesting of brackets and braces; deeper answers are refused rather than recursed into. */
const MAX_DEPTH = 50;

function nestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  for (const ch of text) {
    if ("([{".includes(ch)) deepest = Math.max(deepest, ++depth);
    else if (")]}".includes(ch)) depth--;
  }
  return deepest;
}

/**
 * Reads an answer into its structure. With `stripNames`, every item of a list loses its
 * `x =` label (`x = 1, x = 2` is the list 1, 2), for comparison with an answer that is no equation.
 */
function parseAnswer(latex: string, stripNames = false): Answer {
  const parse = (part: string) => parseAnswer(stripNames ? stripVariablePrefix(part) : part, stripNames);
  const matrices = matrixTerms(latex);
  if (matrices?.length === 1) return { kind: "matrix", rows: (matrices[0] as string[][]).map((row) => row.map(parse)) };
  if (matrices) {
    const value = matrixArithmetic(latex, matrices);
    if (value) return { kind: "matrix", rows: value.map((row) => row.map((cell): Answer => ({ kind: "expr", latex: cell }))) };
  }
  const union = splitTopLevel(latex, /^\\cup(?![a-zA-Z])/);
  if (union.length > 1) return { kind: "union", parts: union.map(parse) };

  if (latex.startsWith("\\{") && latex.endsWith("\\}") && enclosedWhole(latex, 2, 2)) {
    const inner = latex.slice(2, -2).trim();
    const items = inner === "" ? [] : splitTopLevel(inner, /^,/).map(parse);
    return { kind: "sequence", open: "{", close: "}", items };
  }
  const open = latex[0];
  const close = latex[latex.length - 1];
  if ((open === "(" || open === "[") && (close === ")" || close === "]") && enclosedWhole(latex, 1, 1)) {
    const items = splitTopLevel(latex.slice(1, -1), /^,/);
    if (items.length > 1) return { kind: "sequence", open, close, items: items.map(parse) };
  }
  const list = splitTopLevel(latex, /^,|^;/);
  if (list.length > 1) return { kind: "sequence", open: "", close: "", items: list.map(parse) };

  const pieces = splitTopLevel(latex, RELATION);
  if (pieces.length > 1) {
    const ops = [...latex.matchAll(/\\leq|\\geq|\\neq|<|>|=/g)].map((m) => m[0]);
    if (ops.length === pieces.length - 1) return orientRelation({ kind: "relation", ops, sides: pieces });
  }
  // 1 \pm \sqrt{2} is the pair of values 1 + \sqrt{2}, 1 - \sqrt{2} (with at most 3 signs: 8 values).
  const plusMinus = /\\(?:pm|mp)(?![a-zA-Z])/;
  if (plusMinus.test(latex) && (latex.match(/\\(?:pm|mp)(?![a-zA-Z])/g) ?? []).length <= 3) {
    const items = [latex.replace(plusMinus, "+"), latex.replace(plusMinus, "-")];
    return { kind: "sequence", open: "", close: "", items: items.map((item) => parseAnswer(item)) };
  }
  if (/^(?:[A-Za-z][a-z]+)(?:\s[A-Za-z][a-z]+)*$/.test(latex) && !/^(?:[a-z])+$/.test(latex)) {
    return { kind: "text", text: latex.toLowerCase() };
  }
  return { kind: "expr", latex };
}

const MATRIX = /\\begin\{([pbvB]?matrix|array)\}(?:\{[^}]*\})?([\s\S]*?)\\end\{\1\}/g;
/** What may stand between two matrices of a sum or product. */
const MATRIX_OPERATOR = /^(?:\+|-|\\cdot|\\times|)$/;

/** The cells of each matrix when the answer is matrices joined by `+`, `-` or products; else null. */
function matrixTerms(latex: string): string[][][] | null {
  const terms: string[][][] = [];
  let last = 0;
  for (const match of latex.matchAll(MATRIX)) {
    const glue = latex.slice(last, match.index).trim();
    if (terms.length === 0 ? glue !== "" : !MATRIX_OPERATOR.test(glue)) return null;
    const rows = (match[2] as string).split(/\\\\/).map((row) => row.trim()).filter((row) => row !== "");
    terms.push(rows.map((row) => row.split("&").map((cell) => cell.trim())));
    last = match.index + match[0].length;
  }
  return terms.length > 0 && latex.slice(last).trim() === "" ? terms : null;
}

/**
 * `A + B`, `A - B`, `A B`: the matrix it computes, in exact arithmetic (mathjs), as cells in LaTeX;
 * null when a cell has no exact value or the shapes do not fit.
 */
function matrixArithmetic(latex: string, terms: string[][][]): string[][] | null {
  const operators = latex.replace(MATRIX, "\uE000").split("\uE000").slice(1, -1).map((glue) => glue.trim());
  const values = terms.map((rows) => rows.map((row) => row.map((cell) => exactValue(toJson(cell)))));
  if (values.some((rows) => rows.some((row) => row.some((cell) => cell === null)))) return null;
  const math = restrictedMath();
  try {
    let result = math.matrix(values[0] as Fraction[][]);
    operators.forEach((operator, i) => {
      const next = math.matrix(values[i + 1] as Fraction[][]);
      if (operator === "+") result = math.add(result, next);
      else if (operator === "-") result = math.subtract(result, next);
      else result = math.multiply(result, next);
    });
    const sign = (cell: Fraction) => (cell.s < 0 ? "-" : "");
    const rows = result.toArray() as unknown as Fraction[][];
    return rows.map((row) => row.map((cell) => (cell.d === 1n ? `${sign(cell)}${cell.n}` : `${sign(cell)}\\frac{${cell.n}}{${cell.d}}`)));
  } catch {
    return null; // shapes that do not add or multiply
  }
}

/** Writes `>`/`\geq` relations the other way round, so that `3 > x` and `x < 3` read alike. */
function orientRelation(relation: { kind: "relation"; ops: string[]; sides: string[] }): Answer {
  const flipped: Record<string, string> = { ">": "<", "\\geq": "\\leq" };
  if (!relation.ops.every((op) => op in flipped)) return relation;
  return {
    kind: "relation",
    ops: relation.ops.map((op) => flipped[op] as string).reverse(),
    sides: [...relation.sides].reverse(),
  };
}

/**
 * A one-variable inequality as the set it describes: `x < 3` → `(-\infty, 3)`, `1 \leq x < 2` →
 * `[1, 2)`, and with an absolute value `|z| \leq 2` → `[-2, 2]`, `1 \leq |z| \leq 2` →
 * `[-2, -1] \cup [1, 2]`, `|z| > 1` → `(-\infty, -1) \cup (1, \infty)`. Null for any other relation.
 */
function relationAsSet(relation: Answer): Answer | null {
  if (relation.kind !== "relation") return null;
  const { ops, sides } = relation;
  if (!ops.every((op) => op === "<" || op === "\\leq")) return null;
  const name = /^(?:[a-zA-Z]|\\[a-zA-Z]+)$/;
  const absolute = /^\|(?:[a-zA-Z]|\\[a-zA-Z]+)\|$/;
  const expr = (latex: string): Answer => ({ kind: "expr", latex });
  const negated = (latex: string) => (latex === "\\infty" ? "-\\infty" : `-(${latex})`);
  const interval = (low: string, lowOp: string | null, high: string, highOp: string | null): Answer => ({
    kind: "sequence",
    open: lowOp === "\\leq" ? "[" : "(",
    close: highOp === "\\leq" ? "]" : ")",
    items: [expr(low), expr(high)],
  });
  // The bounds below and above the variable, with their relations (null: unbounded).
  let low: [string, string | null] = ["-\\infty", null];
  let high: [string, string | null] = ["\\infty", null];
  let variable: string;
  if (ops.length === 1 && (name.test(sides[0] as string) || absolute.test(sides[0] as string))) {
    [variable, high] = [sides[0] as string, [sides[1] as string, ops[0] as string]];
  } else if (ops.length === 1) {
    [low, variable] = [[sides[0] as string, ops[0] as string], sides[1] as string];
  } else if (ops.length === 2) {
    [low, variable, high] = [[sides[0] as string, ops[0] as string], sides[1] as string, [sides[2] as string, ops[1] as string]];
  } else return null;
  if (name.test(variable)) return interval(low[0], low[1], high[0], high[1]);
  if (!absolute.test(variable)) return null;
  // |z| below a bound only: one interval around 0; otherwise the two mirrored parts.
  if (low[1] === null) return interval(negated(high[0]), high[1], high[0], high[1]);
  const negative = interval(negated(high[0]), high[1], negated(low[0]), low[1]);
  return { kind: "union", parts: [negative, interval(low[0], low[1], high[0], high[1])] };
}

class Incomparable extends Error {}

function toJson(latex: string): MathJson {
  let json: MathJson;
  try {
    json = ce().parse(latex).json as MathJson;
  } catch (error) {
    // The parser gives up on some malformed input by throwing ("Infinite loop detected while parsing").
    throw new Incomparable(`cannot parse ${latex}: ${error instanceof Error ? error.message.slice(0, 80) : String(error)}`);
  }
  if (JSON.stringify(json).includes('"Error"')) throw new Incomparable(`cannot parse ${latex}`);
  if (nodeCount(json) > MAX_NODES) throw new Incomparable("expression too large");
  return json;
}

function close(a: number, b: number, tolerance = EXACT_TOLERANCE): boolean {
  if (a === b) return true; // includes equal infinities
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  return Math.abs(a - b) <= tolerance * Math.max(Math.abs(a), Math.abs(b), 1e-12);
}

/** Equal after rounding to `places` decimals (for answers given as decimals), or equal as exact values. */
function closeRounded(a: number, b: number, places: number | null): boolean {
  if (close(a, b)) return true;
  if (places === null) return false;
  const scale = 10 ** places;
  return Math.round(a * scale) === Math.round(b * scale);
}

interface Context {
  options: Required<CompareOptions>;
}

/** A number as written (`12`, `0.5`), whose double is its correctly rounded value. */
function isLiteral(expr: MathJson): boolean {
  return typeof expr === "number" || (typeof expr === "object" && !Array.isArray(expr));
}

/**
 * The values of the free variables of a prediction and a gold expression at a sample point. With
 * `strictVariables` off (Math-Verify's `strict=False`), a prediction's variables that the gold does
 * not use stand for the gold's own, matched in alphabetical order when there are as many of each:
 * `f(y)` is then `f(x)`.
 */
function sampler(pred: MathJson, gold: MathJson, context: Context): { variables: number; at: (point: number) => [ReadonlyMap<string, number>, ReadonlyMap<string, number>] } {
  const predNames = [...freeVariables(pred)];
  const goldNames = [...freeVariables(gold)];
  const names = [...new Set([...predNames, ...goldNames])];
  const rename = new Map<string, string>();
  const own = predNames.filter((name) => !goldNames.includes(name)).sort();
  const others = goldNames.filter((name) => !predNames.includes(name)).sort();
  if (!context.options.strictVariables && own.length === others.length) own.forEach((name, i) => rename.set(name, others[i] as string));
  return {
    variables: names.length,
    at: (point) => {
      const values = new Map(names.map((name, i) => [name, point + 0.379 * i]));
      return [new Map(predNames.map((name) => [name, values.get(rename.get(name) ?? name) as number])), values];
    },
  };
}

/** Values compared numerically; free variables are sampled at fixed points (symbolic equality). */
function expressionsEqual(a: string, b: string, context: Context): string | null {
  if (a === b) return "string";
  const left = toJson(a);
  const right = toJson(b);
  const hasDecimal = /\d\.\d/.test(a) || /\d\.\d/.test(b);
  const places = hasDecimal ? context.options.decimalPlaces : null;
  const sample = sampler(left, right, context);
  try {
    if (sample.variables === 0) {
      const x = evaluate(left, new Map());
      const y = evaluate(right, new Map());
      if (Number.isNaN(x) || Number.isNaN(y)) throw new Incomparable("not a real number");
      // Equal doubles below 2^53 are taken as equal values, and two number literals whose doubles
      // differ as different ones: neither needs mathjs. Otherwise two exact
      // values (integers, decimals, fractions, integer powers) compare exactly, rounded to `places`
      // when a decimal is involved: 10^{20}+1 is not 10^{20}, 999999999.0 is not 1000000000.
      if (x === y && Math.abs(x) < 2 ** 53) return "numeric";
      if (isLiteral(left) && isLiteral(right) && Number.isFinite(x) && Number.isFinite(y) && !closeRounded(x, y, places)) return null;
      const exact = exactlyEqual(left, right, places);
      if (exact !== null) return exact ? "exact" : null;
      if (!Number.isFinite(x) && !Number.isFinite(y) && x !== y) return null;
      if ((!Number.isFinite(x) || !Number.isFinite(y)) && !/\\infty/.test(a + b)) {
        throw new Incomparable("overflow: a value is too large to compare");
      }
      return closeRounded(x, y, places) ? "numeric" : null;
    }
    let compared = 0;
    for (const point of SAMPLE_POINTS) {
      const [predValues, goldValues] = sample.at(point);
      const x = evaluate(left, predValues);
      const y = evaluate(right, goldValues);
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      if (!close(x, y, 1e-8)) return null;
      compared++;
    }
    if (compared >= 2) return "symbolic";
    throw new Incomparable("no sample point where both sides are defined");
  } catch (error) {
    if (!(error instanceof UnsupportedExpression)) throw error;
    // Heads our evaluator does not know (complex numbers, special functions): compare the
    // canonical forms of the compute engine, simplified.
    const x = ce().box(left).simplify();
    const y = ce().box(right).simplify();
    return x.isSame(y) ? "canonical" : null;
  }
}

/** Pairs every item of `a` with a distinct equal item of `b` (order ignored). */
function unorderedEqual(a: Answer[], b: Answer[], context: Context): boolean {
  if (a.length !== b.length) return false;
  const used = new Array<boolean>(b.length).fill(false);
  return a.every((item) => {
    const j = b.findIndex((other, k) => !used[k] && answersEqual(item, other, context) !== null);
    if (j === -1) return false;
    used[j] = true;
    return true;
  });
}

function orderedEqual(a: Answer[], b: Answer[], context: Context): boolean {
  return a.length === b.length && a.every((item, i) => answersEqual(item, b[i] as Answer, context) !== null);
}

/**
 * Equations are equal when their sides are, or when (lhs - rhs) agree up to a constant factor;
 * inequalities of the same direction when (lhs - rhs) agree up to a positive factor (`-x > -1` is `x < 1`).
 */
function relationsEqual(a: string[], b: string[], context: Context, factor: "any" | "positive"): boolean {
  const [a0 = "", a1 = ""] = a;
  const [b0 = "", b1 = ""] = b;
  const sidesMatch = (x: string, y: string) => expressionsEqual(x, y, context) !== null;
  if (sidesMatch(a0, b0) && sidesMatch(a1, b1)) return true;
  if (factor === "any" && sidesMatch(a0, b1) && sidesMatch(a1, b0)) return true;
  const left = toJson(`(${a0})-(${a1})`);
  const right = toJson(`(${b0})-(${b1})`);
  const sample = sampler(left, right, context);
  let ratio: number | null = null;
  for (const point of SAMPLE_POINTS) {
    const [predValues, goldValues] = sample.at(point);
    const x = evaluate(left, predValues);
    const y = evaluate(right, goldValues);
    if (!Number.isFinite(x) || !Number.isFinite(y) || Math.abs(y) < 1e-12) continue;
    if (ratio === null) ratio = x / y;
    else if (!close(x / y, ratio, 1e-8)) return false;
  }
  return ratio !== null && (factor === "positive" ? ratio > 0 : ratio !== 0);
}

/**
 * The name of the rule that found the prediction `a` and the gold `b` equal, or null when they
 * differ. A gold inequality accepts the interval it describes; a gold interval accepts an
 * inequality only with `allowSetRelationComparison`, as in Math-Verify.
 */
function answersEqual(a: Answer, b: Answer, context: Context): string | null {
  const isSet = (answer: Answer) => answer.kind === "sequence" || answer.kind === "union";
  if (a.kind === "relation" && isSet(b)) {
    const set = context.options.allowSetRelationComparison ? relationAsSet(a) : null;
    return set ? answersEqual(set, b, context) : null;
  }
  if (isSet(a) && b.kind === "relation") {
    const set = relationAsSet(b);
    return set ? answersEqual(a, set, context) : null;
  }
  if (a.kind !== b.kind) return null;
  switch (a.kind) {
    case "expr":
      return expressionsEqual(a.latex, (b as typeof a).latex, context);
    case "text":
      return a.text === (b as typeof a).text ? "text" : null;
    case "union":
      return unorderedEqual(a.parts, (b as typeof a).parts, context) ? "union" : null;
    case "matrix": {
      const other = b as typeof a;
      const sameShape = a.rows.length === other.rows.length && a.rows.every((row, i) => row.length === other.rows[i]?.length);
      return sameShape && a.rows.every((row, i) => orderedEqual(row, other.rows[i] as Answer[], context)) ? "matrix" : null;
    }
    case "relation": {
      const other = b as typeof a;
      if (a.ops.join() !== other.ops.join()) return null;
      if (a.ops.length === 1 && a.ops[0] === "=") {
        return labelledEqual(a.sides, other.sides, context) ?? (relationsEqual(a.sides, other.sides, context, "any") ? "equation" : null);
      }
      const sides = (x: string[]) => x.map((latex): Answer => ({ kind: "expr", latex }));
      if (orderedEqual(sides(a.sides), sides(other.sides), context)) return "relation";
      const inequality = a.ops.length === 1 && a.ops[0] !== "\\neq";
      return inequality && relationsEqual(a.sides, other.sides, context, "positive") ? "inequality" : null;
    }
    case "sequence": {
      const other = b as typeof a;
      // Sets, and lists written without brackets ("the solutions are 1, -2"), ignore order; a list
      // against a tuple or interval is read in order.
      const unordered = (s: typeof a) => s.open === "{" || s.open === "";
      if (unordered(a) && unordered(other)) return unorderedEqual(a.items, other.items, context) ? "set" : null;
      if (a.open === "" || other.open === "") return orderedEqual(a.items, other.items, context) ? "tuple" : null;
      if (unordered(a) || unordered(other)) return null;
      if (a.open !== other.open || a.close !== other.close) return null;
      return orderedEqual(a.items, other.items, context) ? (a.open === a.close ? "tuple" : "interval") : null;
    }
  }
}

/**
 * Equations labelled by a function or variable name (`f(x) = 2x + 3`, `y = 2x + 3`) are the same
 * function when their right-hand sides are equal. Two different bare variables (`x = 1`, `y = 1`)
 * are not, nor two applications to different arguments (`f(x)`, `f(t)`).
 */
function labelledEqual(a: string[], b: string[], context: Context): string | null {
  const label = /^(?:([a-zA-Z])|[a-zA-Z]\(([a-zA-Z])\))$/;
  const [a0 = "", a1 = ""] = a;
  const [b0 = "", b1 = ""] = b;
  const [, aVariable, aArgument] = label.exec(a0) ?? [];
  const [, bVariable, bArgument] = label.exec(b0) ?? [];
  if (a0 === b0 || (aVariable ?? aArgument) === undefined || (bVariable ?? bArgument) === undefined) return null;
  if (aVariable !== undefined && bVariable !== undefined) return null;
  if (aArgument !== undefined && bArgument !== undefined && aArgument !== bArgument) return null;
  return expressionsEqual(a1, b1, context) !== null ? "function" : null;
}

const DEFAULTS: Required<CompareOptions> = {
  percent: "ignore",
  decimalPlaces: 6,
  maxAnswerChars: 5_000,
  extraction: ["latex", "expr"],
  allowSetRelationComparison: true,
  strictVariables: true,
};

/** How many candidate answers of each side are tried when the preferred one cannot be read. */
const MAX_CANDIDATES = 3;

/**
 * The value an answer states: `x \approx 0.33` and `x = 5 + 5 + 1 = 11` state their last part,
 * `1/3 \approx 0.33` its exact first part.
 */
function statedValue(latex: string): string {
  const approx = latex.split(/\\approx(?![a-zA-Z])/);
  if (approx.length > 1) {
    const first = (approx[0] as string).trim();
    latex = /^(?:[a-zA-Z]|\\[a-zA-Z]+)$/.test(first) ? (approx[1] as string).trim() : first;
  }
  const equals = topLevel(latex, "=");
  const list = topLevel(latex, ",").length > 0;
  return equals.length > 1 && !list ? latex.slice((equals.at(-1) as number) + 1).trim() : latex;
}

/**
 * Compares a predicted answer with a gold answer. Either may be a bare answer or a whole text
 * (a model's solution, prose with math), from which the answer is taken first; when the preferred
 * answer of a text cannot be read, the next candidate is tried. No time limit here: call it
 * through the Grader (grader.ts) for untrusted input.
 */
export function compareAnswers(pred: string, gold: string, options: CompareOptions = {}): Verdict {
  const settings = { ...DEFAULTS, ...options };
  const predCandidates = answerCandidates(pred, settings.extraction).slice(0, MAX_CANDIDATES);
  const goldCandidates = answerCandidates(gold, settings.extraction).slice(0, MAX_CANDIDATES);
  if (predCandidates.length === 0 || goldCandidates.length === 0) {
    const reason = predCandidates.length === 0 ? "no answer in prediction" : "no answer in gold";
    return { equal: false, reason, pred: predCandidates[0] ?? null, gold: goldCandidates[0] ?? null };
  }
  let verdict: Verdict | null = null;
  for (const goldAnswer of goldCandidates) {
    for (const predAnswer of predCandidates) {
      verdict = compareOne(predAnswer, goldAnswer, settings);
      if (!verdict.reason.startsWith("cannot parse")) return verdict;
    }
  }
  return verdict as Verdict;
}

function compareOne(predAnswer: string, goldAnswer: string, settings: Required<CompareOptions>): Verdict {
  if (predAnswer.length > settings.maxAnswerChars || goldAnswer.length > settings.maxAnswerChars) {
    return { equal: false, reason: `answer longer than ${settings.maxAnswerChars} characters`, pred: null, gold: null };
  }
  // The same text is the same answer (the common case of a model that copies the gold form).
  if (predAnswer === goldAnswer) return { equal: true, reason: "string", pred: predAnswer, gold: goldAnswer };
  const decimalComma = !settings.extraction.includes("latex");
  const p = normalizeAnswer(predAnswer, { decimalComma });
  const g = normalizeAnswer(goldAnswer, { decimalComma });
  p.latex = statedValue(p.latex);
  g.latex = statedValue(g.latex);
  const verdict = (equal: boolean, reason: string): Verdict => ({ equal, reason, pred: p.latex, gold: g.latex });
  const invalid = p.invalid ?? g.invalid;
  if (invalid) return verdict(false, invalid);
  if (nestingDepth(p.latex) > MAX_DEPTH || nestingDepth(g.latex) > MAX_DEPTH) return verdict(false, `nested deeper than ${MAX_DEPTH} levels`);
  // `x = 5` against `5` compares the values, and so does a predicted `\frac12 = \frac{10}{9}` (its
  // last side); `y = 2x + 1` against `y - 2x - 1 = 0` compares the equations.
  const predEquation = p.latex.includes("=");
  const goldEquation = g.latex.includes("=");
  if (!(predEquation && goldEquation)) {
    const equals = topLevel(p.latex, "=");
    if (!goldEquation && equals.length === 1 && topLevel(p.latex, ",").length === 0) p.latex = p.latex.slice((equals[0] as number) + 1).trim();
    else p.latex = stripVariablePrefix(p.latex);
    g.latex = stripVariablePrefix(g.latex);
  }
  const stripNames = !(predEquation && goldEquation);
  if (p.percent !== g.percent) {
    if (settings.percent === "strict") return verdict(false, "percent sign on one side only");
    return comparePercent(p, g, settings, stripNames, verdict);
  }
  return compareNormalized(p.latex, g.latex, settings, stripNames, verdict);
}

/**
 * One side carries a percent sign. `10\%` equals `10` written without the sign (mode "ignore",
 * the default) and, in every mode but "strict", its value `0.1` (`\frac{1}{10}`); `0.5\%` is not `\frac12`.
 */
function comparePercent(
  p: NormalizedAnswer,
  g: NormalizedAnswer,
  settings: Required<CompareOptions>,
  stripNames: boolean,
  verdict: (equal: boolean, reason: string) => Verdict,
): Verdict {
  const plain = /^-?\d+(?:\.\d+)?$/;
  const [withSign, without] = p.percent ? [p, g] : [g, p];
  if (settings.percent === "ignore" && (withSign.latex === without.latex || (plain.test(withSign.latex) && plain.test(without.latex)))) {
    const signDropped = compareNormalized(p.latex, g.latex, settings, stripNames, verdict);
    if (signDropped.equal) return verdict(true, "percent sign dropped");
  }
  const fraction = `\\frac{${withSign.latex}}{100}`;
  const asFraction = p.percent
    ? compareNormalized(fraction, g.latex, settings, stripNames, verdict)
    : compareNormalized(p.latex, fraction, settings, stripNames, verdict);
  return asFraction.equal ? verdict(true, "percent") : verdict(false, asFraction.reason);
}

function compareNormalized(
  pred: string,
  gold: string,
  settings: Required<CompareOptions>,
  stripNames: boolean,
  verdict: (equal: boolean, reason: string) => Verdict,
): Verdict {
  if (pred === gold) return verdict(true, "string");
  if (pred.toLowerCase() === gold.toLowerCase() && !/\d/.test(pred) && !/\\/.test(pred)) return verdict(true, "text");
  const context: Context = { options: settings };
  try {
    const rule = answersEqual(parseAnswer(pred, stripNames), parseAnswer(gold, stripNames), context);
    return rule === null ? verdict(false, "different") : verdict(true, rule);
  } catch (error) {
    if (error instanceof Incomparable) return verdict(false, error.message);
    // A long flat chain (`----...1`, `1+1+...+1`) can exhaust the stack of the LaTeX parser.
    if (error instanceof RangeError) return verdict(false, `too complex to compare: ${error.message}`);
    throw error;
  }
}
