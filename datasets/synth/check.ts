/**
 * The rule-based step checker for synthetic problems. A solution is split into steps on blank
 * lines; every step is either an equation chain `e1 = e2 = ...` (correct iff all sides are equal in
 * exact arithmetic, with x set to the problem's own solution) or an answer step holding `\boxed{}`
 * (correct iff the boxed answer equals the true answer, computed from the problem text).
 *
 * A step of a `Compute` problem must also be grounded: every number on its first side (an integer or
 * a fraction `a/b` as written, a sign attached to it included) must equal, in value, a number of the
 * problem or of an earlier step. So `6613 + 410 = 7023`, a true step where the problem has `+ 401`,
 * is the wrong step it is (a process label, as PRM800K's raters would give it), not a right step
 * followed by a wrong answer. `Solve for x` steps need no such rule: each is checked at the
 * problem's own x, so a line copied wrong is already false there.
 */
import { evaluate, ExpressionError } from "./expression.js";
import { Rational } from "./rational.js";
import { lastBoxed } from "../answer/extract.js";

export interface StepCheck {
  text: string;
  correct: boolean;
  /** Why the step is incorrect. */
  reason?: string;
}

export interface SolutionCheck {
  steps: StepCheck[];
  /** prefixCorrect[i]: steps 0..i are all correct (the process reward model's training target). */
  prefixCorrect: boolean[];
  /** The content of the last `\boxed{}` in the solution, or null. */
  answer: string | null;
  /** Whether `answer` is right; null when neither the problem nor a gold answer tells the truth. */
  answerCorrect: boolean | null;
  allStepsCorrect: boolean;
}

/** What the checker knows about a problem from its text alone. */
interface ProblemTruth {
  /** The value of x for "Solve for x:" problems. */
  x?: Rational;
  /** The true final answer, when the problem is one the checker can solve. */
  answer?: Rational;
}

/** Steps are paragraphs; blank and whitespace-only paragraphs (e.g. after a trailing "\n\n") are not steps. */
export function splitSteps(solution: string): string[] {
  return solution
    .split("\n\n")
    .map((step) => step.trim())
    .filter((step) => step !== "");
}

const INTEGER = /^-?\d+$/;
const SLASH = /^(-?\d+)\/(-?\d+)$/;
const FRAC = /^(-?)\\d?frac\{(-?\d+)\}\{(-?\d+)\}$/;

/** Parses an answer written as `7`, `-7`, `3/4`, `\frac{3}{4}`, `-\frac{3}{4}`; null otherwise. */
export function parseAnswer(answer: string): Rational | null {
  const text = answer.replace(/\s+/g, "");
  try {
    if (INTEGER.test(text)) return Rational.from(BigInt(text));
    const slash = SLASH.exec(text);
    if (slash) return Rational.from(BigInt(slash[1] as string), BigInt(slash[2] as string));
    const frac = FRAC.exec(text);
    if (frac) {
      const value = Rational.from(BigInt(frac[2] as string), BigInt(frac[3] as string));
      return frac[1] === "-" ? value.neg() : value;
    }
  } catch {
    // A zero denominator: not a number.
  }
  return null;
}

const COMPUTE = /^Compute (.+)\.$/;
const SOLVE = /^Solve for x: (.+)\.$/;

/** Works out the true answer (and x) of a synthetic problem; empty when the text is not one. */
function solveProblem(problem: string): ProblemTruth {
  const text = problem.trim();
  try {
    const compute = COMPUTE.exec(text);
    if (compute) return { answer: evaluate(compute[1] as string) };
    const solve = SOLVE.exec(text);
    if (solve) {
      const sides = (solve[1] as string).split("=");
      if (sides.length !== 2) return {};
      const [left, right] = sides as [string, string];
      // f(x) = left - right is linear iff f(2) - f(1) = f(1) - f(0); its root is -f(0) / slope.
      const f = (x: number) => evaluate(left, Rational.of(x)).sub(evaluate(right, Rational.of(x)));
      const [f0, f1, f2] = [f(0), f(1), f(2)];
      const slope = f1.sub(f0);
      if (slope.isZero() || !f2.sub(f1).equals(slope)) return {};
      const x = f0.neg().div(slope);
      return { x, answer: x };
    }
  } catch (error) {
    if (!(error instanceof ExpressionError)) throw error;
  }
  return {};
}

// Many samples share a problem: solve each problem text once. Bounded so a long stream cannot grow it.
const truthCache = new Map<string, ProblemTruth>();
const CACHE_LIMIT = 100_000;

function truthOf(problem: string): ProblemTruth {
  let truth = truthCache.get(problem);
  if (truth === undefined) {
    if (truthCache.size >= CACHE_LIMIT) truthCache.clear();
    truth = solveProblem(problem);
    truthCache.set(problem, truth);
  }
  return truth;
}

/** Numbers as written: `-104`, `73/15`; not the operator in `5 - 3`, nor digits of a decimal. */
const NUMBER = /(?<![\d/.-])-?\d+(?:\/\d+)?(?![\d/]|\.\d)/g;

/** The values of the numbers written in `text` (one with a zero denominator is left out). */
function numbersIn(text: string): string[] {
  const values: string[] = [];
  for (const [written] of text.matchAll(NUMBER)) {
    const [num, den = "1"] = written.split("/") as [string, string?];
    if (BigInt(den) !== 0n) values.push(Rational.from(BigInt(num), BigInt(den)).toString());
  }
  return values;
}

/** The first number on a step's first side that appears nowhere before it (see the module comment). */
function ungrounded(step: string, seen: ReadonlySet<string>): string | undefined {
  const firstSide = step.split("=")[0] as string;
  return numbersIn(firstSide).find((value) => !seen.has(value));
}

function checkEquation(step: string, x: Rational | undefined): StepCheck {
  const sides = step.split("=");
  if (sides.length < 2) return { text: step, correct: false, reason: "not an equation (no '=')" };
  let first: Rational | undefined;
  for (const [index, side] of sides.entries()) {
    let value: Rational;
    try {
      value = evaluate(side, x);
    } catch (error) {
      if (!(error instanceof ExpressionError)) throw error;
      return { text: step, correct: false, reason: `side ${index + 1} does not parse: ${error.message}` };
    }
    if (first === undefined) first = value;
    else if (!value.equals(first)) {
      return { text: step, correct: false, reason: `side ${index + 1} is ${value} but side 1 is ${first}` };
    }
  }
  return { text: step, correct: true };
}

/** Whether `predicted` matches the truth and the gold answer, each where known; null when neither is. */
function judgeAnswer(predicted: string | null, truth: Rational | undefined, gold: string | undefined): boolean | null {
  if (truth === undefined && gold === undefined) return null;
  if (predicted === null) return false;
  const value = parseAnswer(predicted);
  if (truth !== undefined && (value === null || !value.equals(truth))) return false;
  if (gold !== undefined) {
    const goldValue = parseAnswer(gold);
    if (goldValue === null) return predicted.replace(/\s+/g, "") === gold.replace(/\s+/g, "");
    return value !== null && value.equals(goldValue);
  }
  return true;
}

function checkAnswerStep(step: string, truth: Rational | undefined, gold: string | undefined): StepCheck {
  const boxed = lastBoxed(step);
  if (boxed === null) return { text: step, correct: false, reason: "no complete \\boxed{...}" };
  const verdict = judgeAnswer(boxed, truth, gold);
  if (verdict === null) return { text: step, correct: false, reason: "the true answer of this problem is unknown" };
  if (!verdict) {
    const expected = truth !== undefined ? truth.toLatex() : gold;
    const reason = parseAnswer(boxed) === null ? `answer ${boxed} is not a number` : `answer ${boxed} is wrong (expected ${expected})`;
    return { text: step, correct: false, reason };
  }
  return { text: step, correct: true };
}

/**
 * Checks every step of `solution` against `problem`. The truth comes from the problem text itself;
 * when `goldAnswer` is given, the final answer must also equal it.
 */
export function checkSolution(problem: string, solution: string, goldAnswer?: string): SolutionCheck {
  const steps = checkSteps(problem, splitSteps(solution), goldAnswer);
  const prefixCorrect: boolean[] = [];
  let allCorrect = true;
  for (const step of steps) {
    allCorrect &&= step.correct;
    prefixCorrect.push(allCorrect);
  }
  const answer = lastBoxed(solution);
  return {
    steps,
    prefixCorrect,
    answer,
    answerCorrect: judgeAnswer(answer, truthOf(problem).answer, goldAnswer),
    allStepsCorrect: steps.length > 0 && allCorrect,
  };
}

/**
 * Checks each of `steps` as given (each one step, none split further; an empty one is wrong), in
 * order, so that a step is grounded in the problem and the steps before it (see the module comment).
 */
export function checkSteps(problem: string, steps: readonly string[], goldAnswer?: string): StepCheck[] {
  const truth = truthOf(problem);
  const seen = COMPUTE.test(problem.trim()) ? new Set(numbersIn(problem)) : undefined;
  return steps.map((step) => {
    if (step.includes("\\boxed")) return checkAnswerStep(step, truth.answer, goldAnswer);
    let check = checkEquation(step, truth.x);
    if (seen !== undefined) {
      const copied = check.correct ? ungrounded(step, seen) : undefined;
      if (copied !== undefined) {
        check = { text: step, correct: false, reason: `${copied} is in neither the problem nor an earlier step` };
      }
      for (const value of numbersIn(step)) seen.add(value);
    }
    return check;
  });
}
