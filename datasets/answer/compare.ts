/**
 * The equivalence rules for MATH answers, after Math-Verify: an answer is read into a structure
 * (a set, a tuple or interval, a union, a matrix, a relation, an expression or text), and two
 * structures are compared part by part; expressions by value, numerically, with sampling of free
 * variables as the last resort for symbolic equality. This runs inside the grading worker, which
 * bounds its time; see grader.ts.
 */
import { ComputeEngine } from "@cortex-js/compute-engine";
import { evaluate, freeVariables, nodeCount, UnsupportedExpression, type MathJson } from "./evaluate.js";
import { normalizeAnswer, stripVariablePrefix } from "./normalize.js";
import { answerFromText } from "./extract.js";

export interface CompareOptions {
  /**
   * How a percent sign counts: "ignore" (default: `10\%` equals `10`, as in MATH), "fraction"
   * (`10\%` also equals `0.1`), "strict" (both must carry it or neither).
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
   * Whether a gold interval or set also accepts an inequality (`[-2, 7]` against `-2 \\le x \\le 7`).
   * A gold inequality always accepts the interval. Default false, as in Math-Verify.
   */
  allowSetRelationComparison?: boolean;
}

export interface Verdict {
  equal: boolean;
  /** Which rule decided, or why the comparison could not be made. */
  reason: string;
  /** The normalized forms that were compared (null when no answer was found). */
  pred: string | null;
  gold: string | null;
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

function parseAnswer(latex: string): Answer {
  const matrix = /^\\begin\{([pbvB]?matrix|array)\}(?:\{[^}]*\})?([\s\S]*)\\end\{\1\}$/.exec(latex);
  if (matrix) {
    const rows = (matrix[2] as string).split(/\\\\/).map((row) => row.trim()).filter((row) => row !== "");
    return { kind: "matrix", rows: rows.map((row) => row.split("&").map((cell) => parseAnswer(cell.trim()))) };
  }
  const union = splitTopLevel(latex, /^\\cup(?![a-zA-Z])/);
  if (union.length > 1) return { kind: "union", parts: union.map(parseAnswer) };

  if (latex.startsWith("\\{") && latex.endsWith("\\}") && enclosedWhole(latex, 2, 2)) {
    const inner = latex.slice(2, -2).trim();
    const items = inner === "" ? [] : splitTopLevel(inner, /^,/).map(parseAnswer);
    return { kind: "sequence", open: "{", close: "}", items };
  }
  const open = latex[0];
  const close = latex[latex.length - 1];
  if ((open === "(" || open === "[") && (close === ")" || close === "]") && enclosedWhole(latex, 1, 1)) {
    const items = splitTopLevel(latex.slice(1, -1), /^,/);
    if (items.length > 1) return { kind: "sequence", open, close, items: items.map(parseAnswer) };
  }
  const list = splitTopLevel(latex, /^,|^;/);
  if (list.length > 1) return { kind: "sequence", open: "", close: "", items: list.map(parseAnswer) };

  const pieces = splitTopLevel(latex, RELATION);
  if (pieces.length > 1) {
    const ops = [...latex.matchAll(/\\leq|\\geq|\\neq|<|>|=/g)].map((m) => m[0]);
    if (ops.length === pieces.length - 1) return orientRelation({ kind: "relation", ops, sides: pieces });
  }
  // 1 \pm \sqrt{2} is the pair of values 1 + \sqrt{2}, 1 - \sqrt{2}.
  const plusMinus = /\\(?:pm|mp)(?![a-zA-Z])/;
  if (plusMinus.test(latex)) {
    const items = [latex.replace(plusMinus, "+"), latex.replace(plusMinus, "-")];
    return { kind: "sequence", open: "", close: "", items: items.map(parseAnswer) };
  }
  if (/^(?:[A-Za-z][a-z]+)(?:\s[A-Za-z][a-z]+)*$/.test(latex) && !/^(?:[a-z])+$/.test(latex)) {
    return { kind: "text", text: latex.toLowerCase() };
  }
  return { kind: "expr", latex };
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

/** `x < 3` → `(-\infty, 3)`, `1 \leq x < 2` → `[1, 2)`: a one-variable inequality as an interval. */
function relationAsInterval(relation: Answer): Answer | null {
  if (relation.kind !== "relation") return null;
  const isVariable = (s: string) => /^(?:[a-zA-Z]|\\[a-zA-Z]+)$/.test(s);
  const bracket = (op: string, side: "open" | "close") =>
    op === "<" ? (side === "open" ? "(" : ")") : side === "open" ? "[" : "]";
  const expr = (latex: string): Answer => ({ kind: "expr", latex });
  const { ops, sides } = relation;
  if (!ops.every((op) => op === "<" || op === "\\leq")) return null;
  if (ops.length === 1 && isVariable(sides[0] as string)) {
    return { kind: "sequence", open: "(", close: bracket(ops[0] as string, "close"), items: [expr("-\\infty"), expr(sides[1] as string)] };
  }
  if (ops.length === 1 && isVariable(sides[1] as string)) {
    return { kind: "sequence", open: bracket(ops[0] as string, "open"), close: ")", items: [expr(sides[0] as string), expr("\\infty")] };
  }
  if (ops.length === 2 && isVariable(sides[1] as string)) {
    return {
      kind: "sequence",
      open: bracket(ops[0] as string, "open"),
      close: bracket(ops[1] as string, "close"),
      items: [expr(sides[0] as string), expr(sides[2] as string)],
    };
  }
  return null;
}

class Incomparable extends Error {}

function toJson(latex: string): MathJson {
  const parsed = ce().parse(latex);
  const json = parsed.json as MathJson;
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
  predPercent: boolean;
  goldPercent: boolean;
}

/** Values compared numerically; free variables are sampled at fixed points (symbolic equality). */
function expressionsEqual(a: string, b: string, context: Context): string | null {
  if (a === b) return "string";
  const left = toJson(a);
  const right = toJson(b);
  const hasDecimal = /\d\.\d/.test(a) || /\d\.\d/.test(b);
  const places = hasDecimal ? context.options.decimalPlaces : null;
  const variables = [...new Set([...freeVariables(left), ...freeVariables(right)])];
  try {
    if (variables.length === 0) {
      const x = evaluate(left, new Map());
      const y = evaluate(right, new Map());
      if (Number.isNaN(x) || Number.isNaN(y)) throw new Incomparable("not a real number");
      if (!Number.isFinite(x) && !Number.isFinite(y) && x !== y) return null;
      if ((!Number.isFinite(x) || !Number.isFinite(y)) && !/\\infty/.test(a + b)) {
        throw new Incomparable("overflow: a value is too large to compare");
      }
      if (closeRounded(x, y, places)) return "numeric";
      if (context.options.percent === "fraction") {
        if (context.predPercent && closeRounded(x / 100, y, places)) return "percent";
        if (context.goldPercent && closeRounded(x, y / 100, places)) return "percent";
      }
      return null;
    }
    let compared = 0;
    for (const point of SAMPLE_POINTS) {
      const values = new Map(variables.map((name, i) => [name, point + 0.379 * i]));
      const x = evaluate(left, values);
      const y = evaluate(right, values);
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

/** Equations are equal when their sides are, or when (lhs - rhs) agree up to a constant factor. */
function equationsEqual(a: string[], b: string[], context: Context): boolean {
  const [a0 = "", a1 = ""] = a;
  const [b0 = "", b1 = ""] = b;
  const sidesMatch = (x: string, y: string) => expressionsEqual(x, y, context) !== null;
  if ((sidesMatch(a0, b0) && sidesMatch(a1, b1)) || (sidesMatch(a0, b1) && sidesMatch(a1, b0))) return true;
  const left = toJson(`(${a0})-(${a1})`);
  const right = toJson(`(${b0})-(${b1})`);
  const variables = [...new Set([...freeVariables(left), ...freeVariables(right)])];
  let ratio: number | null = null;
  for (const point of SAMPLE_POINTS) {
    const values = new Map(variables.map((name, i) => [name, point + 0.379 * i]));
    const x = evaluate(left, values);
    const y = evaluate(right, values);
    if (!Number.isFinite(x) || !Number.isFinite(y) || Math.abs(y) < 1e-12) continue;
    if (ratio === null) ratio = x / y;
    else if (!close(x / y, ratio, 1e-8)) return false;
  }
  return ratio !== null && ratio !== 0;
}

/** The name of the rule that found `a` and `b` equal, or null when they differ. */
function answersEqual(a: Answer, b: Answer, context: Context): string | null {
  if (a.kind === "relation" && b.kind === "sequence") return answersEqual(relationAsInterval(a) ?? a, b, context);
  if (a.kind === "sequence" && b.kind === "relation") return answersEqual(a, relationAsInterval(b) ?? b, context);
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
      if (a.ops.length === 1 && a.ops[0] === "=") return equationsEqual(a.sides, other.sides, context) ? "equation" : null;
      const sides = (x: string[]) => x.map((latex): Answer => ({ kind: "expr", latex }));
      return orderedEqual(sides(a.sides), sides(other.sides), context) ? "relation" : null;
    }
    case "sequence": {
      const other = b as typeof a;
      // Sets, and lists written without brackets ("the solutions are 1, -2"), ignore order.
      const unordered = (s: typeof a) => s.open === "{" || s.open === "";
      if (unordered(a) || unordered(other)) {
        if (a.open === "{" && other.open === "{") return unorderedEqual(a.items, other.items, context) ? "set" : null;
        if (unorderedEqual(a.items, other.items, context)) return "set";
        return null;
      }
      if (a.open !== other.open || a.close !== other.close) return null;
      return orderedEqual(a.items, other.items, context) ? (a.open === a.close ? "tuple" : "interval") : null;
    }
  }
}

const DEFAULTS: Required<CompareOptions> = { percent: "ignore", decimalPlaces: 6, maxAnswerChars: 5_000 };

/**
 * Compares a predicted answer with a gold answer. Either may be a bare answer or a whole text
 * (a model's solution, prose with math), from which the answer is taken first. No time limit
 * here: call it through the Grader (grader.ts) for untrusted input.
 */
export function compareAnswers(pred: string, gold: string, options: CompareOptions = {}): Verdict {
  const settings = { ...DEFAULTS, ...options };
  const predAnswer = answerFromText(pred);
  const goldAnswer = answerFromText(gold);
  if (predAnswer === null || goldAnswer === null) {
    return { equal: false, reason: predAnswer === null ? "no answer in prediction" : "no answer in gold", pred: predAnswer, gold: goldAnswer };
  }
  if (predAnswer.length > settings.maxAnswerChars || goldAnswer.length > settings.maxAnswerChars) {
    return { equal: false, reason: `answer longer than ${settings.maxAnswerChars} characters`, pred: null, gold: null };
  }
  const p = normalizeAnswer(predAnswer);
  const g = normalizeAnswer(goldAnswer);
  // `x = 5` against `5` compares the values; `y = 2x + 1` against `y - 2x - 1 = 0` the equations.
  if (!(p.latex.includes("=") && g.latex.includes("="))) {
    p.latex = stripVariablePrefix(p.latex);
    g.latex = stripVariablePrefix(g.latex);
  }
  const verdict = (equal: boolean, reason: string): Verdict => ({ equal, reason, pred: p.latex, gold: g.latex });
  if (settings.percent === "strict" && p.percent !== g.percent) return verdict(false, "percent sign on one side only");
  if (p.latex === g.latex) return verdict(true, "string");
  if (p.latex.toLowerCase() === g.latex.toLowerCase() && !/\d/.test(p.latex) && !/\\/.test(p.latex)) {
    return verdict(true, "text");
  }
  const context: Context = { options: settings, predPercent: p.percent, goldPercent: g.percent };
  try {
    const rule = answersEqual(parseAnswer(p.latex), parseAnswer(g.latex), context);
    return rule === null ? verdict(false, "different") : verdict(true, rule);
  } catch (error) {
    if (error instanceof Incomparable) return verdict(false, error.message);
    throw error;
  }
}
