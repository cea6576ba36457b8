/**
 * The numbers of a report. A problem is the unit of measurement: its accuracy is the mean of
 * `correct` over its seeds, and a cell's accuracy is the mean over problems, so that seeds sharpen
 * each problem's value without inflating n. 95% confidence intervals come from a percentile
 * bootstrap over problems with a seeded generator, so the same results give the same report.
 */
import type { BenchResult } from "../bench/results.js";
import { Random } from "../random.js";

export interface BootstrapOptions {
  resamples: number;
  seed: number;
}

export const DEFAULT_BOOTSTRAP: BootstrapOptions = { resamples: 1000, seed: 0 };

/** Two-sided level of every confidence interval in a report. */
export const CONFIDENCE = 0.95;

/** Accuracy of a set of work items, with its confidence interval. */
export interface AccuracyStats {
  problems: number;
  accuracy: number;
  ciLow: number;
  ciHigh: number;
}

/** One (strategy, budget) of the summary table. */
export interface Cell extends AccuracyStats {
  strategy: string;
  budget: number;
  /** Work items (problems x seeds, as far as they ran). */
  items: number;
  seeds: number;
  /** Items that failed (counted as wrong). */
  errors: number;
  /**
   * Means per problem (seeds averaged first). Generations, tokens and FLOPs over the items with a
   * compute report (a failed item may have none; null when no item has); wall time (`ms`) over every
   * item. Generations include compute-optimal's difficulty-estimate samples.
   */
  meanGenerations: number | null;
  meanGeneratedTokens: number | null;
  meanFlops: number | null;
  meanWallMs: number;
  /** Recursive policies only: loops of the shared block run per generated token, over the items that report them. */
  loopsPerToken?: number;
  /** Recursive policies with the state copy: state copies (one per exited token and skipped loop) per generated token. */
  copiesPerToken?: number;
}

/** Loops run per generated token over the items of a recursive policy (compute.loops); undefined when none has them. */
function loopsPerToken(items: readonly BenchResult[]): number | undefined {
  const looped = items.flatMap((item) => (item.compute?.loops ? [item.compute.loops] : []));
  const tokens = looped.reduce((sum, loops) => sum + loops.tokens, 0);
  return tokens > 0 ? looped.reduce((sum, loops) => sum + loops.run, 0) / tokens : undefined;
}

/** State copies per generated token over the items that report them (compute.loops.copies); undefined when none does. */
function copiesPerToken(items: readonly BenchResult[]): number | undefined {
  const copied = items.flatMap((item) => (item.compute?.loops?.copies !== undefined ? [item.compute.loops] : []));
  const tokens = copied.reduce((sum, loops) => sum + loops.tokens, 0);
  return tokens > 0 ? copied.reduce((sum, loops) => sum + (loops.copies ?? 0), 0) / tokens : undefined;
}

/** One (strategy, budget, level or predicted-difficulty bin). */
export interface GroupCell extends AccuracyStats {
  strategy: string;
  budget: number;
  group: number;
}

/** Accuracies are means of a few hundred fractions at most: equal values may differ in the last bits. */
export const TIE_TOLERANCE = 1e-9;

/** Which strategy is most accurate at one budget, overall (level null) or on one level. */
export interface Win {
  budget: number;
  level: number | null;
  /** The most accurate strategies (several on an exact tie). */
  winners: string[];
  accuracy: number;
  runnerUp: { strategy: string; accuracy: number } | null;
  /**
   * Paired bootstrap CI of (winner - runner-up) over the problems both ran; `clear` when it excludes 0.
   * Null when there is no runner-up or the winners tie.
   */
  difference: { low: number; high: number; clear: boolean } | null;
}

export interface Summary {
  strategies: string[];
  budgets: number[];
  levels: number[];
  difficultyBins: number[];
  cells: Cell[];
  byLevel: GroupCell[];
  byDifficultyBin: GroupCell[];
  wins: Win[];
  bootstrap: BootstrapOptions & { confidence: number };
}

const mean = (values: readonly number[]): number => values.reduce((sum, value) => sum + value, 0) / values.length;

/** Linear-interpolation quantile (type 7) of sorted values. */
function quantile(sorted: Float64Array, q: number): number {
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  // Equal neighbours (infinite ones too, where the interpolation would give NaN) are the quantile.
  if (sorted[below] === sorted[above]) return sorted[below] as number;
  return (sorted[below] as number) + ((sorted[above] as number) - (sorted[below] as number)) * (position - below);
}

/** Percentile bootstrap 95% confidence interval of the mean of `values` (non-empty). */
export function bootstrapMeanCI(values: readonly number[], options: BootstrapOptions): [number, number] {
  if (values.length === 0) throw new Error("bootstrap of no values");
  const random = new Random(options.seed);
  const n = values.length;
  const means = new Float64Array(options.resamples);
  for (let r = 0; r < options.resamples; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[random.int(0, n - 1)] as number;
    means[r] = sum / n;
  }
  return percentileInterval(means);
}

/** The central CONFIDENCE interval of bootstrap replicates (sorted in place). */
export function percentileInterval(replicates: Float64Array): [number, number] {
  replicates.sort();
  const alpha = 1 - CONFIDENCE;
  return [quantile(replicates, alpha / 2), quantile(replicates, 1 - alpha / 2)];
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/**
 * Per problem: the mean over its seeds of `value`, skipping items where it is null. In problem id
 * order, so that the bootstrap resamples the same problems whatever order the result files had.
 */
export function perProblem(items: readonly BenchResult[], value: (item: BenchResult) => number | null): Map<string, number> {
  const out = new Map<string, number>();
  const byProblem = [...groupBy(items, (item) => item.problemId)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [problemId, group] of byProblem) {
    const values = group.map(value).filter((v): v is number => v !== null);
    if (values.length > 0) out.set(problemId, mean(values));
  }
  return out;
}

const correctness = (item: BenchResult): number => (item.correct ? 1 : 0);

function accuracyStats(items: readonly BenchResult[], options: BootstrapOptions): AccuracyStats {
  const accuracies = [...perProblem(items, correctness).values()];
  const [ciLow, ciHigh] = bootstrapMeanCI(accuracies, options);
  return { problems: accuracies.length, accuracy: mean(accuracies), ciLow, ciHigh };
}

function meanPerProblem(items: readonly BenchResult[], value: (item: BenchResult) => number | null): number | null {
  const values = [...perProblem(items, value).values()];
  return values.length > 0 ? mean(values) : null;
}

const numerically = (a: number, b: number): number => a - b;

/** The cells of `results` split by strategy, budget and `group` (items where it is null are left out). */
function groupCells(
  results: readonly BenchResult[],
  group: (item: BenchResult) => number | null | undefined,
  options: BootstrapOptions,
): GroupCell[] {
  const grouped = results.filter((item) => group(item) != null);
  return [...groupBy(grouped, (item) => JSON.stringify([item.strategy, item.budget, group(item)])).values()].map((items) => {
    const first = items[0] as BenchResult;
    return { strategy: first.strategy, budget: first.budget, group: group(first) as number, ...accuracyStats(items, options) };
  });
}

/**
 * The winner at one budget among `byStrategy` (strategy -> its items at that budget), with a paired
 * bootstrap of its lead over the runner-up.
 */
function findWin(budget: number, level: number | null, byStrategy: Map<string, BenchResult[]>, options: BootstrapOptions): Win {
  const ranked = [...byStrategy].map(([strategy, items]) => ({ strategy, perProblem: perProblem(items, correctness) }))
    .map((entry) => ({ ...entry, accuracy: mean([...entry.perProblem.values()]) }))
    .sort((a, b) => b.accuracy - a.accuracy || a.strategy.localeCompare(b.strategy));
  const best = ranked[0];
  if (best === undefined) throw new Error("no strategy to rank");
  const winners = ranked.filter((entry) => best.accuracy - entry.accuracy < TIE_TOLERANCE);
  const second = ranked[winners.length];
  let difference: Win["difference"] = null;
  if (winners.length === 1 && second !== undefined) {
    const diffs = [...best.perProblem].flatMap(([problemId, value]) => {
      const other = second.perProblem.get(problemId);
      return other === undefined ? [] : [value - other];
    });
    if (diffs.length > 0) {
      const [low, high] = bootstrapMeanCI(diffs, options);
      difference = { low, high, clear: low > 0 };
    }
  }
  return {
    budget,
    level,
    winners: winners.map((entry) => entry.strategy),
    accuracy: best.accuracy,
    runnerUp: second === undefined ? null : { strategy: second.strategy, accuracy: second.accuracy },
    difference,
  };
}

function findWins(results: readonly BenchResult[], budgets: readonly number[], levels: readonly number[], options: BootstrapOptions): Win[] {
  const wins: Win[] = [];
  for (const level of [null, ...levels]) {
    for (const budget of budgets) {
      const items = results.filter((item) => item.budget === budget && (level === null || item.level === level));
      if (items.length > 0) wins.push(findWin(budget, level, groupBy(items, (item) => item.strategy), options));
    }
  }
  return wins;
}

export function summarize(results: readonly BenchResult[], options: BootstrapOptions = DEFAULT_BOOTSTRAP): Summary {
  const distinct = (values: Iterable<number | null | undefined>) =>
    [...new Set([...values].filter((value): value is number => value != null))].sort(numerically);
  const strategies = [...new Set(results.map((item) => item.strategy))].sort((a, b) => a.localeCompare(b));
  const budgets = distinct(results.map((item) => item.budget));
  const levels = distinct(results.map((item) => item.level));

  const cells: Cell[] = [];
  for (const strategy of strategies) {
    for (const budget of budgets) {
      const items = results.filter((item) => item.strategy === strategy && item.budget === budget);
      if (items.length === 0) continue;
      cells.push({
        strategy,
        budget,
        ...accuracyStats(items, options),
        items: items.length,
        seeds: new Set(items.map((item) => item.seed)).size,
        errors: items.filter((item) => item.error !== null).length,
        meanGenerations: meanPerProblem(items, (item) => item.compute?.generations ?? null),
        meanGeneratedTokens: meanPerProblem(items, (item) => item.compute?.generatedTokens ?? null),
        // Unknown (null) when any item's FLOPs are unknown: a mean over the others would understate it.
        meanFlops: items.some((item) => item.compute?.flops === null) ? null : meanPerProblem(items, (item) => item.compute?.flops ?? null),
        meanWallMs: meanPerProblem(items, (item) => item.ms) as number,
        ...(loopsPerToken(items) !== undefined ? { loopsPerToken: loopsPerToken(items) } : {}),
        ...(copiesPerToken(items) !== undefined ? { copiesPerToken: copiesPerToken(items) } : {}),
      });
    }
  }

  const bySort = (a: GroupCell, b: GroupCell) =>
    a.strategy.localeCompare(b.strategy) || a.budget - b.budget || a.group - b.group;
  return {
    strategies,
    budgets,
    levels,
    difficultyBins: distinct(results.map((item) => item.difficultyBin)),
    cells,
    byLevel: groupCells(results, (item) => item.level, options).sort(bySort),
    byDifficultyBin: groupCells(results, (item) => item.difficultyBin, options).sort(bySort),
    wins: findWins(results, budgets, levels, options),
    bootstrap: { ...options, confidence: CONFIDENCE },
  };
}
