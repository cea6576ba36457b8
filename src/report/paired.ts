/**
 * Paired comparisons against a baseline: for each other (strategy, budget), its accuracy minus the
 * baseline's over the problems both ran, overall, per level and per predicted-difficulty bin, with a
 * paired percentile bootstrap interval over problems (each problem's difference is resampled, so
 * the problems' shared difficulty cancels) and the count of problems each side does better on.
 *
 * A baseline is a strategy label, compared at each budget with the cells of that budget, or a fixed
 * cell `label@N`, compared with every other cell (compute-optimal at 16 against best-of-N at 64).
 * A problem's difficulty bin is the one compute-optimal predicted for it: it is on the items of a
 * compute-optimal cell only, so the bins of a comparison come from whichever side has them, and
 * the same bin is applied to the other side's items of that problem.
 */
import type { BenchResult } from "../bench/results.js";
import { InputError } from "../errors.js";
import { bootstrapMeanCI, perProblem, type BootstrapOptions } from "./stats.js";

/** A baseline as `--baseline` gives it: a label (same budget) or a label at a fixed budget. */
export interface BaselineSpec {
  strategy: string;
  budget: number | null;
}

/** Parses `label` or `label@N`. */
export function parseBaseline(text: string): BaselineSpec {
  const match = /^(.+)@(\d+)$/.exec(text);
  if (match === null) {
    if (text.trim() === "") throw new InputError("--baseline must be a strategy label or label@N, got an empty string");
    return { strategy: text, budget: null };
  }
  const budget = Number(match[2]);
  if (!Number.isSafeInteger(budget) || budget < 1) throw new InputError(`--baseline ${text}: the budget after @ must be a positive integer`);
  return { strategy: match[1] as string, budget };
}

export const baselineName = (spec: BaselineSpec): string => (spec.budget === null ? spec.strategy : `${spec.strategy}@${spec.budget}`);

/** Overall, one level, or one predicted-difficulty bin. */
export type PairedGroup = { kind: "all" } | { kind: "level"; value: number } | { kind: "bin"; value: number };

export interface PairedRow {
  strategy: string;
  budget: number;
  baselineStrategy: string;
  baselineBudget: number;
  group: PairedGroup;
  /** Problems both sides ran (within the group). */
  problems: number;
  accuracy: number;
  baselineAccuracy: number;
  /** accuracy - baselineAccuracy over those problems, with its paired 95% bootstrap interval. */
  difference: number;
  low: number;
  high: number;
  /** The interval excludes 0. */
  clear: boolean;
  /** Problems where this side's accuracy (mean over seeds) is above / below the baseline's. */
  better: number;
  worse: number;
}

export interface PairedComparison {
  baseline: string;
  rows: PairedRow[];
}

interface CellItems {
  strategy: string;
  budget: number;
  items: BenchResult[];
}

function cellsOf(results: readonly BenchResult[]): CellItems[] {
  const cells = new Map<string, CellItems>();
  for (const item of results) {
    const key = JSON.stringify([item.strategy, item.budget]);
    const cell = cells.get(key) ?? { strategy: item.strategy, budget: item.budget, items: [] };
    cell.items.push(item);
    cells.set(key, cell);
  }
  return [...cells.values()].sort((a, b) => a.strategy.localeCompare(b.strategy) || a.budget - b.budget);
}

/** Per problem: its level, and its predicted bin (the lowest seed's item that has one). */
function problemGroups(items: readonly BenchResult[]): { level: Map<string, number>; bin: Map<string, number> } {
  const level = new Map<string, number>();
  const bin = new Map<string, number>();
  for (const item of [...items].sort((a, b) => a.seed - b.seed)) {
    if (item.level != null && !level.has(item.problemId)) level.set(item.problemId, item.level);
    if (item.difficultyBin != null && !bin.has(item.problemId)) bin.set(item.problemId, item.difficultyBin);
  }
  return { level, bin };
}

const correctness = (item: BenchResult): number => (item.correct ? 1 : 0);
const mean = (values: readonly number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;

function compareCells(cell: CellItems, baseline: CellItems, options: BootstrapOptions): PairedRow[] {
  const ours = perProblem(cell.items, correctness);
  const theirs = perProblem(baseline.items, correctness);
  const shared = [...ours.keys()].filter((problemId) => theirs.has(problemId));
  if (shared.length === 0) return [];
  const groupsOurs = problemGroups(cell.items);
  const groupsTheirs = problemGroups(baseline.items);
  const levelOf = (id: string) => groupsOurs.level.get(id) ?? groupsTheirs.level.get(id);
  const binOf = (id: string) => groupsOurs.bin.get(id) ?? groupsTheirs.bin.get(id);

  const row = (group: PairedGroup, problems: string[]): PairedRow => {
    const differences = problems.map((id) => (ours.get(id) as number) - (theirs.get(id) as number));
    const [low, high] = bootstrapMeanCI(differences, options);
    return {
      strategy: cell.strategy,
      budget: cell.budget,
      baselineStrategy: baseline.strategy,
      baselineBudget: baseline.budget,
      group,
      problems: problems.length,
      accuracy: mean(problems.map((id) => ours.get(id) as number)),
      baselineAccuracy: mean(problems.map((id) => theirs.get(id) as number)),
      difference: mean(differences),
      low,
      high,
      clear: low > 0 || high < 0,
      better: differences.filter((d) => d > 0).length,
      worse: differences.filter((d) => d < 0).length,
    };
  };
  const split = (kind: "level" | "bin", of: (id: string) => number | undefined): PairedRow[] => {
    const values = [...new Set(shared.map(of).filter((value): value is number => value !== undefined))].sort((a, b) => a - b);
    return values.map((value) => row({ kind, value }, shared.filter((id) => of(id) === value)));
  };
  return [row({ kind: "all" }, shared), ...split("level", levelOf), ...split("bin", binOf)];
}

/** The comparisons for each baseline, in the order given. A baseline that names no cell of the runs is an error. */
export function comparePaired(
  results: readonly BenchResult[],
  baselines: readonly BaselineSpec[],
  options: BootstrapOptions,
): PairedComparison[] {
  const cells = cellsOf(results);
  return baselines.map((spec) => {
    const own = cells.filter((cell) => cell.strategy === spec.strategy && (spec.budget === null || cell.budget === spec.budget));
    if (own.length === 0) {
      const names = cells.map((cell) => `${cell.strategy}@${cell.budget}`).join(", ");
      throw new InputError(`--baseline ${baselineName(spec)} names no strategy and budget of the runs; they have: ${names}`);
    }
    const rows = cells.flatMap((cell) => {
      if (own.includes(cell)) return [];
      const baseline = spec.budget === null ? own.find((candidate) => candidate.budget === cell.budget) : own[0];
      return baseline === undefined ? [] : compareCells(cell, baseline, options);
    });
    return { baseline: baselineName(spec), rows };
  });
}
