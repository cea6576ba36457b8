/**
 * `deliberate compare`: the main job. A benchmark of the main strategies at budgets 1 to 64 on the
 * synthetic test split with the embedded models, then the comparison report: `bench` and `report`
 * with defaults chosen to finish in about a quarter of an hour on two CPU cores.
 */
import type { Command } from "commander";
import { runsPerBudget, type Configuration } from "../bench/per-budget.js";
import { createProgress, formatDuration } from "../bench/progress.js";
import { loadBenchProblems, runBench } from "../bench/run.js";
import { writeReport } from "../report/report.js";
import { addModelOptions, loadModels, positiveInteger, type ModelFlags } from "./model-options.js";
import { untilStopped } from "./stop-signals.js";
import { InputError } from "../errors.js";

/**
 * PRM-weighted best-of-N, majority voting, beam search and compute-optimal allocation, per problem
 * and with the budget spread over the benchmark (the budget is then an average per problem).
 */
const MAIN_STRATEGIES: readonly Configuration[] = [
  { label: "best-of-n", strategy: "best-of-n", params: { select: "weighted" } },
  { label: "majority", strategy: "best-of-n", params: { select: "majority" } },
  { label: "beam-w4", strategy: "beam", params: { beamWidth: 4 } },
  { label: "compute-optimal", strategy: "compute-optimal", params: {} },
  { label: "compute-optimal-spread", strategy: "compute-optimal", params: { spread: true } },
];

interface CompareFlags extends ModelFlags {
  out: string;
  n: number;
  budgets: string;
  seeds: number;
  allocation?: string;
  concurrency: number;
  progress: string;
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
    .option("--budgets <list>", "budgets N in generations", "1,4,16,64")
    .option("--seeds <n>", "runs per (problem, strategy, budget)", positiveInteger("--seeds"), 1)
    .option("--allocation <table.json>", "compute-optimal's allocation table (default: the one shipped in models/)")
    .option("--concurrency <n>", "problems searched at once", positiveInteger("--concurrency"), 8)
    .option("--progress <mode>", "auto, bar, lines or none", "auto");
  addModelOptions(command)
    .addHelpText("after", "\nStopped (Ctrl-C), the same command resumes. Then: open <out>/report.html.")
    .action(async (flags: CompareFlags) => {
      const budgets = flags.budgets.split(",").map((part) => Number(part.trim()));
      if (budgets.some((budget) => !Number.isInteger(budget) || budget <= 0)) throw new InputError(`--budgets: expected positive integers, got "${flags.budgets}"`);
      const strategies = MAIN_STRATEGIES.map((entry) =>
        entry.strategy === "compute-optimal" && flags.allocation !== undefined ? { ...entry, params: { ...entry.params, table: flags.allocation } } : entry,
      );
      const bench = {
        dataset: "synth",
        split: "test",
        n: flags.n,
        seeds: flags.seeds,
        // The embedded models write steps of a few dozen characters and solutions of at most ~10 steps.
        maxSteps: 12,
        maxStepTokens: 64,
        policy: flags.policy,
        verifier: flags.verifier,
        device: flags.device,
        ...(flags.threads ? { threads: flags.threads } : {}),
        concurrency: flags.concurrency,
        progress: flags.progress,
      };
      const flagOf = (path: readonly PropertyKey[]) => (path[0] === "strategies" ? "--allocation" : `--${String(path[0])}`);
      const { runs, skipped } = runsPerBudget(bench, strategies, budgets, flags.out, flagOf, "strategies");
      for (const skip of skipped) process.stderr.write(`skipping ${skip.label} at N=${skip.budget}: ${skip.reason}\n`);

      const first = runs[0] as (typeof runs)[number];
      const problems = await loadBenchProblems(first);
      const models = await loadModels(flags);
      const started = performance.now();
      try {
        const done = await untilStopped(async (signal) => {
          for (const run of runs) {
            process.stderr.write(`N=${run.experiment.budgets[0]}: ${run.experiment.strategies.map((s) => s.label).join(", ")}\n`);
            const progress = createProgress(run.run.progress, run.run.progressIntervalS);
            await runBench(run, { policy: models.policy, verifier: models.verifier, signal, problems, progress });
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
      process.stdout.write(
        `${problems.length} problems x ${strategies.length} strategies x budgets ${budgets.join(", ")} in ${formatDuration(performance.now() - started)}\n` +
          `report: ${report.html} (also ${report.markdown}, ${report.json} and ${report.plots.length} plots)\n`,
      );
    });
}
