/**
 * Compute efficiency against a reference strategy (normally PRM-weighted best-of-N), as Snell et al.
 * 2024 measure it: for a strategy S at budget B with accuracy a, how much compute the reference needs
 * to reach a, divided by the compute S spent at B (its mean generations per problem, so that
 * compute-optimal's difficulty-estimate samples count). The same ratio is given in generated tokens.
 *
 * The reference is measured at a few budgets only: its need is read off its accuracy curve by linear
 * interpolation in log2(compute) between the two measured points that first bracket a. Outside the
 * measured range only a bound is known. All of it is a point estimate, with no confidence interval.
 */
import { z } from "zod";
import type { BenchResult } from "../bench/results.js";
import { InputError } from "../errors.js";
import type { RunInfo } from "./load.js";
import type { Cell, Summary } from "./stats.js";

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
  return reference === null ? { reference, missing, rows: [] } : compareWithReference(summary, reference);
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
export function compareWithReference(summary: Summary, reference: string): Efficiency {
  // The reference's curve, in budget order; a cell with no compute report cannot be placed on it.
  const curve = summary.cells.filter((cell) => cell.strategy === reference && (cell.meanGenerations ?? 0) > 0);
  if (curve.length === 0) {
    return { reference, missing: `No compute-efficiency section: the reference ${reference} has no compute report.`, rows: [] };
  }
  const tokensKnown = curve.every((cell) => (cell.meanGeneratedTokens ?? 0) > 0);

  const rows: EfficiencyRow[] = [];
  for (const cell of summary.cells) {
    if (cell.strategy === reference || !curve.some((point) => point.budget === cell.budget)) continue;
    const generations = cell.meanGenerations ?? 0;
    if (generations <= 0) continue;
    const needed = computeToReach(curve, cell.accuracy, (point) => point.meanGenerations as number);
    const tokens = tokensKnown && (cell.meanGeneratedTokens ?? 0) > 0 ? (cell.meanGeneratedTokens as number) : null;
    const tokensNeeded = tokens === null ? null : computeToReach(curve, cell.accuracy, (point) => point.meanGeneratedTokens as number).value;
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
    });
  }
  const missing = rows.length > 0 ? null : `No compute-efficiency section: no other strategy ran at a budget that ${reference} ran at.`;
  return { reference, missing, rows };
}

// Accuracies are means of fractions computed in different orders: equal values may differ in the last bits.
const EPSILON = 1e-9;

/**
 * The compute `x` at which the curve (points in budget order) first reaches `accuracy`: interpolated
 * linearly in log2(x) between the last point below it and the first at or above it.
 */
function computeToReach(
  curve: readonly Cell[],
  accuracy: number,
  x: (point: Cell) => number,
): { value: number; bound: Bound } {
  const first = curve[0];
  if (first === undefined) throw new Error("empty reference curve");
  if (accuracy <= first.accuracy + EPSILON) return { value: x(first), bound: "at-most" };
  const reached = curve.findIndex((point) => point.accuracy >= accuracy - EPSILON);
  if (reached === -1) return { value: x(curve[curve.length - 1] as Cell), bound: "at-least" };
  const below = curve[reached - 1] as Cell;
  const above = curve[reached] as Cell;
  const t = Math.min(1, Math.max(0, (accuracy - below.accuracy) / (above.accuracy - below.accuracy)));
  const log2 = Math.log2(x(below)) + t * (Math.log2(x(above)) - Math.log2(x(below)));
  return { value: 2 ** log2, bound: "exact" };
}
