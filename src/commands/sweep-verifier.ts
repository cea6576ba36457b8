/**
 * `deliberate sweep-verifier`: what search gains over one sample as a function of the verifier's
 * quality. The strategies run at one budget on the synthetic test split with simulated verifiers of
 * chosen step AUC (the exact checker with calibrated noise: `--verifier rule@AUC`) and with the
 * learned verifier (the embedded PRM), all on the same problems and policy seeds; one sample per
 * problem gives pass@1. Each verifier's step scores are logged with the checker's labels, so that
 * its step AUC is measured on the prefixes its searches scored. Every run is a bench run: a stopped
 * sweep resumes.
 */
import type { Command } from "commander";
import { join } from "node:path";
import { runsPerBudget, type Configuration } from "../bench/per-budget.js";
import { createProgress, formatDuration, gradingFailuresNote } from "../bench/progress.js";
import { describePlan, loadBenchProblems, runBench } from "../bench/run.js";
import { StepScoreLog, stepAucs } from "../bench/step-score-log.js";
import { checkRunDirectory } from "../bench/store.js";
import type { BenchConfig } from "../bench/config.js";
import type { Policy } from "../policy.js";
import type { Problem } from "../../datasets/problem.js";
import { BENCH_GRADER_OPTIONS, Grader } from "../../datasets/answer/grader.js";
import { measureVerifierSweep, sweepTable, writeVerifierSweep, type SweepSetting } from "../report/verifier-sweep.js";
import { chooseConfigurations, flagOfPath, GRADE_TIMEOUT_FLAG, syntheticBenchSettings, withFileFlags } from "./compare.js";
import { addModelOptions, loadModels, loadStepVerifier, parseSimulatedVerifier, positiveInteger, type ModelFlags } from "./model-options.js";
import { untilStopped } from "./stop-signals.js";
import { fileParamFlags } from "./strategy-flags.js";
import { InputError } from "../errors.js";
import { STRATEGIES } from "../../strategies/registry.js";
import { isSimulatedAuc } from "../../verifiers/simulated-rule.js";

interface SweepFlags extends ModelFlags {
  out: string;
  n: number;
  aucs: string;
  budget: number;
  strategies: string;
  concurrency: number;
  progress: string;
  gradeTimeout?: string;
  dryRun?: boolean;
}

/** One sample per problem: pass@1, the baseline every gain is measured from. It needs no verifier. */
const ONE_SAMPLE: Configuration = { label: "one-sample", strategy: "best-of-n", params: { select: "majority" } };

function parseAucs(list: string): number[] {
  const aucs = list.split(",").map((part) => part.trim());
  const bad = aucs.find((part) => part === "" || !isSimulatedAuc(Number(part)));
  if (bad !== undefined) throw new InputError(`--aucs: each simulated verifier's step AUC must be a number in (0.5, 1], got "${bad}" in "${list}"`);
  return [...new Set(aucs.map(Number))].sort((a, b) => a - b);
}

/** A stage of the sweep: a bench run, and the verifier it runs with (null: none; its steps are then not logged). */
interface Stage {
  name: string;
  run: BenchConfig;
  setting: Omit<SweepSetting, "aucs" | "runDir"> | null;
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
    .option("--aucs <list>", "step AUCs of the simulated verifiers, each in (0.5, 1]", "0.6,0.7,0.8,0.9,1.0")
    .option("--budget <n>", "budget N in generations", positiveInteger("--budget"), 16)
    .option("--strategies <list>", "configurations of `deliberate compare`, comma-separated", "best-of-n,beam-w4,compute-optimal")
    .option("--concurrency <n>", "problems searched at once", positiveInteger("--concurrency"), 8)
    .option("--progress <mode>", "auto, bar, lines or none", "auto")
    .option(...GRADE_TIMEOUT_FLAG)
    .option("--dry-run", "validate the settings, print the work planned, and stop (no model is loaded, nothing is written)");
  for (const option of fileParamFlags(STRATEGIES)) command.addOption(option);
  addModelOptions(command)
    .addHelpText(
      "after",
      "\n--verifier names the learned verifier placed on the curve (none: simulated verifiers only).\n" +
        "Stopped (Ctrl-C), the same command resumes. Then: read <out>/verifier-sweep.md.\n\n" +
        "Example (three simulated verifiers and the embedded PRM, 10 problems per level):\n" +
        "  deliberate sweep-verifier --n 50 --aucs 0.6,0.8,1.0 --concurrency 16 --out runs/verifier-sweep\n",
    )
    .action(async (flags: SweepFlags) => {
      const aucs = parseAucs(flags.aucs);
      if (flags.verifier === "rule" || parseSimulatedVerifier(flags.verifier) !== null) {
        throw new InputError(`--verifier ${flags.verifier}: the sweep's --verifier is the learned verifier placed on the curve; give the simulated ones with --aucs`);
      }
      const strategies = chooseConfigurations(flags.strategies).map((entry) => withFileFlags(entry, flags as unknown as Record<string, unknown>));
      const bench = syntheticBenchSettings(flags);
      const flagOf = flagOfPath(strategies);
      const stageRun = (verifier: string, configurations: Configuration[], budget: number, dir: string): BenchConfig => {
        const { runs, skipped } = runsPerBudget({ ...bench, verifier }, configurations, [budget], dir, flagOf, "strategies");
        for (const skip of skipped) process.stderr.write(`skipping ${skip.label} at N=${skip.budget}: ${skip.reason}\n`);
        return runs[0] as BenchConfig;
      };
      const simulated = aucs.map((auc) => ({ kind: "simulated" as const, verifier: `rule@${auc}`, targetAuc: auc, dir: join(flags.out, `simulated-auc-${auc}`) }));
      const learned = flags.verifier === "none" ? [] : [{ kind: "learned" as const, verifier: flags.verifier, targetAuc: null, dir: join(flags.out, "learned") }];
      const stages: Stage[] = [
        { name: "one sample (pass@1)", run: stageRun("none", [ONE_SAMPLE], 1, join(flags.out, "one-sample")), setting: null },
        ...[...simulated, ...learned].map(({ dir, ...setting }) => ({
          name: `${setting.kind} verifier ${setting.verifier}`,
          run: stageRun(setting.verifier, strategies, flags.budget, dir),
          setting,
        })),
      ];

      const problems = await loadBenchProblems(stages[0]?.run as BenchConfig);
      if (flags.dryRun) {
        for (const stage of stages) await checkRunDirectory(stage.run.out, stage.run.experiment);
        process.stdout.write(`${stages.map((stage) => `${stage.name}: ${describePlan(stage.run, problems)}`).join("\n")}\ndry run: nothing was run or written\n`);
        return;
      }
      const models = await loadModels({ ...flags, verifier: "none" });
      // One grader for every stage: its workers start once. A grading that does not finish is
      // retried, then recorded as a grading failure (left out of every number), never counted wrong:
      // the first 50-problem sweep, with a 5 s limit and no retry on two loaded cores, graded 17 of
      // 950 right answers wrong when grading workers started cold.
      const grader = new Grader({ ...BENCH_GRADER_OPTIONS, timeoutMs: (stages[0] as Stage).run.run.gradeTimeoutS * 1000 });
      const started = performance.now();
      const settings: SweepSetting[] = [];
      let gradingFailures = 0;
      try {
        const done = await untilStopped(async (signal) => {
          for (const [index, stage] of stages.entries()) {
            process.stderr.write(`[${index + 1}/${stages.length}] ${stage.name}: N=${stage.run.experiment.budgets[0]} ${stage.run.experiment.strategies.map((s) => s.label).join(", ")}\n`);
            const { aucs: measured, summary } = await runStage(stage, { ...flags, verifier: stage.setting?.verifier ?? "none" }, { policy: models.policy, problems, grader, signal });
            gradingFailures += summary.gradingFailures;
            if (summary.regraded > 0) process.stderr.write(`  graded again ${summary.regraded} answers whose grading had not finished in an earlier run\n`);
            if (stage.setting !== null && measured !== null) settings.push({ ...stage.setting, runDir: stage.run.out, aucs: measured });
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
        stages[0]?.run.out as string,
        settings,
        strategies.map((entry) => entry.label),
        flags.budget,
      );
      const written = await writeVerifierSweep(sweep, flags.out, ["deliberate", ...process.argv.slice(2)].join(" "));
      process.stdout.write(
        `${sweepTable(sweep)}\n\n${problems.length} problems, ${stages.length} runs in ${formatDuration(performance.now() - started)}\n` +
          `sweep: ${written.markdown} (also ${written.json} and ${written.plot})\n`,
      );
    });
}

/**
 * Runs one stage with its verifier (its scores logged beside the run); the step AUCs measured on
 * its log (null without a verifier) and the bench summary. A stopped bench returns what it finished: the stage then
 * throws the signal's reason, so that the sweep stops there too.
 */
async function runStage(
  stage: Stage,
  flags: ModelFlags,
  shared: { policy: Policy; problems: Problem[]; grader: Grader; signal: AbortSignal },
) {
  const { signal } = shared;
  const progress = createProgress(stage.run.run.progress, stage.run.run.progressIntervalS);
  const verifier = await loadStepVerifier(flags);
  if (verifier === null) {
    const summary = await runBench(stage.run, { ...shared, verifier: null, progress });
    signal.throwIfAborted();
    return { aucs: null, summary };
  }
  try {
    const log = await StepScoreLog.open(verifier, join(stage.run.out, "step-scores.jsonl"));
    const summary = await runBench(stage.run, { ...shared, verifier: log, progress });
    signal.throwIfAborted();
    const aucs = stepAucs(log.records);
    process.stderr.write(
      `  step AUC ${aucs.pooled.toFixed(3)} over ${aucs.correct + aucs.incorrect} prefixes (${aucs.incorrect} wrong); ` +
        `within problem ${aucs.withinProblem.toFixed(3)} over ${aucs.withinProblemPairs} pairs\n`,
    );
    return { aucs, summary };
  } finally {
    await verifier.close();
  }
}
