/**
 * Compute efficiency against a reference strategy (normally PRM-weighted best-of-N), as Snell et al.
 * 2024 measure it: for a strategy S at budget B with accuracy a, how much compute the reference needs
 * to reach a, divided by the compute S spent at B (its mean generations per problem, so that
 * compute-optimal's difficulty-estimate samples count). The same ratio is given in generated tokens.
 *
 * The reference is measured at a few budgets only: its need is read off its accuracy curve by linear
 * interpolation in log2(compute) between the two measured points that first bracket a. Outside the
 * measured range only a bound is known.
 *
 * Each ratio comes with a 95% percentile bootstrap interval over problems: the problems that every
 * cell involved (the reference at each budget, the strategy at its budget) ran are resampled with
 * replacement, every mean is recomputed on the resample and the ratio read off as above. A resample
 * whose ratio is only a bound contributes the whole range the bound allows (a lower bound up to
 * infinity, an upper bound down to 0), so the interval covers both the problems' noise and the
 * reference's coarse grid. An interval that includes 1x is within noise: the problems do not tell
 * the strategy's efficiency from the reference's. A handful of tied problems can make a point
 * estimate of 16x; its interval shows it.
 */
import { z } from "zod";
import type { BenchResult } from "../bench/results.js";
import { InputError } from "../errors.js";
import { Random } from "../random.js";
import type { RunInfo } from "./load.js";
import { percentileInterval, perProblem, type BootstrapOptions, type Summary } from "./stats.js";

/**
 * How the reference's need relates to the true one: `at-most` when its smallest measured budget
 * already reaches a (so the ratio is an upper bound), `at-least` when its largest does not (a lower bound).
 */
export type Bound = "exact" | "at-most" | "at-least";

export interface EfficiencyRow {
  reference: string;
  strategy: string;
  budget: number;
  /** S's accuracy at `budget`. */
  accuracy: number;
  /** What S spent at `budget`: mean generations and generated tokens per problem. */
  generations: number;
  generatedTokens: number | null;
  /** The reference's mean generations per problem needed to reach `accuracy` (a bound unless `exact`). */
  referenceBudgetNeeded: number;
  /** The same in generated tokens; null when a side has no token counts. */
  referenceTokensNeeded: number | null;
  bound: Bound;
  /** referenceBudgetNeeded / generations: how many times more compute the reference needs. */
  generationsRatio: number;
  tokensRatio: number | null;
  /** 95% bootstrap intervals of the ratios over problems; null when no problem ran in every cell involved (or, for tokens, a side has no token counts). */
  generationsInterval: RatioInterval | null;
  tokensInterval: RatioInterval | null;
}

/** A percentile bootstrap interval of a ratio; `withinNoise` when it includes 1x. */
export interface RatioInterval {
  low: number;
  /** Null when unbounded: the reference's largest budget did not reach the strategy's accuracy in enough resamples. */
  high: number | null;
  withinNoise: boolean;
  /** The problems resampled: those that every cell involved ran. */
  problems: number;
}

export interface Efficiency {
  /** The reference strategy's label; null when there is none. */
  reference: string | null;
  /** Why there are no rows (a sentence for the report's notes); null when there are. */
  missing: string | null;
  rows: EfficiencyRow[];
}

/** The efficiency section of a report: against `requested`, or the default reference when not given. */
export function measureEfficiency(
  summary: Summary,
  results: readonly BenchResult[],
  runs: readonly RunInfo[],
  requested: string | undefined,
): Efficiency {
  const { reference, missing } = chooseReference(results, runs, requested);
  return reference === null ? { reference, missing, rows: [] } : compareWithReference(summary, results, reference);
}

/**
 * The reference: `requested` when given (it must be a strategy of the runs), else the one best-of-n
 * configuration that selects by weighted vote. Null, with the reason, when there is no single one.
 */
export function chooseReference(
  results: readonly BenchResult[],
  runs: readonly RunInfo[],
  requested: string | undefined,
): { reference: string | null; missing: string | null } {
  const strategies = [...new Set(results.map((result) => result.strategy))].sort();
  if (requested !== undefined) {
    if (!strategies.includes(requested)) {
      throw new InputError(`reference strategy ${requested} is not in the runs; their strategies: ${strategies.join(", ")}`);
    }
    return { reference: requested, missing: null };
  }
  const bestOfN = strategies.filter((label) => results.some((result) => result.strategy === label && result.strategyName === "best-of-n"));
  const weighted = bestOfN.filter((label) => isWeighted(label, runs));
  if (weighted.length === 1) return { reference: weighted[0] as string, missing: null };
  const choose = "name the reference with --reference <label>";
  return {
    reference: null,
    missing:
      weighted.length === 0
        ? `No compute-efficiency section: no best-of-n configuration with weighted selection in the runs; ${choose}.`
        : `No compute-efficiency section: several weighted best-of-n configurations (${weighted.join(", ")}); ${choose}.`,
  };
}

const configStrategies = z.object({
  experiment: z.object({
    strategies: z.array(z.looseObject({ label: z.string(), params: z.looseObject({ select: z.unknown().optional() }).optional() })),
  }),
});

/**
 * Whether a best-of-n label selects by weighted vote: what the runs' config.json files say (weighted
 * is the default selection), or, with no config naming it, whether its label says so.
 */
function isWeighted(label: string, runs: readonly RunInfo[]): boolean {
  const selections = new Set<unknown>();
  for (const run of runs) {
    const parsed = configStrategies.safeParse(run.config);
    if (!parsed.success) continue;
    for (const entry of parsed.data.experiment.strategies) {
      if (entry.label === label) selections.add(entry.params?.select ?? "weighted");
    }
  }
  if (selections.size === 0) return label === "best-of-n" || label === "best-of-n-weighted";
  return selections.size === 1 && selections.has("weighted");
}

/** One row per other strategy and budget that the reference also ran. */
export function compareWithReference(summary: Summary, results: readonly BenchResult[], reference: string): Efficiency {
  // The reference's curve, in budget order; a cell with no compute report cannot be placed on it.
  const curve = summary.cells.filter((cell) => cell.strategy === reference && (cell.meanGenerations ?? 0) > 0);
  if (curve.length === 0) {
    return { reference, missing: `No compute-efficiency section: the reference ${reference} has no compute report.`, rows: [] };
  }
  const tokensKnown = curve.every((cell) => (cell.meanGeneratedTokens ?? 0) > 0);
  const perCell = perProblemValues(results);
  const valuesOf = (strategy: string, budget: number) => perCell.get(JSON.stringify([strategy, budget])) as PerProblemValues;
  const referenceValues = curve.map((point) => valuesOf(reference, point.budget));

  const rows: EfficiencyRow[] = [];
  for (const cell of summary.cells) {
    if (cell.strategy === reference || !curve.some((point) => point.budget === cell.budget)) continue;
    const generations = cell.meanGenerations ?? 0;
    if (generations <= 0) continue;
    const needed = computeToReach(
      curve.map((point) => ({ accuracy: point.accuracy, compute: point.meanGenerations as number })),
      cell.accuracy,
    );
    const tokens = tokensKnown && (cell.meanGeneratedTokens ?? 0) > 0 ? (cell.meanGeneratedTokens as number) : null;
    const tokensNeeded =
      tokens === null ? null : computeToReach(curve.map((point) => ({ accuracy: point.accuracy, compute: point.meanGeneratedTokens as number })), cell.accuracy).value;
    const values = valuesOf(cell.strategy, cell.budget);
    rows.push({
      reference,
      strategy: cell.strategy,
      budget: cell.budget,
      accuracy: cell.accuracy,
      generations,
      generatedTokens: tokens,
      referenceBudgetNeeded: needed.value,
      referenceTokensNeeded: tokensNeeded,
      bound: needed.bound,
      generationsRatio: needed.value / generations,
      tokensRatio: tokens === null || tokensNeeded === null ? null : tokensNeeded / tokens,
      generationsInterval: bootstrapRatio(referenceValues, values, "generations", summary.bootstrap),
      tokensInterval: tokens === null ? null : bootstrapRatio(referenceValues, values, "tokens", summary.bootstrap),
    });
  }
  const missing = rows.length > 0 ? null : `No compute-efficiency section: no other strategy ran at a budget that ${reference} ran at.`;
  return { reference, missing, rows };
}

/** One cell's per-problem values (seeds averaged per problem), by problem id. */
interface PerProblemValues {
  accuracy: Map<string, number>;
  generations: Map<string, number>;
  tokens: Map<string, number>;
}

/** Every (strategy, budget) cell's per-problem values, keyed by JSON [strategy, budget]. */
function perProblemValues(results: readonly BenchResult[]): Map<string, PerProblemValues> {
  const byCell = new Map<string, BenchResult[]>();
  for (const result of results) {
    const key = JSON.stringify([result.strategy, result.budget]);
    const items = byCell.get(key);
    if (items === undefined) byCell.set(key, [result]);
    else items.push(result);
  }
  return new Map(
    [...byCell].map(([key, items]) => [
      key,
      {
        accuracy: perProblem(items, (item) => (item.correct ? 1 : 0)),
        generations: perProblem(items, (item) => item.compute?.generations ?? null),
        tokens: perProblem(items, (item) => item.compute?.generatedTokens ?? null),
      },
    ]),
  );
}

/**
 * The percentile bootstrap interval of the ratio (the reference's need for the strategy's accuracy
 * over the strategy's spend, in `measure`) over the problems that every cell ran with that measure.
 */
function bootstrapRatio(
  referenceCurve: readonly PerProblemValues[],
  strategy: PerProblemValues,
  measure: "generations" | "tokens",
  options: BootstrapOptions,
): RatioInterval | null {
  const cells = [...referenceCurve, strategy];
  const problems = [...strategy.accuracy.keys()].filter((id) => cells.every((cell) => cell.accuracy.has(id) && cell[measure].has(id)));
  if (problems.length === 0) return null;
  const column = (values: Map<string, number>) => Float64Array.from(problems, (id) => values.get(id) as number);
  const curve = referenceCurve.map((cell) => ({ accuracy: column(cell.accuracy), compute: column(cell[measure]) }));
  const own = { accuracy: column(strategy.accuracy), compute: column(strategy[measure]) };

  const random = new Random(options.seed);
  const n = problems.length;
  // Per resample, the lowest and highest ratio it allows (equal unless the ratio is a bound).
  const lows = new Float64Array(options.resamples);
  const highs = new Float64Array(options.resamples);
  const drawn = new Int32Array(n);
  const meanOver = (values: Float64Array) => drawn.reduce((sum, index) => sum + (values[index] as number), 0) / n;
  for (let r = 0; r < options.resamples; r++) {
    for (let i = 0; i < n; i++) drawn[i] = random.int(0, n - 1);
    const resampledCurve = curve.map((point) => ({ accuracy: meanOver(point.accuracy), compute: meanOver(point.compute) }));
    const needed = computeToReach(resampledCurve, meanOver(own.accuracy));
    const ratio = needed.value / meanOver(own.compute);
    lows[r] = needed.bound === "at-most" ? 0 : ratio;
    highs[r] = needed.bound === "at-least" ? Number.POSITIVE_INFINITY : ratio;
  }
  const [low] = percentileInterval(lows);
  const [, high] = percentileInterval(highs);
  return { low, high: Number.isFinite(high) ? high : null, withinNoise: low <= 1 + EPSILON && high >= 1 - EPSILON, problems: n };
}

// Accuracies are means of fractions computed in different orders: equal values may differ in the last bits.
const EPSILON = 1e-9;

/**
 * The compute at which the curve (points in budget order) first reaches `accuracy`: interpolated
 * linearly in log2(compute) between the last point below it and the first at or above it.
 */
function computeToReach(curve: readonly { accuracy: number; compute: number }[], accuracy: number): { value: number; bound: Bound } {
  const first = curve[0];
  if (first === undefined) throw new Error("empty reference curve");
  if (accuracy <= first.accuracy + EPSILON) return { value: first.compute, bound: "at-most" };
  const reached = curve.findIndex((point) => point.accuracy >= accuracy - EPSILON);
  if (reached === -1) return { value: (curve[curve.length - 1] as (typeof curve)[number]).compute, bound: "at-least" };
  const below = curve[reached - 1] as (typeof curve)[number];
  const above = curve[reached] as (typeof curve)[number];
  const t = Math.min(1, Math.max(0, (accuracy - below.accuracy) / (above.accuracy - below.accuracy)));
  const log2 = Math.log2(below.compute) + t * (Math.log2(above.compute) - Math.log2(below.compute));
  return { value: 2 ** log2, bound: "exact" };
}
