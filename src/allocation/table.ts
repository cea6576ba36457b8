/**
 * The allocation table of compute-optimal scaling (Snell et al. 2024, §3.2): for each difficulty
 * bin and budget, the strategy configuration that was best on a calibration split, chosen with
 * two-fold cross-validation, with its measured accuracy. Difficulty is predicted without ground
 * truth: the mean final verifier score of a few samples, binned by quantile edges from the
 * calibration split (bin 1 is the easiest: the highest scores).
 *
 * A table may also hold an `oracle` section, built the same way over the oracle difficulty (the
 * share of samples graded right against the gold answer): compute-optimal with the oracle
 * difficulty shows what allocation would gain if the difficulty were known, so the cost of
 * predicting it is visible.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { describeZodError, InputError } from "../errors.js";
import { Random } from "../random.js";
import { packageRoot } from "../runtime/load.js";

export const allocationEntrySchema = z.object({
  bin: z.int().min(1),
  budget: z.int().min(1),
  /** The configuration's label in the calibration run, e.g. "beam-w4". */
  label: z.string(),
  strategy: z.string(),
  params: z.record(z.string(), z.unknown()),
  /** Cross-validated accuracy of choosing by the table in this bin at this budget. */
  accuracy: z.number().min(0).max(1),
  /** Calibration problems in this bin. */
  problems: z.int().min(0),
});
export type AllocationEntry = z.infer<typeof allocationEntrySchema>;

const entriesSchema = z.array(allocationEntrySchema).min(1);

export const allocationTableSchema = z.object({
  version: z.literal(1),
  /** What the table was calibrated for; a table only fits the models it was measured with. */
  policy: z.string(),
  verifier: z.string(),
  difficulty: z.object({
    /** Samples drawn to estimate a problem's difficulty (they are reused as candidates). */
    samples: z.int().min(1),
    /** Ascending score edges between bins: bins.length - 1 of them. */
    edges: z.array(z.number()),
  }),
  entries: entriesSchema,
  /** The same choice over bins of the oracle pass rate (bin 1: the highest); absent in older tables. */
  oracle: z
    .object({
      /** Ascending pass-rate edges between bins. */
      edges: z.array(z.number()),
      entries: entriesSchema,
    })
    .optional(),
  source: z.looseObject({ folds: z.int().min(2) }),
});
export type AllocationTable = z.infer<typeof allocationTableSchema>;

export function parseAllocationTable(value: unknown, where: string): AllocationTable {
  const parsed = allocationTableSchema.safeParse(value);
  if (!parsed.success) throw new InputError(`${where} is not an allocation table: ${describeZodError(parsed.error)}`);
  const table = parsed.data;
  const ascending = (edges: readonly number[]) => edges.every((edge, i) => i === 0 || edge >= (edges[i - 1] as number));
  if (!ascending(table.difficulty.edges)) throw new InputError(`${where}: difficulty.edges must be ascending`);
  if (table.oracle !== undefined && !ascending(table.oracle.edges)) throw new InputError(`${where}: oracle.edges must be ascending`);
  return table;
}

export function loadAllocationTable(path: string): AllocationTable {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new InputError(`cannot read allocation table ${path}: ${(error as Error).message}`);
  }
  return parseAllocationTable(value, path);
}

/** The table shipped for the embedded models (models/allocation.json). */
export function defaultAllocationTable(): string {
  const path = join(packageRoot(), "models", "allocation.json");
  if (!existsSync(path)) throw new InputError(`no allocation table at ${path}: run \`deliberate calibrate\` or pass --allocation FILE`);
  return path;
}

/**
 * At most `bins - 1` ascending edges that split `values` into bins of (nearly) equal counts. Equal
 * values always share a bin (see `binOfScore`), so where many values tie (oracle pass rates of 0
 * or 1) quantiles coincide: an edge is kept once, and an edge at the smallest value, which would
 * leave the bin below it empty, is dropped. Such values give fewer bins, of unequal counts.
 */
export function quantileEdges(values: readonly number[], bins: number): number[] {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) throw new Error("quantile edges of no values");
  const quantiles = Array.from({ length: bins - 1 }, (_, i) => sorted[Math.floor(((i + 1) * sorted.length) / bins)] as number);
  return [...new Set(quantiles)].filter((edge) => edge > (sorted[0] as number));
}

/**
 * The difficulty bin of a score, higher easier (a mean verifier score, or an oracle pass rate): 1
 * (easiest: at or above the highest edge) to edges.length + 1 (hardest). Equal scores share a bin.
 */
export function binOfScore(score: number, edges: readonly number[]): number {
  const below = edges.filter((edge) => score < edge).length;
  return below + 1;
}

/**
 * The entry for a bin and a budget among `entries` (a table's `entries`, or its `oracle.entries`).
 * An unseen bin takes the nearest bin that has entries; within it, the largest budget that fits
 * (at most `budget`), else the smallest one.
 */
export function lookupEntry(entries: readonly AllocationEntry[], bin: number, budget: number): AllocationEntry {
  const bins = [...new Set(entries.map((entry) => entry.bin))];
  const nearestBin = bins.reduce((best, b) => (Math.abs(b - bin) < Math.abs(best - bin) ? b : best));
  const inBin = entries.filter((entry) => entry.bin === nearestBin).sort((a, b) => a.budget - b.budget);
  const fitting = inBin.filter((entry) => entry.budget <= budget);
  return (fitting.length > 0 ? fitting[fitting.length - 1] : inBin[0]) as AllocationEntry;
}

/**
 * Spreads a benchmark's budget over the difficulty bins: one of `entries` for each bin, such that
 * the budget per calibration problem stays within `averageBudget` on average, with the most
 * problems solved (cross-validated accuracy times the bin's problems). Compute moves from the bins
 * where more of it buys little to the bins where it buys most. Bins are weighted by their problems
 * because they need not be of equal size (oracle pass rates tie). Null when even the cheapest
 * entries do not fit.
 */
export function spreadAcrossBins(entries: readonly AllocationEntry[], averageBudget: number): Map<number, AllocationEntry> | null {
  const bins = [...new Set(entries.map((entry) => entry.bin))].sort((a, b) => a - b);
  const problemsIn = (bin: number) => (entries.find((entry) => entry.bin === bin) as AllocationEntry).problems;
  const total = Math.floor(averageBudget * bins.reduce((sum, bin) => sum + problemsIn(bin), 0));
  // best[spent] = the best choice for the bins so far that spends exactly `spent` generations over their problems.
  let best = new Map<number, { accuracy: number; chosen: AllocationEntry[] }>([[0, { accuracy: 0, chosen: [] }]]);
  for (const bin of bins) {
    const next = new Map<number, { accuracy: number; chosen: AllocationEntry[] }>();
    for (const [spent, partial] of best) {
      for (const entry of entries.filter((candidate) => candidate.bin === bin)) {
        const cost = spent + entry.budget * entry.problems;
        const accuracy = partial.accuracy + entry.accuracy * entry.problems;
        if (cost > total || (next.get(cost)?.accuracy ?? -1) >= accuracy) continue;
        next.set(cost, { accuracy, chosen: [...partial.chosen, entry] });
      }
    }
    best = next;
  }
  let winner: { accuracy: number; chosen: AllocationEntry[] } | null = null;
  // On a tie in accuracy, the cheaper choice wins.
  for (const [, choice] of [...best].sort(([a], [b]) => a - b)) if (winner === null || choice.accuracy > winner.accuracy) winner = choice;
  return winner === null ? null : new Map(winner.chosen.map((entry) => [entry.bin, entry]));
}

/** One configuration's calibration outcome on one problem at one budget (correctness averaged over seeds). */
export interface CalibrationOutcome {
  problemId: string;
  label: string;
  strategy: string;
  params: Record<string, unknown>;
  budget: number;
  accuracy: number;
}

export interface BuildTableInput {
  policy: string;
  verifier: string;
  samples: number;
  /** The predicted difficulty (mean final verifier score of `samples` samples) of each calibration problem. */
  difficulty: ReadonlyMap<string, number>;
  /** The oracle pass rate of each calibration problem; when given, the table gets an `oracle` section. */
  oracleDifficulty?: ReadonlyMap<string, number>;
  outcomes: readonly CalibrationOutcome[];
  bins?: number;
  /** Seed of the split into folds. */
  seed?: number;
  /**
   * The configuration a bin keeps at a budget unless another beats it by more than one standard
   * error (`calibrate` passes the grid's first, PRM-weighted best-of-N by default); without it the
   * best calibration accuracy wins however small its lead.
   */
  baseline?: string;
}

/** Each label's accuracy per problem over `problems` at `budget`, labels in the order the outcomes give them. */
function accuracyByLabel(outcomes: readonly CalibrationOutcome[], problems: ReadonlySet<string>, budget: number): Map<string, Map<string, number>> {
  const byLabel = new Map<string, Map<string, number>>();
  for (const outcome of outcomes) {
    if (outcome.budget !== budget || !problems.has(outcome.problemId)) continue;
    const byProblem = byLabel.get(outcome.label) ?? new Map<string, number>();
    byProblem.set(outcome.problemId, outcome.accuracy);
    byLabel.set(outcome.label, byProblem);
  }
  return byLabel;
}

const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

/**
 * The label with the highest mean accuracy over `problems` at `budget` (the first label on a tie).
 * With a `baseline` that ran there, the best label replaces it only when its lead is more than one
 * standard error of the paired difference over the problems both ran (the one-standard-error rule):
 * a bin of 20 calibration problems otherwise picks whichever configuration one or two lucky
 * problems favour, a pick that other problems need not bear out.
 */
function bestLabel(outcomes: readonly CalibrationOutcome[], problems: ReadonlySet<string>, budget: number, baseline?: string): string | null {
  const byLabel = accuracyByLabel(outcomes, problems, budget);
  let best: string | null = null;
  let bestAccuracy = -1;
  for (const [label, byProblem] of byLabel) {
    const accuracy = mean([...byProblem.values()]);
    if (accuracy > bestAccuracy) {
      best = label;
      bestAccuracy = accuracy;
    }
  }
  if (best === null || baseline === undefined || best === baseline) return best;
  const fallback = byLabel.get(baseline);
  if (fallback === undefined) return best;
  const challenger = byLabel.get(best) as Map<string, number>;
  const differences = [...challenger].filter(([problemId]) => fallback.has(problemId)).map(([problemId, accuracy]) => accuracy - (fallback.get(problemId) as number));
  if (differences.length < 2) return best;
  const lead = mean(differences);
  const variance = differences.reduce((sum, d) => sum + (d - lead) ** 2, 0) / (differences.length - 1);
  return lead > Math.sqrt(variance / differences.length) ? best : baseline;
}

function meanAccuracy(outcomes: readonly CalibrationOutcome[], problems: ReadonlySet<string>, budget: number, label: string): number[] {
  return outcomes.filter((o) => o.budget === budget && o.label === label && problems.has(o.problemId)).map((o) => o.accuracy);
}

/**
 * Bins the problems by quantiles of `difficulty` (higher is easier) and chooses, per bin and
 * budget, the configuration with the best calibration accuracy (`bestLabel`: the baseline unless
 * another leads it by more than one standard error). Its reported accuracy is two-fold
 * cross-validated: the configuration is chosen on one half of the bin's problems and measured on
 * the other, both ways, so the number is not flattered by the choice.
 */
function chooseByBin(
  difficulty: ReadonlyMap<string, number>,
  outcomes: readonly CalibrationOutcome[],
  bins: number,
  seed: number,
  baseline: string | undefined,
): { edges: number[]; entries: AllocationEntry[] } {
  const edges = quantileEdges([...difficulty.values()], bins);
  const problemsByBin = new Map<number, string[]>();
  for (const [problemId, score] of difficulty) {
    const bin = binOfScore(score, edges);
    problemsByBin.set(bin, [...(problemsByBin.get(bin) ?? []), problemId]);
  }
  const budgets = [...new Set(outcomes.map((outcome) => outcome.budget))].sort((a, b) => a - b);
  const random = new Random(seed);
  const entries: AllocationEntry[] = [];
  for (const [bin, problems] of [...problemsByBin].sort(([a], [b]) => a - b)) {
    const shuffled = random.shuffle(problems);
    const folds = [new Set(shuffled.filter((_, i) => i % 2 === 0)), new Set(shuffled.filter((_, i) => i % 2 === 1))];
    const all = new Set(problems);
    for (const budget of budgets) {
      const label = bestLabel(outcomes, all, budget, baseline);
      if (label === null) continue;
      const heldOut = folds.flatMap((fold, f) => {
        const chosen = bestLabel(outcomes, folds[1 - f] as Set<string>, budget, baseline) ?? label;
        return meanAccuracy(outcomes, fold, budget, chosen);
      });
      const example = outcomes.find((o) => o.label === label) as CalibrationOutcome;
      entries.push({
        bin,
        budget,
        label,
        strategy: example.strategy,
        params: example.params,
        accuracy: heldOut.length > 0 ? heldOut.reduce((a, b) => a + b, 0) / heldOut.length : 0,
        problems: problems.length,
      });
    }
  }
  return { edges, entries };
}

/**
 * Builds the table: the configuration chosen per bin of the predicted difficulty and budget, and,
 * with `oracleDifficulty`, the same per bin of the oracle pass rate (`chooseByBin`). Both sections
 * split their bins into folds with the same seed, so adding the oracle changes nothing else.
 */
export function buildAllocationTable(input: BuildTableInput): AllocationTable {
  const bins = input.bins ?? 5;
  const seed = input.seed ?? 0;
  const predicted = chooseByBin(input.difficulty, input.outcomes, bins, seed, input.baseline);
  return {
    version: 1,
    policy: input.policy,
    verifier: input.verifier,
    difficulty: { samples: input.samples, edges: predicted.edges },
    entries: predicted.entries,
    ...(input.oracleDifficulty === undefined ? {} : { oracle: chooseByBin(input.oracleDifficulty, input.outcomes, bins, seed, input.baseline) }),
    source: { folds: 2, problems: input.difficulty.size },
  };
}
