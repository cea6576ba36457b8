/**
 * `deliberate sweep-verifier`: what search gains over one sample as a function of the verifier's
 * quality. The strategies run at one budget on the synthetic test split with simulated verifiers of
 * chosen step AUC (the exact checker with calibrated noise: `--verifier rule@AUC`) and with the
 * learned verifier (the embedded PRM), all on the same problems and policy seeds; one sample per
 * problem gives pass@1. Each verifier's step scores are logged with the checker's labels, so that
 * its step AUC is measured on the prefixes its searches scored. With --calibrate-n, each verifier
 * first calibrates compute-optimal's allocation table with its own scores (`deliberate calibrate`'s
 * difficulty pass and grid, in the verifier's directory), and its compute-optimal runs with that
 * table. Every run is a bench run: a stopped sweep resumes.
 */
import type { Command } from "commander";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { runsPerBudget, type Configuration } from "../bench/per-budget.js";
import { createProgress, formatDuration, gradingFailuresNote } from "../bench/progress.js";
import { describePlan, loadBenchProblems, runBench } from "../bench/run.js";
import { StepScoreLog, stepAucs } from "../bench/step-score-log.js";
import { checkRunDirectory } from "../bench/store.js";
import type { BenchConfig } from "../bench/config.js";
import { calibrate, DEFAULT_GRID, DEFAULT_SAMPLES, parseCalibrateConfig, type CalibrateConfig, type GridEntry } from "../calibration/calibrate.js";
import { defaultAllocationTable } from "../allocation/table.js";
import type { Policy, StepVerifier } from "../policy.js";
import type { Problem } from "../../datasets/problem.js";
import { BENCH_GRADER_OPTIONS, Grader } from "../../datasets/answer/grader.js";
import { measureVerifierSweep, sweepTable, writeVerifierSweep, type AllocationUsed, type SweepCalibration, type SweepSetting } from "../report/verifier-sweep.js";
import { describeCalibrationPlan, phaseProgress, printSkipped } from "./calibrate.js";
import { chooseConfigurations, flagOfPath, GRADE_TIMEOUT_FLAG, LADDER_FLAG, PROGRESS_INTERVAL_FLAG, syntheticBenchSettings, withFileFlags } from "./compare.js";
import { addModelOptions, loadModels, loadStepVerifier, parseSimulatedVerifier, positiveInteger, type ModelFlags } from "./model-options.js";
import { untilStopped } from "./stop-signals.js";
import { fileParamFlags, flagName } from "./strategy-flags.js";
import { InputError } from "../errors.js";
import { getStrategy, STRATEGIES } from "../../strategies/registry.js";
import { isSimulatedAuc } from "../../verifiers/simulated-rule.js";

interface SweepFlags extends ModelFlags {
  out: string;
  n: number;
  ladder?: string;
  aucs: string;
  budget: number;
  strategies: string;
  /** Calibrate compute-optimal's table with each verifier on this many calibration problems; off when absent. */
  calibrateN?: number;
  /** compute-optimal's table (its file parameter's flag, --allocation). */
  allocation?: string;
  concurrency: number;
  progress: string;
  progressInterval?: string;
  gradeTimeout?: string;
  dryRun?: boolean;
}

/** One sample per problem: pass@1, the baseline every gain is measured from. It needs no verifier. */
const ONE_SAMPLE: Configuration = { label: "one-sample", strategy: "best-of-n", params: { select: "majority" } };

/**
 * The grid of a sweep's calibration: the grid behind models/allocation.json
 * (benchmarks/calibration-grid.yaml, calibrate's default grid cut to six configurations), so that a
 * verifier's own table and the shipped one choose among the same configurations.
 */
const SHIPPED_GRID_LABELS = ["best-of-n-weighted", "best-of-n-majority", "beam-w4", "lookahead-k1", "dvts-w4", "revision-r4"];
export const SWEEP_CALIBRATION_GRID: readonly GridEntry[] = DEFAULT_GRID.filter((entry) => SHIPPED_GRID_LABELS.includes(entry.label));

/**
 * The budgets a sweep at `budget` calibrates: the powers of two up to what compute-optimal gives
 * the table's choice after its difficulty estimate. It runs the entry at the largest calibrated
 * budget that fits there, so a larger one would never be used.
 */
export function calibrationBudgets(budget: number): number[] {
  const budgets: number[] = [];
  for (let next = 1; next <= budget - DEFAULT_SAMPLES; next *= 2) budgets.push(next);
  return budgets;
}

const allocates = (entry: Configuration) => getStrategy(entry.strategy).allocates === true;

/** Fails naming --calibrate-n where calibrating a table would be in vain or would clash with another flag. */
function checkCalibrationFlags(flags: SweepFlags, strategies: readonly Configuration[]): void {
  if (flags.calibrateN === undefined) return;
  if (flags.allocation !== undefined) throw new InputError("--calibrate-n: compute-optimal runs with each verifier's own calibrated table; leave out --allocation");
  if (!strategies.some(allocates)) {
    throw new InputError(`--calibrate-n: no configuration in --strategies ${flags.strategies} allocates by difficulty (compute-optimal), so there is no table to calibrate`);
  }
  if (calibrationBudgets(flags.budget).length === 0) {
    throw new InputError(
      `--calibrate-n: at --budget ${flags.budget}, compute-optimal spends the whole budget on its ${DEFAULT_SAMPLES}-sample difficulty estimate and runs no table entry; ` +
        `calibrate at a --budget above ${DEFAULT_SAMPLES}`,
    );
  }
}

/**
 * The calibration of compute-optimal's table with one verifier, into `dir`: what `deliberate
 * calibrate` does, on `problemCount` synthetic calibration problems with the sweep's step limits and
 * run settings, with the grid of the shipped table at the budgets of `calibrationBudgets`.
 */
function stageCalibration(flags: SweepFlags, problemCount: number, verifier: string, dir: string): CalibrateConfig {
  const settings = { ...syntheticBenchSettings({ ...flags, n: problemCount }), split: "calibration", verifier };
  return parseCalibrateConfig({ ...settings, budgets: calibrationBudgets(flags.budget), grid: [...SWEEP_CALIBRATION_GRID], out: dir }, (path) =>
    path[0] === "n" ? "--calibrate-n" : flagName(String(path[0])),
  );
}

/** The table a stage's compute-optimal runs with: its own calibration's, else --allocation, else the shipped one; null when no configuration allocates. */
function allocationUsed(flags: SweepFlags, strategies: readonly Configuration[], calibration: CalibrateConfig | null): AllocationUsed | null {
  if (!strategies.some(allocates)) return null;
  if (calibration !== null) return { file: calibration.allocationOut, source: "calibrated" };
  return flags.allocation === undefined ? { file: defaultAllocationTable(), source: "shipped" } : { file: flags.allocation, source: "given" };
}

function parseAucs(list: string): number[] {
  const aucs = list.split(",").map((part) => part.trim());
  const bad = aucs.find((part) => part === "" || !isSimulatedAuc(Number(part)));
  if (bad !== undefined) throw new InputError(`--aucs: each simulated verifier's step AUC must be a number in (0.5, 1], got "${bad}" in "${list}"`);
  return [...new Set(aucs.map(Number))].sort((a, b) => a - b);
}

/**
 * A stage of the sweep: a bench run with one verifier (null: none; its steps are then not logged),
 * and with --calibrate-n the calibration that makes its compute-optimal's table first.
 */
interface Stage {
  name: string;
  setting: Omit<SweepSetting, "aucs" | "runDir" | "allocation"> | null;
  /** The stage's bench run, its compute-optimal with the table in the file `table` (default: --allocation, else the shipped table). */
  run: (table?: string) => BenchConfig;
  calibration: CalibrateConfig | null;
  /** The table its compute-optimal runs with, for the report; null when no configuration allocates. */
  allocation: AllocationUsed | null;
}

/**
 * The table a stage's run is planned with before any work: its calibration's once written (by an
 * earlier run of the sweep). Until then the default stands in, so that the run is validated and its
 * work counted (the same work items), and `final` is false: the run planned is not the one that will
 * run, so its directory cannot be checked against it.
 */
function plannedTable(stage: Stage): { table: string | undefined; final: boolean } {
  if (stage.calibration === null) return { table: undefined, final: true };
  const written = existsSync(stage.calibration.allocationOut);
  return { table: written ? stage.calibration.allocationOut : undefined, final: written };
}

export function registerSweepVerifier(program: Command): void {
  const command = program
    .command("sweep-verifier")
    .description(
      "The verifier-quality sweep: the gain over one sample (pass@1) of PRM-weighted best-of-N, beam search and compute-optimal allocation at one budget, " +
        "against the step AUC of simulated verifiers (the synthetic task's exact checker with calibrated noise, --verifier rule@AUC), with the learned " +
        "verifier (--verifier, default the embedded PRM) placed on the curve at its own measured step AUC; on the synthetic test split with the embedded policy",
    )
    .option("--out <dir>", "sweep directory: one bench run per verifier, verifier-sweep.md, verifier-sweep.json, plots/verifier-sweep.svg", "runs/verifier-sweep")
    .option("--n <n>", "synthetic test problems, spread over levels 1-5", positiveInteger("--n"), 100)
    .option(...LADDER_FLAG)
    .option("--aucs <list>", "step AUCs of the simulated verifiers, each in (0.5, 1]", "0.6,0.7,0.8,0.9,1.0")
    .option("--budget <n>", "budget N in generations", positiveInteger("--budget"), 16)
    .option("--strategies <list>", "configurations of `deliberate compare`, comma-separated", "best-of-n,beam-w4,compute-optimal")
    .option(
      "--calibrate-n <n>",
      "calibrate compute-optimal's allocation table with each verifier first, as `deliberate calibrate` does, on n synthetic calibration problems " +
        `(into <verifier's directory>/calibration: the difficulty pass, and the grid of models/allocation.json at budgets 1, 2, 4, ... up to --budget minus the ${DEFAULT_SAMPLES} estimate samples); ` +
        "default off: compute-optimal takes --allocation, or the shipped table, calibrated with the embedded PRM",
      positiveInteger("--calibrate-n"),
    )
    .option("--concurrency <n>", "problems searched at once", positiveInteger("--concurrency"), 8)
    .option("--progress <mode>", "auto, bar, lines or none", "auto")
    .option(...PROGRESS_INTERVAL_FLAG)
    .option(...GRADE_TIMEOUT_FLAG)
    .option("--dry-run", "validate the settings, print the work planned, and stop (no model is loaded, nothing is written)");
  for (const option of fileParamFlags(STRATEGIES)) command.addOption(option);
  addModelOptions(command)
    .addHelpText(
      "after",
      "\n--verifier names the learned verifier placed on the curve (none: simulated verifiers only).\n" +
        "Stopped (Ctrl-C), the same command resumes. Then: read <out>/verifier-sweep.md.\n\n" +
        "Example (three simulated verifiers and the embedded PRM, 10 problems per level):\n" +
        "  deliberate sweep-verifier --n 50 --aucs 0.6,0.8,1.0 --concurrency 16 --out runs/verifier-sweep\n" +
        "The same with compute-optimal's table calibrated per verifier on 50 calibration problems:\n" +
        "  deliberate sweep-verifier --n 50 --aucs 0.6,0.8,1.0 --calibrate-n 50 --concurrency 16 --out runs/verifier-sweep-calibrated\n",
    )
    .action(async (flags: SweepFlags) => {
      const aucs = parseAucs(flags.aucs);
      if (flags.verifier === "rule" || parseSimulatedVerifier(flags.verifier) !== null) {
        throw new InputError(`--verifier ${flags.verifier}: the sweep's --verifier is the learned verifier placed on the curve; give the simulated ones with --aucs`);
      }
      const strategies = chooseConfigurations(flags.strategies);
      checkCalibrationFlags(flags, strategies);
      const bench = syntheticBenchSettings(flags);
      const flagOf = flagOfPath(strategies);
      const stageRun = (verifier: string, configurations: readonly Configuration[], budget: number, dir: string) => (table?: string) => {
        const withTable = configurations.map((entry) => withFileFlags(entry, { ...flags, allocation: table ?? flags.allocation }));
        return runsPerBudget({ ...bench, verifier }, withTable, [budget], dir, flagOf, "strategies").runs[0] as BenchConfig;
      };
      const simulated = aucs.map((auc) => ({ kind: "simulated" as const, verifier: `rule@${auc}`, targetAuc: auc, dir: join(flags.out, `simulated-auc-${auc}`) }));
      const learned = flags.verifier === "none" ? [] : [{ kind: "learned" as const, verifier: flags.verifier, targetAuc: null, dir: join(flags.out, "learned") }];
      const stages: Stage[] = [
        { name: "one sample (pass@1)", run: stageRun("none", [ONE_SAMPLE], 1, join(flags.out, "one-sample")), setting: null, calibration: null, allocation: null },
        ...[...simulated, ...learned].map(({ dir, ...setting }) => {
          const calibration = flags.calibrateN === undefined ? null : stageCalibration(flags, flags.calibrateN, setting.verifier, join(dir, "calibration"));
          return {
            name: `${setting.kind} verifier ${setting.verifier}`,
            run: stageRun(setting.verifier, strategies, flags.budget, dir),
            setting,
            calibration,
            allocation: allocationUsed(flags, strategies, calibration),
          };
        }),
      ];
      // Every run is built before any work, so that a bad setting fails first.
      const planned = stages.map((stage) => stage.run(plannedTable(stage).table));
      for (const skip of planned.flatMap((run) => run.experiment.skipped)) process.stderr.write(`skipping ${skip.label} at N=${skip.budget}: ${skip.reason}\n`);
      const calibrations = stages.flatMap((stage) => stage.calibration ?? []);

      const problems = await loadBenchProblems(planned[0] as BenchConfig);
      if (flags.dryRun) {
        const calibrationProblems = calibrations[0] === undefined ? [] : await loadBenchProblems(calibrations[0].runs[0] as BenchConfig);
        process.stdout.write(`${await describeSweepPlan(stages, planned, problems, calibrationProblems)}\ndry run: nothing was run or written\n`);
        return;
      }
      if (calibrations[0] !== undefined) printSkipped(calibrations[0]);
      const models = await loadModels({ ...flags, verifier: "none" });
      // One grader for every stage: its workers start once. A grading that does not finish is
      // retried, then recorded as a grading failure (left out of every number), never counted wrong:
      // the first 50-problem sweep, with a 5 s limit and no retry on two loaded cores, graded 17 of
      // 950 right answers wrong when grading workers started cold.
      const grader = new Grader({ ...BENCH_GRADER_OPTIONS, timeoutMs: (planned[0] as BenchConfig).run.gradeTimeoutS * 1000 });
      const started = performance.now();
      const settings: SweepSetting[] = [];
      let gradingFailures = 0;
      try {
        const done = await untilStopped(async (signal) => {
          for (const [index, stage] of stages.entries()) {
            const { experiment } = planned[index] as BenchConfig;
            process.stderr.write(`[${index + 1}/${stages.length}] ${stage.name}: N=${experiment.budgets[0]} ${experiment.strategies.map((s) => s.label).join(", ")}\n`);
            const { run, aucs: measured, summary } = await runStage(stage, { ...flags, verifier: stage.setting?.verifier ?? "none" }, { policy: models.policy, problems, grader, signal });
            gradingFailures += summary.gradingFailures;
            if (summary.regraded > 0) process.stderr.write(`  graded again ${summary.regraded} answers whose grading had not finished in an earlier run\n`);
            if (stage.setting !== null && measured !== null) settings.push({ ...stage.setting, runDir: run.out, aucs: measured, allocation: stage.allocation });
          }
          return true;
        });
        if (done === null) return;
      } finally {
        await models.close();
        await grader.close();
      }
      if (gradingFailures > 0) process.stderr.write(`warning: ${gradingFailuresNote(gradingFailures)}\n`);
      const sweep = await measureVerifierSweep(
        (planned[0] as BenchConfig).out,
        settings,
        strategies.map((entry) => entry.label),
        flags.budget,
        calibrationSummary(flags, calibrations[0]),
      );
      const written = await writeVerifierSweep(sweep, flags.out, ["deliberate", ...process.argv.slice(2)].join(" "));
      process.stdout.write(
        `${sweepTable(sweep)}\n\n${problems.length} problems, ${stages.length} runs${calibrations.length > 0 ? ` (and ${calibrations.length} calibrations)` : ""} in ${formatDuration(performance.now() - started)}\n` +
          `sweep: ${written.markdown} (also ${written.json} and ${written.plot})\n`,
      );
    });
}

/** The sweep's calibration settings for its report (they are the same for every verifier); null without one. */
function calibrationSummary(flags: SweepFlags, calibration: CalibrateConfig | undefined): SweepCalibration | null {
  if (calibration === undefined || flags.calibrateN === undefined) return null;
  return {
    problems: flags.calibrateN,
    samples: calibration.samples,
    budgets: calibration.runs.map((run) => run.experiment.budgets[0] as number),
    grid: [...new Set(calibration.runs.flatMap((run) => run.experiment.strategies.map((entry) => entry.label)))],
  };
}

/**
 * What the sweep would do, for --dry-run: each stage's calibration (when it has one) and its run,
 * after checking that the run directories there hold runs of these settings.
 */
async function describeSweepPlan(
  stages: readonly Stage[],
  planned: readonly BenchConfig[],
  problems: readonly Problem[],
  calibrationProblems: readonly Problem[],
): Promise<string> {
  const lines: string[] = [];
  for (const [index, stage] of stages.entries()) {
    const run = planned[index] as BenchConfig;
    const { final } = plannedTable(stage);
    for (const calibrationRun of stage.calibration?.runs ?? []) await checkRunDirectory(calibrationRun.out, calibrationRun.experiment);
    if (final) await checkRunDirectory(run.out, run.experiment);
    if (stage.calibration !== null) {
      lines.push(`${stage.name}: first the calibration of its compute-optimal table, ${stage.calibration.allocationOut}`, describeCalibrationPlan(stage.calibration, calibrationProblems));
    }
    lines.push(`${stage.name}: ${describePlan(run, problems)}${final ? "" : ` (compute-optimal then with ${stage.calibration?.allocationOut})`}`);
  }
  return lines.join("\n");
}

/**
 * Runs one stage with its verifier: its calibration first when it has one (the verifier unlogged,
 * so that the step AUCs are the test searches' alone), then its bench run with the verifier's scores
 * logged beside it. Returns the run, the step AUCs measured on its log (null without a verifier) and
 * the bench summary. A stopped bench returns what it finished: the stage then throws the signal's
 * reason, so that the sweep stops there too.
 */
async function runStage(
  stage: Stage,
  flags: ModelFlags,
  shared: { policy: Policy; problems: Problem[]; grader: Grader; signal: AbortSignal },
) {
  const { signal } = shared;
  const verifier = await loadStepVerifier(flags);
  try {
    const table = stage.calibration === null || verifier === null ? undefined : await runCalibration(stage.calibration, verifier, shared);
    const run = stage.run(table);
    const progress = createProgress(run.run.progress, run.run.progressIntervalS);
    if (verifier === null) {
      const summary = await runBench(run, { ...shared, verifier: null, progress });
      signal.throwIfAborted();
      return { run, aucs: null, summary };
    }
    const log = await StepScoreLog.open(verifier, join(run.out, "step-scores.jsonl"));
    const summary = await runBench(run, { ...shared, verifier: log, progress });
    signal.throwIfAborted();
    const aucs = stepAucs(log.records);
    process.stderr.write(
      `  step AUC ${aucs.pooled.toFixed(3)} over ${aucs.correct + aucs.incorrect} prefixes (${aucs.incorrect} wrong); ` +
        `within problem ${aucs.withinProblem.toFixed(3)} over ${aucs.withinProblemPairs} pairs\n`,
    );
    return { run, aucs, summary };
  } finally {
    await verifier?.close();
  }
}

/** Runs (or resumes) a stage's calibration with its verifier; the file of the table it wrote. */
async function runCalibration(config: CalibrateConfig, verifier: StepVerifier, shared: { policy: Policy; grader: Grader; signal: AbortSignal }): Promise<string> {
  process.stderr.write(`  calibration: ${config.out}\n`);
  const { policy, grader, signal } = shared;
  await calibrate(config, { policy, verifier, grader, signal, progress: phaseProgress((config.runs[0] as BenchConfig).run) });
  process.stderr.write(`  table: ${config.allocationOut}\n`);
  return config.allocationOut;
}
