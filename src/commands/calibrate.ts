/**
 * `deliberate calibrate`: the difficulty pass and a strategy grid on a calibration split, then the
 * allocation table; with --difficulty-only, the difficulty pass alone (on any split).
 */
import { extname, join } from "node:path";
import type { Command } from "commander";
import { parse as parseYaml } from "yaml";
import { DEFAULT_LADDER, LADDER_IDS } from "../../datasets/synth/generate.js";
import { calibrate, parseCalibrateConfig, type CalibrateConfig, type Calibration } from "../calibration/calibrate.js";
import { DIFFICULTY_FILE } from "../bench/difficulty-file.js";
import { binOfScore, spreadAcrossBins, type AllocationEntry, type AllocationTable } from "../allocation/table.js";
import { DATASETS, PROGRESS_MODES, type RunSettings } from "../bench/config.js";
import { createProgress, formatDuration, gradingFailuresNote, type BenchProgress } from "../bench/progress.js";
import { describePlan, loadBenchProblems } from "../bench/run.js";
import { InputError } from "../errors.js";
import { readTextFile } from "../files.js";
import type { StepVerifier } from "../policy.js";
import type { Problem } from "../../datasets/problem.js";
import { addModelOptions, loadModels, positiveInteger, splitServedFlags } from "./model-options.js";
import { untilStopped } from "./stop-signals.js";

const EXAMPLE = `
Examples:
  deliberate calibrate --n 100 --out runs/calibration
  deliberate calibrate --n 200 --budgets 1,2,4,8,16,32,64 --seeds 2 --out runs/cal64 --allocation-out models/allocation.json
  deliberate calibrate --grid grid.yaml --n 50 --out runs/small-grid
  deliberate calibrate --difficulty-only --split test --n 100 --out runs/test-difficulty

A grid file (YAML or JSON) lists configurations; a configuration runs only at the budgets where its
parameters hold (beam width 4 at multiples of 4), and is skipped with a note elsewhere:
  - { label: majority, strategy: best-of-n, params: { select: majority } }
  - { label: beam-w4, strategy: beam, params: { beamWidth: 4 } }
The grid's first configuration is the baseline: in each bin and budget the table keeps it unless
another configuration's lead over it is more than one standard error of the paired difference.

The run directory holds difficulty.jsonl (one line per problem) and one bench run per budget
(budget-N/); stopped, the same command resumes. The table also chooses per bin of the oracle pass
rate, for compute-optimal with difficulty oracle: what knowing the difficulty would gain. That needs
the test problems' pass rates: --difficulty-only writes them (difficulty.jsonl, for
deliberate bench --difficulty-file) and skips the grid and the table.`;

const flagName = (key: string) => `--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;

async function readGridFile(file: string): Promise<unknown> {
  const extension = extname(file).toLowerCase();
  if (![".yaml", ".yml", ".json"].includes(extension)) throw new InputError(`--grid: ${file} must be a .yaml, .yml or .json file`);
  const source = await readTextFile(file, "--grid");
  try {
    return extension === ".json" ? JSON.parse(source) : parseYaml(source);
  } catch (error) {
    throw new InputError(`${file}: ${(error as Error).message}`);
  }
}

function table(rows: string[][]): string[] {
  const widths = (rows[0] ?? []).map((_, column) => Math.max(...rows.map((row) => (row[column] ?? "").length)));
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  ").trimEnd());
}

/** The chosen configuration per bin (a row, described by `about`) and budget (a column), with its cross-validated accuracy. */
function choiceTable(entries: readonly AllocationEntry[], header: readonly string[], rows: readonly { bin: number; about: string[] }[]): string[] {
  const budgets = [...new Set(entries.map((entry) => entry.budget))].sort((a, b) => a - b);
  return table([
    [...header, ...budgets.map((budget) => `N=${budget}`)],
    ...rows.map(({ bin, about }) => [
      ...about,
      ...budgets.map((budget) => {
        const entry = entries.find((candidate) => candidate.bin === bin && candidate.budget === budget);
        return entry === undefined ? "-" : `${entry.label} ${entry.accuracy.toFixed(2)}`;
      }),
    ]),
  ]);
}

/**
 * What compute-optimal-spread runs in each bin at each calibrated budget N, N being an average per
 * problem that includes the difficulty estimate's samples: the configuration and its budget, then
 * the generations per problem and the accuracy the calibration expects of the whole spread.
 */
export function spreadChoices(entries: readonly AllocationEntry[], samples: number): string[] {
  const bins = [...new Set(entries.map((entry) => entry.bin))].sort((a, b) => a - b);
  const budgets = [...new Set(entries.map((entry) => entry.budget))].filter((budget) => budget > samples).sort((a, b) => a - b);
  const spreads = budgets.map((budget) => spreadAcrossBins(entries, budget - samples));
  const chosen = (spread: Map<number, AllocationEntry> | null) => (spread === null ? [] : [...spread.values()]);
  const problems = (spread: Map<number, AllocationEntry> | null) => chosen(spread).reduce((sum, entry) => sum + entry.problems, 0);
  const meanOf = (spread: Map<number, AllocationEntry> | null, value: (entry: AllocationEntry) => number) =>
    chosen(spread).reduce((sum, entry) => sum + value(entry) * entry.problems, 0) / problems(spread);
  return [
    `compute-optimal-spread, its choice per bin at an average of N generations per problem (${samples} of them the difficulty estimate's):`,
    ...table([
      ["bin", ...budgets.map((budget) => `N=${budget}`)],
      ...bins.map((bin) => [String(bin), ...spreads.map((spread) => {
        const entry = spread?.get(bin);
        return entry === undefined ? "-" : `${entry.label}@${entry.budget}`;
      })]),
      ["generations", ...spreads.map((spread) => (spread === null ? "-" : (samples + meanOf(spread, (entry) => entry.budget)).toFixed(1)))],
      ["accuracy", ...spreads.map((spread) => (spread === null ? "-" : meanOf(spread, (entry) => entry.accuracy).toFixed(2)))],
    ]),
  ];
}

/** The oracle section's choices, each bin with the range of its calibration problems' pass rates. */
function oracleChoices(oracle: NonNullable<AllocationTable["oracle"]>, difficulty: Calibration["difficulty"]): string[] {
  const bins = [...new Set(oracle.entries.map((entry) => entry.bin))].sort((a, b) => a - b);
  const rows = bins.map((bin) => {
    const passRates = difficulty.map((record) => record.oracle.passRate).filter((passRate) => binOfScore(passRate, oracle.edges) === bin);
    const [low, high] = [Math.min(...passRates), Math.max(...passRates)];
    return { bin, about: [String(bin), low === high ? low.toFixed(2) : `${low.toFixed(2)}-${high.toFixed(2)}`, String(passRates.length)] };
  });
  return [
    `oracle bin edges (pass rate): ${oracle.edges.map((edge) => edge.toFixed(2)).join(", ")}`,
    "chosen configuration per oracle bin and budget (for compute-optimal with difficulty oracle; 2-fold cross-validated accuracy):",
    ...choiceTable(oracle.entries, ["bin", "pass rate", "problems"], rows),
  ];
}

function printCalibration({ table: allocation, difficulty, bins, grid }: Calibration, config: CalibrateConfig): void {
  const tokens = (pick: (record: Calibration["difficulty"][number]) => number | undefined) =>
    difficulty.reduce((sum, record) => sum + (pick(record) ?? 0), 0).toLocaleString("en-US");
  const lines = [
    `difficulty: ${difficulty.length} problems; predicted = mean final score of ${config.samples} samples, oracle = pass rate of ${config.oracleSamples} samples`,
    `  generated tokens: estimate ${tokens((record) => record.compute?.generatedTokens)}, oracle ${tokens((record) => record.oracle.compute.generatedTokens)} (for analysis only)`,
    ...(allocation === null ? [] : [`bin edges (predicted score): ${allocation.difficulty.edges.map((edge) => edge.toFixed(3)).join(", ")}`]),
    "",
    ...table([
      ["bin", "problems", "predicted score", "oracle pass rate", "mean level"],
      ...bins.map((bin) => [
        String(bin.bin),
        String(bin.problems),
        `${bin.minScore.toFixed(3)}-${bin.maxScore.toFixed(3)}`,
        bin.oraclePassRate.toFixed(2),
        bin.meanLevel === null ? "-" : bin.meanLevel.toFixed(1),
      ]),
    ]),
    "",
  ];
  const gradingFailures = grid.reduce((sum, run) => sum + run.gradingFailures, 0);
  if (allocation === null) {
    lines.push(`difficulty: ${join(config.out, DIFFICULTY_FILE)} (for deliberate bench --difficulty-file)`);
  } else {
    lines.push(
      "chosen configuration per bin and budget (2-fold cross-validated accuracy):",
      ...choiceTable(allocation.entries, ["bin"], bins.map(({ bin }) => ({ bin, about: [String(bin)] }))),
      "",
      ...spreadChoices(allocation.entries, allocation.difficulty.samples),
      "",
      ...(allocation.oracle === undefined ? [] : [...oracleChoices(allocation.oracle, difficulty), ""]),
      `grid: ${grid.reduce((sum, run) => sum + run.items, 0)} work items, ${grid.reduce((sum, run) => sum + run.errors, 0)} errors, ` +
        `${formatDuration(grid.reduce((sum, run) => sum + run.elapsedMs, 0))} in this run`,
      ...(gradingFailures > 0 ? [`${gradingFailuresNote(gradingFailures).replace(/ \(--grade-timeout.*\)$/, "")}; the table is built without them`] : []),
      `report: deliberate report ${grid.map((run) => run.dir).join(" ")}`,
      `table:  ${config.allocationOut}`,
    );
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** One note per configuration skipped somewhere, with the first budget's reason. */
export function printSkipped(config: CalibrateConfig): void {
  const labels = [...new Set(config.skipped.map((skip) => skip.label))];
  for (const label of labels) {
    const skips = config.skipped.filter((skip) => skip.label === label);
    const first = skips[0] as (typeof skips)[number];
    process.stderr.write(`skipping ${label} at N=${skips.map((skip) => skip.budget).join(",")}: its parameters do not hold there (N=${first.budget}: ${first.reason})\n`);
  }
}

/** The work a calibration would do, for --dry-run: the difficulty pass over `problems` and the grid's run at each budget. */
export function describeCalibrationPlan(config: CalibrateConfig, problems: readonly Problem[]): string {
  const grid = config.difficultyOnly ? [] : config.runs.map((run) => describePlan(run, problems));
  return [`difficulty pass: ${problems.length} problems, into ${config.out}`, ...grid].join("\n");
}

/** A progress display for each phase of a calibration, announced by a line on stderr when there is one. */
export function phaseProgress(run: RunSettings): (phase: string) => BenchProgress | null {
  return (phase) => {
    const display = createProgress(run.progress, run.progressIntervalS);
    if (display !== null) process.stderr.write(`${phase}\n`);
    return display;
  };
}

export function registerCalibrate(program: Command): void {
  const command = program
    .command("calibrate")
    .description("Estimate each calibration problem's difficulty, run a strategy grid at each budget, and write the allocation table compute-optimal uses")
    .option("--dataset <name>", `problems: ${DATASETS.join(", ")} (default synth)`)
    .option("--data-file <path>", "a MATH-style JSONL file instead of a named dataset")
    .option("--split <split>", "synth: train, calibration or test (default calibration)")
    .option("--n <n>", "synth: problems to generate, spread over the levels (default 100)")
    .option("--data-seed <n>", "synth: seed of the problem generator (default 1)")
    .option("--ladder <id>", `synth: the difficulty ladder, ${LADDER_IDS.join(" or ")} (default ${DEFAULT_LADDER}; see data synth --help)`)
    .option("--level <levels>", "keep these levels, comma-separated (e.g. 4,5)")
    .option("--limit <n>", "at most n problems, after the filters and the shuffle")
    .option("--shuffle-seed <n>", "shuffle the problems with this seed before the limit")
    .option("--samples <k>", "samples of the difficulty estimate (the table's; compute-optimal draws as many) (default 4)", positiveInteger("--samples"))
    .option("--oracle-samples <n>", "samples graded against the gold answer for the oracle pass rate (analysis only) (default 16)", positiveInteger("--oracle-samples"))
    .option("--budgets <list>", "budgets N in generations, comma-separated (default 1,2,4,8,16)")
    .option("--grid <file>", "YAML or JSON list of {label, strategy, params} replacing the default grid")
    .option("--seeds <n>", "grid runs per (problem, configuration, budget), seeds 0 to n-1 (default 1)")
    .option("--max-steps <n>", "most steps in a solution (default 32)")
    .option("--max-step-tokens <n>", "most tokens in a step (default 256)")
    .option("--temperature <t>", "sampling temperature (default 0.8)")
    .option("--top-p <p>", "nucleus sampling mass (default 1)");
  addModelOptions(command)
    .option("--concurrency <n>", "problems searched at once; their model calls share batches (default 8)")
    .option("--progress <mode>", `${PROGRESS_MODES.join(", ")}: auto is a bar on a terminal, else lines (default auto)`)
    .option("--progress-interval <seconds>", "seconds between progress lines (default 30)")
    .option("--cache-dir <dir>", "dataset cache directory (default $DELIBERATE_CACHE, else ~/.cache/deliberate)")
    .option("--out <dir>", "the run directory; required")
    .option("--allocation-out <file>", "where the allocation table goes (default <out>/allocation.json)")
    .option("--difficulty-only", "run only the difficulty pass (any split, e.g. --split test): writes <out>/difficulty.jsonl with each problem's oracle pass rate; no grid, no table")
    .option("--dry-run", "validate the settings and the problems, print the work planned, and stop (no model is loaded, nothing is written)")
    .addHelpText("after", EXAMPLE)
    .action(async (_options: unknown, self: Command) => {
      const { grid: gridFile, dryRun, ...all } = self.opts<{ grid?: string; dryRun?: boolean }>();
      const { served, rest: flags } = splitServedFlags(all);
      const input: Record<string, unknown> = { ...flags };
      if (gridFile !== undefined) input.grid = await readGridFile(gridFile);
      const config = parseCalibrateConfig(input, (path) =>
        path[0] === "grid" && gridFile !== undefined
          ? `${gridFile}: [${String(path[1])}]${path.slice(2).map((key) => `.${String(key)}`).join("")}`
          : flagName(String(path[0])),
      );
      if (!config.difficultyOnly) printSkipped(config);
      const { experiment, run } = config.runs[0] as CalibrateConfig["runs"][number];
      if (dryRun) {
        const problems = await loadBenchProblems(config.runs[0] as CalibrateConfig["runs"][number]);
        process.stdout.write(`${describeCalibrationPlan(config, problems)}\ndry run: nothing was run or written\n`);
        return;
      }
      // The model flags always have values here (their defaults), and --verifier none was refused.
      const models = await loadModels({
        ...served,
        policy: experiment.policy as string,
        verifier: experiment.verifier as string,
        device: run.device,
        threads: run.threads ?? undefined,
        ...(experiment.exitThreshold !== undefined ? { exitThreshold: experiment.exitThreshold } : {}),
        ...(run.depthBatching !== null ? { depthBatching: run.depthBatching } : {}),
      });
      try {
        const result = await untilStopped((signal) =>
          calibrate(config, {
            policy: models.policy,
            verifier: models.verifier as StepVerifier,
            signal,
            progress: phaseProgress(run),
          }),
        );
        if (result !== null) printCalibration(result, config);
      } finally {
        await models.close();
      }
    });
}
