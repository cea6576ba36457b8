/**
 * `solve`: one problem through one strategy. Validates the strategy's parameters (budget included),
 * the limits and the sampling options, builds the strategy's context (seeded random source, compute
 * meter, cached answer equivalence) and runs it.
 */
import type { z } from "zod";
import { GradingError, gradingFailureMessage, isEquivalent, type Grader } from "../datasets/answer/grader.js";
import { getStrategy, type StrategyName } from "../strategies/registry.js";
import { cachedEquivalence } from "../verifiers/select.js";
import { describeZodError, InputError } from "./errors.js";
import { ComputeMeter } from "./meter.js";
import type { Policy, StepVerifier } from "./policy.js";
import { Random } from "./random.js";
import { limitsSchema, samplingSchema, type Limits, type Sampling, type Strategy, type StrategyContext, type StrategyResult } from "./strategy.js";

export interface SolveOptions {
  /** A strategy or its registered name (`best-of-n`, `beam`, `lookahead`, `dvts`, `revision`, `compute-optimal`). */
  strategy: StrategyName | Strategy;
  /** Budget N in generations. */
  budget: number;
  policy: Policy;
  /** The step verifier (PRM); only majority voting runs without one. */
  verifier?: StepVerifier | null;
  /** Seed of every random choice. Default 0. */
  seed?: number;
  /** The strategy's other parameters (`beamWidth`, `select`, `aggregate`, ...); defaults fill the rest. */
  params?: Record<string, unknown>;
  limits?: Partial<Limits>;
  sampling?: Partial<Sampling>;
  signal?: AbortSignal;
  /** Grades answer equivalence for voting. Default: the shared grader of `isEquivalent`. */
  grader?: Grader;
  /** The meter to count on (for instance one shared with a difficulty estimate). Default: a new one. */
  meter?: ComputeMeter;
  /** The problem's oracle pass rate, when known (compute-optimal with difficulty oracle needs it). */
  knownDifficulty?: { passRate: number };
  /** Told after every decoding round and scoring of the search. */
  onProgress?: StrategyContext["onProgress"];
}

export interface SolveResult extends StrategyResult {
  strategy: string;
  /** The validated parameters, defaults filled in. */
  params: unknown;
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new InputError(`invalid ${what}: ${describeZodError(parsed.error)}`);
  return parsed.data;
}

/** Refuses an empty (or blank) problem, which no strategy can answer. */
export function checkProblem(problem: string): void {
  if (problem.trim() === "") throw new InputError("the problem is empty: give the problem's text");
}

/** The context a strategy runs in: validated limits and sampling, a seeded random source, a meter, cached answer equivalence. */
export function strategyContext(options: Omit<SolveOptions, "strategy" | "budget" | "params">): StrategyContext {
  const { grader } = options;
  return {
    policy: options.policy,
    verifier: options.verifier ?? null,
    random: new Random(options.seed ?? 0),
    meter: options.meter ?? new ComputeMeter(),
    signal: options.signal,
    limits: parse(limitsSchema, options.limits ?? {}, "limits"),
    sampling: parse(samplingSchema, options.sampling ?? {}, "sampling options"),
    // A comparison that did not finish is no judgment: the vote would depend on the machine's load.
    equivalent: cachedEquivalence(async (a, b) => {
      const verdict = await (grader ? grader.grade(a, b) : isEquivalent(a, b));
      if (verdict.incomplete === true) throw new GradingError(gradingFailureMessage(verdict, "comparing two answers for the vote"));
      return verdict.equal;
    }),
    knownDifficulty: options.knownDifficulty,
    strategy: getStrategy,
    onProgress: options.onProgress,
  };
}

export async function solve(problem: string, options: SolveOptions): Promise<SolveResult> {
  checkProblem(problem);
  const strategy = typeof options.strategy === "string" ? getStrategy(options.strategy) : options.strategy;
  const params = parse(strategy.params, { ...options.params, budget: options.budget }, `${strategy.name} parameters`);
  const context = strategyContext(options);
  const verifierNeed = strategy.needsVerifier(params);
  if (verifierNeed !== null && !options.verifier) throw new InputError(`${verifierNeed} needs a step verifier (a PRM), and none was given`);
  const result = await strategy.run(problem, context, params);
  return { ...result, strategy: strategy.name, params };
}
