/**
 * The allocation table of compute-optimal scaling (Snell et al. 2024, §3.2): for each difficulty
 * bin and budget, the strategy configuration that was best on a calibration split, chosen with
 * two-fold cross-validation, with its measured accuracy. Difficulty is predicted without ground
 * truth: the mean final verifier score of a few samples, binned by quantile edges from the
 * calibration split (bin 1 is the easiest: the highest scores).
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
  entries: z.array(allocationEntrySchema).min(1),
  source: z.looseObject({ folds: z.int().min(2) }),
});
export type AllocationTable = z.infer<typeof allocationTableSchema>;

export function parseAllocationTable(value: unknown, where: string): AllocationTable {
  const parsed = allocationTableSchema.safeParse(value);
  if (!parsed.success) throw new InputError(`${where} is not an allocation table: ${describeZodError(parsed.error)}`);
  const table = parsed.data;
  const edges = table.difficulty.edges;
  if (edges.some((edge, i) => i > 0 && edge < (edges[i - 1] as number))) throw new InputError(`${where}: difficulty.edges must be ascending`);
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

/** `bins - 1` ascending edges that split `values` into bins of (nearly) equal counts. */
export function quantileEdges(values: readonly number[], bins: number): number[] {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) throw new Error("quantile edges of no values");
  return Array.from({ length: bins - 1 }, (_, i) => sorted[Math.floor(((i + 1) * sorted.length) / bins)] as number);
}

/**
 * The difficulty bin of a mean verifier score: 1 (easiest: at or above the highest edge) to
 * edges.length + 1 (hardest).
 */
export function binOfScore(score: number, edges: readonly number[]): number {
  const below = edges.filter((edge) => score < edge).length;
  return below + 1;
}

/**
 * The entry for a bin and a budget. An unseen bin takes the nearest bin that has entries; within
 * it, the largest budget that fits (at most `budget`), else the smallest one.
 */
export function lookupEntry(table: AllocationTable, bin: number, budget: number): AllocationEntry {
  const bins = [...new Set(table.entries.map((entry) => entry.bin))];
  const nearestBin = bins.reduce((best, b) => (Math.abs(b - bin) < Math.abs(best - bin) ? b : best));
  const inBin = table.entries.filter((entry) => entry.bin === nearestBin).sort((a, b) => a.budget - b.budget);
  const fitting = inBin.filter((entry) => entry.budget <= budget);
  return (fitting.length > 0 ? fitting[fitting.length - 1] : inBin[0]) as AllocationEntry;
}

/**
 * Spreads a benchmark's budget over the difficulty bins: the table entry for each bin whose
 * budgets, averaged over the bins, stay within `averageBudget`, with the largest total
 * cross-validated accuracy. Bins are quantiles of the calibration split, so each holds about the
 * same share of problems and this average is the average per problem: compute moves from the bins
 * where more of it buys little to the bins where it buys most. Null when even the cheapest entries
 * do not fit.
 */
export function spreadAcrossBins(table: AllocationTable, averageBudget: number): Map<number, AllocationEntry> | null {
  const bins = [...new Set(table.entries.map((entry) => entry.bin))].sort((a, b) => a - b);
  const total = Math.floor(averageBudget * bins.length);
  // best[spent] = the best choice for the bins so far that spends exactly `spent`.
  let best = new Map<number, { accuracy: number; chosen: AllocationEntry[] }>([[0, { accuracy: 0, chosen: [] }]]);
  for (const bin of bins) {
    const next = new Map<number, { accuracy: number; chosen: AllocationEntry[] }>();
    for (const [spent, partial] of best) {
      for (const entry of table.entries.filter((candidate) => candidate.bin === bin)) {
        const cost = spent + entry.budget;
        const accuracy = partial.accuracy + entry.accuracy;
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
  outcomes: readonly CalibrationOutcome[];
  bins?: number;
  /** Seed of the split into folds. */
  seed?: number;
}

/** The label with the highest mean accuracy over `problems` at `budget` (the first label on a tie). */
function bestLabel(outcomes: readonly CalibrationOutcome[], problems: ReadonlySet<string>, budget: number): string | null {
  const totals = new Map<string, { sum: number; count: number }>();
  for (const outcome of outcomes) {
    if (outcome.budget !== budget || !problems.has(outcome.problemId)) continue;
    const total = totals.get(outcome.label) ?? { sum: 0, count: 0 };
    total.sum += outcome.accuracy;
    total.count += 1;
    totals.set(outcome.label, total);
  }
  let best: string | null = null;
  let bestAccuracy = -1;
  for (const [label, { sum, count }] of totals) {
    if (sum / count > bestAccuracy) {
      best = label;
      bestAccuracy = sum / count;
    }
  }
  return best;
}

function meanAccuracy(outcomes: readonly CalibrationOutcome[], problems: ReadonlySet<string>, budget: number, label: string): number[] {
  return outcomes.filter((o) => o.budget === budget && o.label === label && problems.has(o.problemId)).map((o) => o.accuracy);
}

/**
 * Builds the table: bins from quantiles of the predicted difficulty; per (bin, budget) the
 * configuration with the best calibration accuracy. Its reported accuracy is two-fold
 * cross-validated: the configuration is chosen on one half of the bin's problems and measured on
 * the other, both ways, so the number is not flattered by the choice.
 */
export function buildAllocationTable(input: BuildTableInput): AllocationTable {
  const bins = input.bins ?? 5;
  const edges = quantileEdges([...input.difficulty.values()], bins);
  const problemsByBin = new Map<number, string[]>();
  for (const [problemId, score] of input.difficulty) {
    const bin = binOfScore(score, edges);
    problemsByBin.set(bin, [...(problemsByBin.get(bin) ?? []), problemId]);
  }
  const budgets = [...new Set(input.outcomes.map((outcome) => outcome.budget))].sort((a, b) => a - b);
  const random = new Random(input.seed ?? 0);
  const entries: AllocationEntry[] = [];
  for (const [bin, problems] of [...problemsByBin].sort(([a], [b]) => a - b)) {
    const shuffled = random.shuffle(problems);
    const folds = [new Set(shuffled.filter((_, i) => i % 2 === 0)), new Set(shuffled.filter((_, i) => i % 2 === 1))];
    const all = new Set(problems);
    for (const budget of budgets) {
      const label = bestLabel(input.outcomes, all, budget);
      if (label === null) continue;
      const heldOut = folds.flatMap((fold, f) => {
        const chosen = bestLabel(input.outcomes, folds[1 - f] as Set<string>, budget) ?? label;
        return meanAccuracy(input.outcomes, fold, budget, chosen);
      });
      const example = input.outcomes.find((o) => o.label === label) as CalibrationOutcome;
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
  return {
    version: 1,
    policy: input.policy,
    verifier: input.verifier,
    difficulty: { samples: input.samples, edges },
    entries,
    source: { folds: 2, problems: input.difficulty.size },
  };
}
