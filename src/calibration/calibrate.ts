/**
 * Calibration of compute-optimal allocation (`deliberate calibrate`): the difficulty pass over a
 * calibration split (src/calibration/difficulty.ts), then a grid of strategy configurations at each
 * budget through the benchmark runner, then the allocation table (src/allocation/table.ts).
 *
 * The grid is one bench run per budget, each in its own directory `<out>/budget-N` with the
 * configurations valid there (src/bench/per-budget.ts).
 * Everything resumes: the difficulty pass from difficulty.jsonl, each budget from its results.jsonl.
 * With `difficultyOnly`, only the difficulty pass runs: on a test split, it gives the oracle pass
 * rates that compute-optimal with the oracle difficulty needs (bench's difficultyFile).
 */
import { mkdir } from "node:fs/promises";
import { writeFileAtomically } from "../files.js";
import { dirname, join } from "node:path";
import { z } from "zod";
import { BENCH_GRADER_OPTIONS, Grader } from "../../datasets/answer/grader.js";
import type { BenchConfig, Experiment, SkippedConfiguration } from "../bench/config.js";
import type { BenchProgress } from "../bench/progress.js";
import { isGradingFailure, type BenchResult } from "../bench/results.js";
import { loadBenchProblems, runBench, type BenchSummary } from "../bench/run.js";
import { checkRunDirectory, readRunResults } from "../bench/store.js";
import { runsPerBudget } from "../bench/per-budget.js";
import { InputError } from "../errors.js";
import { STRATEGIES } from "../../strategies/registry.js";
import type { Policy, StepVerifier } from "../policy.js";
import type { DifficultyRecord } from "../bench/difficulty-file.js";
import { runDifficultyPass } from "./difficulty.js";
import { binOfScore, buildAllocationTable, parseAllocationTable, quantileEdges, type AllocationTable, type CalibrationOutcome } from "../allocation/table.js";

export const gridEntrySchema = z.strictObject({
  label: z.string().regex(/^[^,\s]+$/, "expected a label without commas or spaces"),
  strategy: z.string(),
  params: z.record(z.string(), z.unknown()).default({}),
});
export type GridEntry = z.output<typeof gridEntrySchema>;

/**
 * The grid of the issue (after Snell et al. 2024): best-of-N with each selection rule, beam search
 * of widths 2 and 4, look-ahead with k = 1 and 3 (beam width 4, the strategy's default), DVTS of
 * width 4, and sequential-to-parallel revision ratios 1 and 4.
 */
export const DEFAULT_GRID: readonly GridEntry[] = [
  { label: "best-of-n-weighted", strategy: "best-of-n", params: { select: "weighted" } },
  { label: "best-of-n-majority", strategy: "best-of-n", params: { select: "majority" } },
  { label: "best-of-n-naive", strategy: "best-of-n", params: { select: "naive" } },
  { label: "beam-w2", strategy: "beam", params: { beamWidth: 2 } },
  { label: "beam-w4", strategy: "beam", params: { beamWidth: 4 } },
  { label: "lookahead-k1", strategy: "lookahead", params: { lookahead: 1 } },
  { label: "lookahead-k3", strategy: "lookahead", params: { lookahead: 3 } },
  { label: "dvts-w4", strategy: "dvts", params: { beamWidth: 4 } },
  { label: "revision-r1", strategy: "revision", params: { ratio: 1 } },
  { label: "revision-r4", strategy: "revision", params: { ratio: 4 } },
];

export const DEFAULT_BUDGETS: readonly number[] = [1, 2, 4, 8, 16];

/** Samples of the difficulty estimate; compute-optimal draws as many from its budget before it runs the table's choice. */
export const DEFAULT_SAMPLES = 4;

const positive = z.int({ error: "expected a positive integer" }).min(1, "expected a positive integer");

/** Calibration's own settings; every other setting is a bench setting (dataset, seeds, sampling, models, ...). */
const ownSchema = z.object({
  samples: positive.default(DEFAULT_SAMPLES),
  oracleSamples: positive.default(16),
  budgets: z
    .preprocess((value) => (typeof value === "string" ? value.split(",").map((part) => (part.trim() === "" ? Number.NaN : Number(part))) : value), z.array(positive).min(1))
    .default([...DEFAULT_BUDGETS])
    .refine((budgets) => new Set(budgets).size === budgets.length, "a budget is given twice"),
  grid: z.array(gridEntrySchema).min(1).default(DEFAULT_GRID.map((entry) => ({ ...entry }))),
  bins: z.int().min(2).default(5),
  difficultyOnly: z.boolean().default(false),
  allocationOut: z.string().min(1).optional(),
  out: z.string({ error: "required" }).min(1),
});

export interface CalibrateConfig {
  /** The run directory: difficulty.json(l) and one bench run directory per budget. */
  out: string;
  /** Where the table is written. */
  allocationOut: string;
  /** Run the difficulty pass alone: no grid, no table. */
  difficultyOnly: boolean;
  /** Samples of the difficulty estimate (the table's `difficulty.samples`). */
  samples: number;
  oracleSamples: number;
  bins: number;
  /** The grid's first configuration: a bin keeps it unless another beats it by more than one standard error (`buildAllocationTable`). */
  baseline: string;
  /** One bench run per budget, in `<out>/budget-N`, with the grid configurations valid at that budget. */
  runs: BenchConfig[];
  /** Configurations left out at a budget where their parameters do not hold. */
  skipped: SkippedConfiguration[];
}

type Where = (path: readonly PropertyKey[]) => string;

/**
 * Validates calibration settings: its own (`samples`, `oracleSamples`, `budgets`, `grid`, `bins`,
 * `difficultyOnly`, `allocationOut`, `out`) and the bench settings it passes on (the flags of `deliberate bench` in
 * camelCase, without `strategies` and `shard`). The synth dataset's split defaults to calibration.
 * `where` names a field in messages (a flag, or a file and field).
 */
export function parseCalibrateConfig(input: Record<string, unknown>, where: Where = (path) => path.join(".") || "config"): CalibrateConfig {
  const { samples, oracleSamples, budgets, grid, bins, difficultyOnly, allocationOut, ...bench } = input;
  const own = ownSchema.safeParse({ samples, oracleSamples, budgets, grid, bins, difficultyOnly, allocationOut, out: input.out });
  if (!own.success) throw new InputError(own.error.issues.map((issue) => `${where(issue.path)}: ${issue.message}`).join("\n"));
  for (const key of ["strategies", "shard"]) {
    if (key in bench) throw new InputError(`${where([key])}: not a calibration setting (the grid gives the strategies; calibration needs every problem)`);
  }
  if (bench.verifier === "none") throw new InputError(`${where(["verifier"])}: calibration needs a step verifier to estimate difficulty; got none`);
  if ((bench.dataset ?? "synth") === "synth" && bench.dataFile === undefined) bench.split ??= "calibration";

  const settings = own.data;
  if (settings.difficultyOnly && settings.allocationOut !== undefined) throw new InputError(`${where(["allocationOut"])}: no table is written with the difficulty pass alone`);
  for (const [index, entry] of settings.grid.entries()) {
    if (STRATEGIES.find((strategy) => strategy.name === entry.strategy)?.allocates === true) {
      throw new InputError(`${where(["grid", index, "strategy"])}: ${entry.strategy} cannot be in the grid; it runs the table's choices itself, and the table chooses among the other strategies`);
    }
  }
  const { runs, skipped } = runsPerBudget(bench, settings.grid, settings.budgets, settings.out, where, "grid");
  return {
    out: settings.out,
    allocationOut: settings.allocationOut ?? join(settings.out, "allocation.json"),
    difficultyOnly: settings.difficultyOnly,
    samples: settings.samples,
    oracleSamples: settings.oracleSamples,
    bins: settings.bins,
    baseline: (settings.grid[0] as GridEntry).label,
    runs,
    skipped,
  };
}

export interface CalibrateOptions {
  policy: Policy;
  verifier: StepVerifier;
  /** Stops calibration: running work is aborted and not recorded, and `calibrate` throws the signal's reason. */
  signal?: AbortSignal;
  /** A progress display for each phase (the difficulty pass, then the grid at each budget), named in a line; null for none. */
  progress?: (phase: string) => BenchProgress | null;
  /** Grades answers. Default: a Grader of its own (BENCH_GRADER_OPTIONS), closed at the end. */
  grader?: Grader;
}

/** The calibration problems of one predicted-difficulty bin, with their oracle pass rate. */
export interface BinSummary {
  bin: number;
  problems: number;
  minScore: number;
  maxScore: number;
  /** Mean over the bin's problems of the oracle pass rate. */
  oraclePassRate: number;
  /** Mean dataset level, null when no problem has one. */
  meanLevel: number | null;
}

export interface Calibration {
  /** The allocation table; null with `difficultyOnly`. */
  table: AllocationTable | null;
  difficulty: DifficultyRecord[];
  /** Per bin of the predicted score: the table's bins, or (difficulty only) quantiles of this pass's scores. */
  bins: BinSummary[];
  /** The grid's bench run at each budget; none with `difficultyOnly`. */
  grid: BenchSummary[];
}

const mean = (values: readonly number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;

/** Per bin of the predicted score (by `edges`): problems, score range, oracle pass rate and level, so the prediction's quality shows. */
export function summarizeBins(edges: readonly number[], records: readonly DifficultyRecord[]): BinSummary[] {
  const byBin = new Map<number, DifficultyRecord[]>();
  for (const record of records) {
    const bin = binOfScore(record.score, edges);
    byBin.set(bin, [...(byBin.get(bin) ?? []), record]);
  }
  return [...byBin]
    .sort(([a], [b]) => a - b)
    .map(([bin, inBin]) => {
      const levels = inBin.flatMap((record) => record.level ?? []);
      return {
        bin,
        problems: inBin.length,
        minScore: Math.min(...inBin.map((record) => record.score)),
        maxScore: Math.max(...inBin.map((record) => record.score)),
        oraclePassRate: mean(inBin.map((record) => record.oracle.passRate)),
        meanLevel: levels.length > 0 ? mean(levels) : null,
      };
    });
}

/**
 * Each configuration's accuracy per problem (correct averaged over seeds) at the run's budget, in
 * the grid's order, so that a tie in the table goes to the configuration listed first. Grading
 * failures are no judgment and are left out (the run's summary counts them; a rerun grades them).
 */
function gridOutcomes(experiment: Experiment, results: readonly BenchResult[]): CalibrationOutcome[] {
  const budget = experiment.budgets[0] as number;
  return experiment.strategies.flatMap(({ label, strategy, params }) => {
    const correct = new Map<string, boolean[]>();
    for (const result of results) if (result.strategy === label && !isGradingFailure(result)) correct.set(result.problemId, [...(correct.get(result.problemId) ?? []), result.correct]);
    return [...correct].map(([problemId, seeds]) => ({ problemId, label, strategy, params, budget, accuracy: seeds.filter(Boolean).length / seeds.length }));
  });
}

function phaseOfRun({ experiment }: BenchConfig): string {
  return `grid N=${experiment.budgets[0]}: ${experiment.strategies.map((strategy) => strategy.label).join(", ")}`;
}

/** Writes the table after checking it against the schema, beside and renamed into place (never half-written). */
async function writeTable(file: string, table: AllocationTable): Promise<void> {
  const text = `${JSON.stringify(parseAllocationTable(JSON.parse(JSON.stringify(table)), file), null, 2)}\n`;
  await mkdir(dirname(file), { recursive: true });
  await writeFileAtomically(file, "--allocation-out", text);
}

/**
 * Runs the difficulty pass and the grid (what the run directory has not done yet), builds the
 * allocation table from both, with its oracle section from the pass's oracle pass rates, and writes
 * it to `config.allocationOut`. With `config.difficultyOnly`, stops after the difficulty pass.
 */
export async function calibrate(config: CalibrateConfig, options: CalibrateOptions): Promise<Calibration> {
  const { policy, verifier, signal } = options;
  const first = (config.runs[0] as BenchConfig).experiment;
  const labels = { policy: first.policy ?? policy.name, verifier: first.verifier ?? verifier.name };
  // Refuse a run directory of other settings before any work (runBench would, but only at its budget).
  if (!config.difficultyOnly) for (const run of config.runs) await checkRunDirectory(run.out, { ...run.experiment, ...labels });
  const problems = await loadBenchProblems(config.runs[0] as BenchConfig);
  const grader = options.grader ?? new Grader({ ...BENCH_GRADER_OPTIONS, timeoutMs: (config.runs[0] as BenchConfig).run.gradeTimeoutS * 1000 });
  try {
    const { samples, oracleSamples } = config;
    const difficulty = await runDifficultyPass(
      config.out,
      problems,
      { dataset: first.dataset, filter: first.filter, limits: first.limits, sampling: first.sampling, samples, oracleSamples, ...labels },
      { policy, verifier, grader, concurrency: (config.runs[0] as BenchConfig).run.concurrency, signal, progress: options.progress?.(`difficulty: ${problems.length} problems, ${samples} samples + ${oracleSamples} oracle samples each`) },
    );
    signal?.throwIfAborted();
    if (config.difficultyOnly) {
      const edges = quantileEdges(difficulty.map((record) => record.score), config.bins);
      return { table: null, difficulty, bins: summarizeBins(edges, difficulty), grid: [] };
    }
    const grid: BenchSummary[] = [];
    const outcomes: CalibrationOutcome[] = [];
    for (const run of config.runs) {
      grid.push(await runBench(run, { policy, verifier, signal, problems, grader, progress: options.progress?.(phaseOfRun(run)) }));
      signal?.throwIfAborted();
      outcomes.push(...gridOutcomes(run.experiment, await readRunResults(run.out)));
    }
    const table = buildAllocationTable({
      policy: policy.name,
      verifier: verifier.name,
      samples,
      difficulty: new Map(difficulty.map((record) => [record.problemId, record.score])),
      oracleDifficulty: new Map(difficulty.map((record) => [record.problemId, record.oracle.passRate])),
      outcomes,
      bins: config.bins,
      baseline: config.baseline,
    });
    await writeTable(config.allocationOut, table);
    return { table, difficulty, bins: summarizeBins(table.difficulty.edges, difficulty), grid };
  } finally {
    if (options.grader === undefined) await grader.close();
  }
}
