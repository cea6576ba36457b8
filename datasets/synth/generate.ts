/**
 * The synthetic MATH-shaped task: short plain-ASCII problems in three subjects whose difficulty
 * rises with the level (1-5), with gold solutions written one checkable step per paragraph.
 *
 * Each level mixes subjects in a fixed cycle: Arithmetic, Arithmetic, Fractions, Linear Equations
 * (50% / 25% / 25%). Problems belong to a split by a hash of their text, so a split's generator
 * only keeps problems that hash to it and no test problem can ever appear in train.
 */
import { InputError } from "../../src/errors.js";
import { Random } from "../../src/random.js";
import { Rational } from "./rational.js";

export const SPLITS = ["train", "calibration", "test"] as const;
export type Split = (typeof SPLITS)[number];

export const SUBJECTS = ["Arithmetic", "Fractions", "Linear Equations"] as const;
export type Subject = (typeof SUBJECTS)[number];

export const LEVELS = [1, 2, 3, 4, 5] as const;

/** One problem in the MATH JSONL schema. */
export interface SynthProblem {
  problem: string;
  solution: string;
  answer: string;
  subject: Subject;
  level: number;
  unique_id: string;
}

type Range = readonly [number, number];

interface ArithmeticKnobs {
  ops: number;
  add: Range;
  mul: Range;
  cap: number;
}
interface FractionKnobs {
  terms: number;
  den: Range;
  num: Range;
  sameDen: boolean;
  maxCommon: number;
}
interface LinearKnobs {
  shape: "one-sided" | "two-sided" | "two-sided-any" | "distribute";
  coef: Range;
  x: Range;
  constant: Range;
}

/**
 * Arithmetic: a left-to-right chain of `ops` operations. `add` bounds the first number and the
 * operands of + and -, `mul` the operands of *; a * that would push |value| past `cap` becomes a
 * + or - so numbers stay short. Ranges are wide enough that every split has thousands of
 * distinct problems at level 1 (the test split holds 1/20 of them).
 */
const ARITHMETIC_LADDER_1 = [
  { ops: 1, add: [1, 99], mul: [2, 9], cap: 1_000 },
  { ops: 2, add: [2, 99], mul: [2, 12], cap: 2_000 },
  { ops: 3, add: [2, 199], mul: [2, 12], cap: 10_000 },
  { ops: 4, add: [10, 499], mul: [2, 25], cap: 50_000 },
  { ops: 5, add: [10, 999], mul: [2, 25], cap: 200_000 },
] as const satisfies readonly ArithmeticKnobs[];

/**
 * Fractions: `terms` fractions joined by + or -, combined left to right (convert to the common
 * denominator, combine, simplify). Level 1 uses one shared denominator; above it, terms are
 * reduced fractions and a problem whose common denominator exceeds `maxCommon` is redrawn.
 */
const FRACTION_LADDER_1 = [
  { terms: 2, den: [2, 20], num: [1, 20], sameDen: true, maxCommon: 20 },
  { terms: 2, den: [2, 12], num: [1, 20], sameDen: false, maxCommon: 132 },
  { terms: 2, den: [2, 15], num: [1, 30], sameDen: false, maxCommon: 210 },
  { terms: 3, den: [2, 12], num: [1, 15], sameDen: false, maxCommon: 360 },
  { terms: 4, den: [2, 15], num: [1, 20], sameDen: false, maxCommon: 840 },
] as const satisfies readonly FractionKnobs[];

/**
 * Linear equations with an integer solution in `x`. Shapes: `ax + b = d` (levels 1-2),
 * `ax + b = cx + d` with a > c (level 3) or any a != c (level 4), `a(x + k) = cx + d` with a >= 2
 * (level 5). `coef` bounds a and c, `constant` bounds |b| (|k| at level 5), `x` the solution.
 */
const LINEAR_LADDER_1 = [
  { shape: "one-sided", coef: [2, 9], x: [1, 20], constant: [1, 50] },
  { shape: "one-sided", coef: [2, 12], x: [-20, 20], constant: [1, 99] },
  { shape: "two-sided", coef: [1, 12], x: [-10, 10], constant: [1, 50] },
  { shape: "two-sided-any", coef: [1, 15], x: [-20, 20], constant: [1, 99] },
  { shape: "distribute", coef: [1, 15], x: [-20, 20], constant: [1, 20] },
] as const satisfies readonly LinearKnobs[];

/**
 * Ladder 2's knobs: the same kinds of problem as ladder 1, moved up so that its level 1 sits near
 * ladder 1's level 3-4 and its level 5 near ladder 1's level 5 (larger distributed equations).
 */
const ARITHMETIC_LADDER_2 = [
  { ops: 3, add: [10, 499], mul: [2, 25], cap: 50_000 },
  { ops: 4, add: [10, 499], mul: [2, 25], cap: 50_000 },
  { ops: 4, add: [10, 999], mul: [2, 25], cap: 100_000 },
  { ops: 5, add: [10, 499], mul: [2, 25], cap: 100_000 },
  { ops: 5, add: [10, 999], mul: [2, 25], cap: 200_000 },
] as const satisfies readonly ArithmeticKnobs[];

const FRACTION_LADDER_2 = [
  { terms: 2, den: [2, 15], num: [1, 30], sameDen: false, maxCommon: 210 },
  { terms: 3, den: [2, 10], num: [1, 12], sameDen: false, maxCommon: 240 },
  { terms: 3, den: [2, 12], num: [1, 15], sameDen: false, maxCommon: 360 },
  { terms: 3, den: [2, 15], num: [1, 20], sameDen: false, maxCommon: 420 },
  { terms: 4, den: [2, 12], num: [1, 15], sameDen: false, maxCommon: 420 },
] as const satisfies readonly FractionKnobs[];

const LINEAR_LADDER_2 = [
  { shape: "two-sided-any", coef: [1, 12], x: [-10, 10], constant: [1, 50] },
  { shape: "two-sided-any", coef: [1, 15], x: [-20, 20], constant: [1, 99] },
  { shape: "distribute", coef: [1, 15], x: [-20, 20], constant: [1, 20] },
  { shape: "distribute", coef: [1, 15], x: [-20, 20], constant: [1, 30] },
  { shape: "distribute", coef: [1, 20], x: [-25, 25], constant: [1, 30] },
] as const satisfies readonly LinearKnobs[];

/** A difficulty ladder: the knobs of each subject at levels 1-5. */
export interface Ladder {
  Arithmetic: readonly ArithmeticKnobs[];
  Fractions: readonly FractionKnobs[];
  "Linear Equations": readonly LinearKnobs[];
}

/**
 * Ladder 1 was drawn for the first-generation policy (deliberate-griffin-policy): greedy 80.6% at level 1, but
 * arithmetic and fractions at level 5 leave search nothing to find (oracle pass@16 under 1%).
 * Ladder 2 was drawn for the second-generation policy (trained on a GPU; models/README.md, "The
 * difficulty ladder"): level 1 greedy about 80%, and every subject at level 5 with pass@1 above 3% and
 * oracle pass@16 above 25%, so that search has something to find at every level.
 */
export const LADDERS = {
  1: { Arithmetic: ARITHMETIC_LADDER_1, Fractions: FRACTION_LADDER_1, "Linear Equations": LINEAR_LADDER_1 },
  2: { Arithmetic: ARITHMETIC_LADDER_2, Fractions: FRACTION_LADDER_2, "Linear Equations": LINEAR_LADDER_2 },
} as const satisfies Record<number, Ladder>;
export type LadderId = keyof typeof LADDERS;
export const LADDER_IDS = [1, 2] as const satisfies readonly LadderId[];
/** The ladder `data synth`, the bench and calibration draw from when none is named. */
export const DEFAULT_LADDER: LadderId = 2;

/** The subject of the j-th problem of a level: a fixed cycle gives an exact 50/25/25 mix. */
const SUBJECT_CYCLE: readonly Subject[] = ["Arithmetic", "Arithmetic", "Fractions", "Linear Equations"];

/** FNV-1a (32-bit) of the problem text; the split is fixed by the text alone. */
export function splitOf(problem: string): Split {
  let hash = 0x811c9dc5;
  for (let i = 0; i < problem.length; i++) {
    hash ^= problem.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  const bucket = hash % 20;
  return bucket === 0 ? "test" : bucket === 1 ? "calibration" : "train";
}

export interface SynthOptions {
  split: Split;
  seed: number;
  /** Number of problems, spread evenly over `levels` (interleaved: level of problem i is levels[i % k]). */
  n: number;
  /** Levels to draw from (default 1-5). */
  levels?: readonly number[];
  /** The difficulty ladder (default DEFAULT_LADDER). */
  ladder?: LadderId;
}

/** Draws before giving up on one more distinct problem of a (split, level, subject). */
const MAX_DRAWS = 20_000;

/**
 * Generates `n` distinct problems of one split. The same options always give the same problems,
 * and a smaller `n` gives a prefix of a larger one.
 */
export function generateSynth(options: SynthOptions): SynthProblem[] {
  const levels = options.levels ?? LEVELS;
  if (levels.length === 0 || levels.some((level) => !(LEVELS as readonly number[]).includes(level))) {
    throw new RangeError(`levels must be a non-empty list of 1-5, got [${levels.join(", ")}]`);
  }
  const ladder = options.ladder ?? DEFAULT_LADDER;
  if (!(LADDER_IDS as readonly number[]).includes(ladder)) throw new RangeError(`ladder must be one of ${LADDER_IDS.join(", ")}, got ${ladder}`);
  const random = new Random(options.seed);
  const seen = new Set<string>();
  const problems: SynthProblem[] = [];
  for (let i = 0; i < options.n; i++) {
    const level = levels[i % levels.length] as number;
    const subject = SUBJECT_CYCLE[Math.floor(i / levels.length) % SUBJECT_CYCLE.length] as Subject;
    const drawn = drawDistinct(random, LADDERS[ladder], subject, level, options.split, seen);
    seen.add(drawn.problem);
    problems.push({
      problem: drawn.problem,
      solution: drawn.steps.join("\n\n"),
      answer: drawn.answer,
      subject,
      level,
      // Ladder 1's ids are unchanged; another ladder's name it, so no run mixes two ladders' problems.
      unique_id: `synth/${ladder === 1 ? "" : `ladder-${ladder}/`}${options.split}/${options.seed}/${i}`,
    });
  }
  return problems;
}

interface Drawn {
  problem: string;
  steps: string[];
  answer: string;
}

function drawDistinct(random: Random, ladder: Ladder, subject: Subject, level: number, split: Split, seen: Set<string>): Drawn {
  for (let draw = 0; draw < MAX_DRAWS; draw++) {
    const drawn = drawProblem(random, ladder, subject, level);
    if (splitOf(drawn.problem) === split && !seen.has(drawn.problem)) return drawn;
  }
  throw new InputError(
    `cannot draw another distinct level-${level} ${subject} problem for the ${split} split ` +
      `(${seen.size} problems so far); ask for fewer problems`,
  );
}

function drawProblem(random: Random, ladder: Ladder, subject: Subject, level: number): Drawn {
  const index = level - 1;
  if (subject === "Arithmetic") return arithmetic(random, ladder.Arithmetic[index] as ArithmeticKnobs);
  if (subject === "Fractions") return fractions(random, ladder.Fractions[index] as FractionKnobs);
  return linear(random, ladder["Linear Equations"][index] as LinearKnobs);
}

const int = (random: Random, range: Range): number => random.int(range[0], range[1]);

function finalStep(answer: string): string {
  return `The answer is \\boxed{${answer}}`;
}

function arithmetic(random: Random, knobs: ArithmeticKnobs): Drawn {
  let value = int(random, knobs.add);
  let text = String(value);
  let lastOp = "";
  const steps: string[] = [];
  for (let k = 0; k < knobs.ops; k++) {
    let op = random.pick(["+", "-", "*"]);
    let operand = op === "*" ? int(random, knobs.mul) : int(random, knobs.add);
    if (op === "*" && Math.abs(value * operand) > knobs.cap) {
      op = random.pick(["+", "-"]);
      operand = int(random, knobs.add);
    }
    const next = op === "+" ? value + operand : op === "-" ? value - operand : value * operand;
    steps.push(`${value} ${op} ${operand} = ${next}`);
    // Only a product of a sum or difference needs parentheses in a left-to-right chain.
    text = op === "*" && (lastOp === "+" || lastOp === "-") ? `(${text}) * ${operand}` : `${text} ${op} ${operand}`;
    lastOp = op;
    value = next;
  }
  steps.push(finalStep(String(value)));
  return { problem: `Compute ${text}.`, steps, answer: String(value) };
}

function gcd(a: number, b: number): number {
  a = Math.abs(a);
  b = Math.abs(b);
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

const fraction = (num: number, den: number): string => (den === 1 ? String(num) : `${num}/${den}`);

function fractions(random: Random, knobs: FractionKnobs): Drawn {
  for (;;) {
    const drawn = tryFractions(random, knobs);
    if (drawn) return drawn;
  }
}

/** One attempt; undefined when a common denominator grows past the level's cap. */
function tryFractions(random: Random, knobs: FractionKnobs): Drawn | undefined {
  const shared = int(random, knobs.den);
  const terms: { num: number; den: number }[] = [];
  for (let t = 0; t < knobs.terms; t++) {
    const den = knobs.sameDen ? shared : int(random, knobs.den);
    let num = int(random, knobs.num);
    while (!knobs.sameDen && gcd(num, den) !== 1) num = int(random, knobs.num);
    terms.push({ num, den });
  }
  const ops = terms.slice(1).map(() => random.pick(["+", "-"]));
  const first = terms[0] as { num: number; den: number };
  let problem = fraction(first.num, first.den);
  let acc = { ...first };
  const steps: string[] = [];
  for (let t = 1; t < terms.length; t++) {
    const term = terms[t] as { num: number; den: number };
    const op = ops[t - 1] as string;
    problem += ` ${op} ${fraction(term.num, term.den)}`;
    const common = (acc.den * term.den) / gcd(acc.den, term.den);
    if (common > knobs.maxCommon) return undefined;
    const left = (acc.num * common) / acc.den;
    const right = (term.num * common) / term.den;
    const combined = op === "+" ? left + right : left - right;
    const before = `${fraction(acc.num, acc.den)} ${op} ${fraction(term.num, term.den)}`;
    if (acc.den === term.den) {
      steps.push(`${before} = ${combined}/${common}`);
    } else {
      steps.push(`${before} = ${left}/${common} ${op} ${right}/${common}`);
      steps.push(`${left}/${common} ${op} ${right}/${common} = ${combined}/${common}`);
    }
    const g = gcd(combined, common);
    if (g !== 1) steps.push(`${combined}/${common} = ${fraction(combined / g, common / g)}`);
    acc = { num: combined / g, den: common / g };
  }
  const answer = Rational.from(BigInt(acc.num), BigInt(acc.den)).toLatex();
  steps.push(finalStep(answer));
  return { problem: `Compute ${problem}.`, steps, answer };
}

/** `3x`, `x`, `-x`, `-3x`. */
function xTerm(coef: number): string {
  return coef === 1 ? "x" : coef === -1 ? "-x" : `${coef}x`;
}

/** A sum of signed terms written the usual way: `3x - 7`, `-x + 2`; zero terms dropped. */
function sum(terms: readonly { coef: number; x: boolean }[]): string {
  let out = "";
  for (const { coef, x } of terms) {
    if (coef === 0) continue;
    const body = x ? xTerm(Math.abs(coef)) : String(Math.abs(coef));
    out += out === "" ? (coef < 0 ? `-${body}` : body) : coef < 0 ? ` - ${body}` : ` + ${body}`;
  }
  return out === "" ? "0" : out;
}

const constant = (random: Random, range: Range): number => int(random, range) * random.pick([1, -1]);

function linear(random: Random, knobs: LinearKnobs): Drawn {
  for (;;) {
    const drawn = tryLinear(random, knobs);
    if (drawn) return drawn;
  }
}

/** One attempt at `ax + b = cx + d` (c = 0 when one-sided); undefined when d comes out 0. */
function tryLinear(random: Random, knobs: LinearKnobs): Drawn | undefined {
  const x = int(random, knobs.x);
  const distribute = knobs.shape === "distribute";
  const a = int(random, distribute ? [2, knobs.coef[1]] : knobs.coef);
  let c = 0;
  if (knobs.shape !== "one-sided") {
    c = int(random, knobs.coef);
    if (c === a || (knobs.shape === "two-sided" && c > a)) return undefined;
  }
  // In a(x + k) = cx + d the constant b = a * k is a multiple of a.
  const k = constant(random, knobs.constant);
  const b = distribute ? a * k : k;
  const d = (a - c) * x + b;
  if (d === 0) return undefined;

  const left = sum([{ coef: a, x: true }, { coef: b, x: false }]);
  const right = sum([{ coef: c, x: true }, { coef: d, x: false }]);
  const moved = sum([{ coef: d, x: false }, { coef: -b, x: false }]);
  const coef = a - c;
  const rhs = d - b;
  const steps: string[] = [];
  let problem = `${left} = ${right}`;
  if (distribute) {
    problem = `${a}(${sum([{ coef: 1, x: true }, { coef: k, x: false }])}) = ${right}`;
    steps.push(`${left} = ${right}`);
  }
  if (c === 0) {
    steps.push(`${xTerm(coef)} = ${moved} = ${rhs}`);
  } else {
    steps.push(`${sum([{ coef: a, x: true }, { coef: -c, x: true }])} = ${moved}`);
    steps.push(`${xTerm(coef)} = ${rhs}`);
  }
  if (coef !== 1) steps.push(`x = ${rhs} / ${coef < 0 ? `(${coef})` : coef} = ${x}`);
  steps.push(finalStep(String(x)));
  return { problem: `Solve for x: ${problem}.`, steps, answer: String(x) };
}
