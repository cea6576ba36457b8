/**
 * `deliberate compare`: the main job. A benchmark of the main strategies at budgets 1 to 64 on the
 * synthetic test split with the embedded models, then the comparison report: `bench` and `report`
 * with defaults chosen to finish in about a quarter of an hour on two CPU cores.
 */
import type { Command } from "commander";
import { DEFAULT_LADDER, LADDER_IDS } from "../../datasets/synth/generate.js";
import { runsPerBudget, type Configuration } from "../bench/per-budget.js";
import { createProgress, formatDuration, gradingFailuresNote } from "../bench/progress.js";
import { describePlan, loadBenchProblems, runBench } from "../bench/run.js";
import { checkRunDirectory } from "../bench/store.js";
import { writeReport } from "../report/report.js";
import { addModelOptions, loadModels, positiveInteger, splitServedFlags, type ModelFlags } from "./model-options.js";
import { untilStopped } from "./stop-signals.js";
import { fileParamFlags, fileParamsFromFlags, flagName } from "./strategy-flags.js";
import { InputError } from "../errors.js";
import { getStrategy, STRATEGIES, STRATEGY_NAMES } from "../../strategies/registry.js";

/**
 * The configurations compare knows by label. The main ones (the default) are PRM-weighted
 * best-of-N, majority voting, beam search and compute-optimal allocation, per problem and with the
 * budget spread over the benchmark (the budget is then an average per problem); `all` adds
 * look-ahead, DVTS and revision.
 */
const CONFIGURATIONS: readonly Configuration[] = [
  { label: "best-of-n", strategy: "best-of-n", params: { select: "weighted" } },
  { label: "majority", strategy: "best-of-n", params: { select: "majority" } },
  { label: "beam-w4", strategy: "beam", params: { beamWidth: 4 } },
  { label: "compute-optimal", strategy: "compute-optimal", params: {} },
  { label: "compute-optimal-spread", strategy: "compute-optimal", params: { spread: true } },
  { label: "lookahead-k1", strategy: "lookahead", params: { lookahead: 1 } },
  { label: "dvts-w4", strategy: "dvts", params: { beamWidth: 4 } },
  { label: "revision-r1", strategy: "revision", params: { ratio: 1 } },
  // The same chains, every attempt in one weighted vote instead of a pick per chain first.
  { label: "revision-r1-pool", strategy: "revision", params: { ratio: 1, withinChain: "pool" } },
  // Needs each problem's oracle pass rate (--difficulty-file); for analysis, not in `all`.
  { label: "compute-optimal-oracle", strategy: "compute-optimal", params: { difficulty: "oracle" } },
];
const MAIN = ["best-of-n", "majority", "beam-w4", "compute-optimal", "compute-optimal-spread"];
const ALL = [...MAIN, "lookahead-k1", "dvts-w4", "revision-r1", "revision-r1-pool"];

/**
 * The configurations named by --strategies: labels of CONFIGURATIONS, main, all, or registered
 * strategies with their default parameters.
 */
export function chooseConfigurations(list: string): Configuration[] {
  const labels = list.split(",").flatMap((part) => {
    const name = part.trim();
    return name === "main" ? MAIN : name === "all" ? ALL : [name];
  });
  return [...new Set(labels)].map((label) => {
    const found = CONFIGURATIONS.find((entry) => entry.label === label);
    if (found !== undefined) return found;
    if ((STRATEGY_NAMES as readonly string[]).includes(label)) return { label, strategy: label, params: {} };
    throw new InputError(
      `--strategies: no configuration ${label}; known: main, all, ${CONFIGURATIONS.map((entry) => entry.label).join(", ")}, or a strategy: ${STRATEGY_NAMES.join(", ")}`,
    );
  });
}

/** The file parameters given by their flags (`--allocation`), for the configurations whose strategy takes them. */
export function withFileFlags(entry: Configuration, flags: Readonly<Record<string, unknown>>): Configuration {
  const given = Object.entries(fileParamsFromFlags(getStrategy(entry.strategy), flags)).filter(([, path]) => path !== undefined);
  return given.length === 0 ? entry : { ...entry, params: { ...entry.params, ...Object.fromEntries(given) } };
}

/**
 * The flag that a field of the bench settings comes from, for messages. A configuration's issue is
 * in a file parameter (the others are fixed): named by its flag (`--allocation`).
 */
export function flagOfPath(strategies: readonly Configuration[]): (path: readonly PropertyKey[]) => string {
  return (path) => {
    if (path[0] !== "strategies") return flagName(String(path[0]));
    const entry = strategies[path[1] as number];
    return (entry && getStrategy(entry.strategy).fileParams?.[String(path[3])]?.flag) ?? "--strategies";
  };
}

/**
 * The bench settings of compare's runs, and of the verifier sweep's: the synthetic test split, the
 * step limits of the embedded models, the model and run flags.
 */
export function syntheticBenchSettings(
  flags: ModelFlags & { n: number; ladder?: string; concurrency: number; progress: string; progressInterval?: string; gradeTimeout?: string },
): Record<string, unknown> {
  return {
    dataset: "synth",
    split: "test",
    n: flags.n,
    ...(flags.ladder === undefined ? {} : { ladder: flags.ladder }),
    // The embedded models write steps of a few dozen characters and solutions of at most ~10 steps.
    maxSteps: 12,
    maxStepTokens: 64,
    policy: flags.policy,
    verifier: flags.verifier,
    device: flags.device,
    ...(flags.threads ? { threads: flags.threads } : {}),
    concurrency: flags.concurrency,
    progress: flags.progress,
    ...(flags.progressInterval === undefined ? {} : { progressInterval: flags.progressInterval }),
    ...(flags.gradeTimeout === undefined ? {} : { gradeTimeout: flags.gradeTimeout }),
  };
}

/** The --progress-interval option of compare and sweep-verifier (bench's and calibrate's are in their config's flags). */
export const PROGRESS_INTERVAL_FLAG = ["--progress-interval <seconds>", "seconds between progress lines (default 30)"] as const;

/** The --ladder option of compare and sweep-verifier (bench's and calibrate's are in their config's flags). */
export const LADDER_FLAG = ["--ladder <id>", `the synthetic task's difficulty ladder, ${LADDER_IDS.join(" or ")} (default ${DEFAULT_LADDER}; see data synth --help)`] as const;

/** The --grade-timeout option of compare and sweep-verifier (bench's is in its config's flags). */
export const GRADE_TIMEOUT_FLAG = [
  "--grade-timeout <seconds>",
  "time limit of one grading try (default 30); a grading that does not finish in 3 tries is left out of accuracy (counted and shown) and graded again when the same command runs again",
] as const;

interface CompareFlags extends ModelFlags {
  out: string;
  n: number;
  ladder?: string;
  budgets: string;
  seeds: number;
  strategies: string;
  difficultyFile?: string;
  concurrency: number;
  progress: string;
  progressInterval?: string;
  gradeTimeout?: string;
  dryRun?: boolean;
}

export function registerCompare(program: Command): void {
  const command = program
    .command("compare")
    .description(
      "The main job: benchmark PRM-weighted best-of-N, majority voting, beam search and compute-optimal allocation (per problem, and spread over the benchmark) " +
        "at budgets 1 to 64 on the synthetic test split with the embedded models, then write the comparison report",
    )
    .option("--out <dir>", "run directory (one bench run per budget in budget-N/, the report beside them)", "runs/compare")
    .option("--n <n>", "synthetic test problems, spread over levels 1-5", positiveInteger("--n"), 50)
    .option(...LADDER_FLAG)
    .option("--budgets <list>", "budgets N in generations", "1,4,16,64")
    .option("--seeds <n>", "runs per (problem, strategy, budget)", positiveInteger("--seeds"), 1)
    .option(
      "--strategies <list>",
      `configurations, comma-separated: main, all, labels among ${CONFIGURATIONS.map((entry) => entry.label).join(", ")}, or strategies with their defaults`,
      "main",
    )
    .option("--difficulty-file <path>", "oracle pass rates of the problems (difficulty.jsonl of `deliberate calibrate --difficulty-only`), for compute-optimal-oracle")
    .option("--concurrency <n>", "problems searched at once", positiveInteger("--concurrency"), 8)
    .option("--progress <mode>", "auto, bar, lines or none", "auto")
    .option(...PROGRESS_INTERVAL_FLAG)
    .option(...GRADE_TIMEOUT_FLAG)
    .option("--dry-run", "validate the settings and the problems, print the work planned, and stop (no model is loaded, nothing is written)");
  for (const option of fileParamFlags(STRATEGIES)) command.addOption(option);
  addModelOptions(command)
    .addHelpText("after", "\nStopped (Ctrl-C), the same command resumes. Then: open <out>/report.html.")
    .action(async (flags: CompareFlags) => {
      const budgets = flags.budgets.split(",").map((part) => Number(part.trim()));
      if (budgets.some((budget) => !Number.isInteger(budget) || budget <= 0)) throw new InputError(`--budgets: expected positive integers, got "${flags.budgets}"`);
      const strategies = chooseConfigurations(flags.strategies).map((entry) => withFileFlags(entry, flags as unknown as Record<string, unknown>));
      const bench = { ...syntheticBenchSettings(flags), seeds: flags.seeds, ...(flags.difficultyFile ? { difficultyFile: flags.difficultyFile } : {}) };
      const { runs, skipped } = runsPerBudget(bench, strategies, budgets, flags.out, flagOfPath(strategies), "strategies");
      for (const skip of skipped) process.stderr.write(`skipping ${skip.label} at N=${skip.budget}: ${skip.reason}\n`);

      const first = runs[0] as (typeof runs)[number];
      const problems = await loadBenchProblems(first);
      if (flags.dryRun) {
        for (const run of runs) await checkRunDirectory(run.out, run.experiment);
        process.stdout.write(`${runs.map((run) => describePlan(run, problems)).join("\n")}\ndry run: nothing was run or written\n`);
        return;
      }
      const models = await loadModels({ ...flags, ...splitServedFlags({ ...flags }).served });
      const started = performance.now();
      let gradingFailures = 0;
      try {
        const done = await untilStopped(async (signal) => {
          for (const run of runs) {
            process.stderr.write(`N=${run.experiment.budgets[0]}: ${run.experiment.strategies.map((s) => s.label).join(", ")}\n`);
            const progress = createProgress(run.run.progress, run.run.progressIntervalS);
            const summary = await runBench(run, { policy: models.policy, verifier: models.verifier, signal, problems, progress });
            gradingFailures += summary.gradingFailures;
            if (summary.regraded > 0) process.stderr.write(`  graded again ${summary.regraded} answers whose grading had not finished in an earlier run\n`);
          }
          return true;
        });
        if (done === null) return;
      } finally {
        await models.close();
      }
      const report = await writeReport(
        runs.map((run) => run.out),
        { out: flags.out },
      );
      if (gradingFailures > 0) process.stderr.write(`warning: ${gradingFailuresNote(gradingFailures)}\n`);
      process.stdout.write(
        `${problems.length} problems x ${strategies.length} strategies x budgets ${budgets.join(", ")} in ${formatDuration(performance.now() - started)}\n` +
          `report: ${report.html} (also ${report.markdown}, ${report.json} and ${report.plots.length} plots)\n`,
      );
    });
}
