/** `deliberate bench`: strategies x budgets x seeds over a dataset, results appended to a run directory. */
import { constants } from "node:os";
import type { Command } from "commander";
import { STRATEGY_NAMES } from "../../strategies/registry.js";
import { DEFAULT_LADDER, LADDER_IDS } from "../../datasets/synth/generate.js";
import { DATASETS, PROGRESS_MODES, resolveBenchConfig, type BenchConfig } from "../bench/config.js";
import { createProgress, formatDuration, gradingFailuresNote } from "../bench/progress.js";
import { cellAccuracy, checkKnownDifficulty, describePlan, loadBenchProblems, runBench, type BenchSummary } from "../bench/run.js";
import { checkRunDirectory } from "../bench/store.js";
import { addModelOptions, loadModels, splitServedFlags } from "./model-options.js";

const EXAMPLE = `
Examples:
  deliberate bench --strategies best-of-n,beam --budgets 1,4,16 --n 50 --out runs/synth
  deliberate bench --dataset math500 --level 4,5 --policy ./my-model --config sweep.yaml --out runs/m500
  deliberate bench --config sweep.yaml --out runs/big --shard 2/4      # slice 2 of 4, e.g. on a second machine

A config file (YAML or JSON) takes the flags' names in camelCase as keys; flags override it:
  dataset: synth
  n: 200
  budgets: [1, 4, 16, 64]
  seeds: 3
  strategies:
    - best-of-n
    - { label: majority, strategy: best-of-n, params: { select: majority } }
    - { label: beam-w8, strategy: beam, params: { beamWidth: 8 } }

compute-optimal with the oracle difficulty (what knowing each problem's difficulty would gain)
needs a table with an oracle section and the problems' pass rates:
  deliberate calibrate --difficulty-only --split test --n 100 --out runs/test-difficulty
  deliberate bench --config oracle.yaml --difficulty-file runs/test-difficulty/difficulty.jsonl --out runs/oracle
  where oracle.yaml has strategies: [{ label: co-oracle, strategy: compute-optimal, params: { difficulty: oracle, table: runs/cal/allocation.json } }]

Stopped (Ctrl-C, kill), the same command resumes: finished work items are skipped.`;

/** The config from the command's flags (those given, then the file, then the flags' defaults). */
async function configFromCommand(command: Command): Promise<BenchConfig> {
  const flags: Record<string, unknown> = {};
  const defaults: Record<string, unknown> = {};
  const { config: file, ...all } = command.opts<{ config?: string; dryRun?: boolean }>();
  // Served-model flags stay out of config.json (an API key must never be stored); --dry-run is not a setting of the run.
  const options = splitServedFlags(all).rest;
  delete options.dryRun;
  for (const [key, value] of Object.entries(options)) {
    (command.getOptionValueSource(key) === "default" ? defaults : flags)[key] = value;
  }
  return resolveBenchConfig({ flags, defaults, file });
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

function printSummary(summary: BenchSummary): void {
  const budgets = [...new Set(summary.accuracy.map((cell) => cell.budget))];
  const strategies = [...new Set(summary.accuracy.map((cell) => cell.strategy))];
  const width = Math.max(12, ...strategies.map((label) => label.length));
  const lines = [["% correct".padEnd(width), ...budgets.map((budget) => `N=${budget}`.padStart(7))].join(" ")];
  for (const strategy of strategies) {
    const cells = budgets.map((budget) => {
      const cell = summary.accuracy.find((entry) => entry.strategy === strategy && entry.budget === budget);
      const accuracy = cell === undefined ? null : cellAccuracy(cell);
      return (accuracy === null ? "-" : (100 * accuracy).toFixed(1)).padStart(7);
    });
    lines.push([strategy.padEnd(width), ...cells].join(" "));
  }
  const left = summary.items - summary.done;
  lines.push(
    "",
    `${summary.done} of ${summary.items} work items done (${summary.ranNow} in this run${left > 0 ? `, ${left} left` : ""}), ` +
      `${summary.errors} errors, ${formatDuration(summary.elapsedMs)}`,
  );
  if (summary.regraded > 0) lines.push(`graded again ${summary.regraded} answers whose grading had not finished in an earlier run`);
  if (summary.gradingFailures > 0) lines.push(gradingFailuresNote(summary.gradingFailures));
  if (summary.repairedBytes > 0) lines.push(`(cut off a torn last line of ${summary.repairedBytes} bytes; its item ran again)`);
  lines.push(`results: ${summary.resultsFile}`, `report:  deliberate report ${quote(summary.dir)}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}

export function registerBench(program: Command): void {
  const command = program
    .command("bench")
    .description("Benchmark search strategies at several budgets and seeds on a dataset; results go to <out>/results.jsonl as they finish")
    .option("--config <file>", "YAML or JSON settings: the flags' names in camelCase, strategies as {label, strategy, params}; flags override it")
    .option("--dataset <name>", `problems: ${DATASETS.join(", ")} (default synth)`)
    .option("--data-file <path>", "a MATH-style JSONL file instead of a named dataset")
    .option("--split <split>", "synth: train, calibration or test (default test)")
    .option("--n <n>", "synth: problems to generate, spread over the levels (default 100)")
    .option("--data-seed <n>", "synth: seed of the problem generator (default 1)")
    .option("--ladder <id>", `synth: the difficulty ladder, ${LADDER_IDS.join(" or ")} (default ${DEFAULT_LADDER}; see data synth --help)`)
    .option("--level <levels>", "keep these levels, comma-separated (e.g. 4,5)")
    .option("--subject <subjects>", "keep these subjects, comma-separated, case-insensitive")
    .option("--limit <n>", "at most n problems, after the filters and the shuffle")
    .option("--shuffle-seed <n>", "shuffle the problems with this seed before the limit")
    .option("--strategies <list>", `comma-separated: ${STRATEGY_NAMES.join(", ")}, or labels of the config file's strategies`)
    .option("--budgets <list>", "budgets N in generations, comma-separated (default 1,4,16,64)")
    .option("--seeds <n>", "runs per (problem, strategy, budget), seeds 0 to n-1 (default 1)")
    .option("--max-steps <n>", "most steps in a solution (default 32)")
    .option("--max-step-tokens <n>", "most tokens in a step (default 256)")
    .option("--temperature <t>", "sampling temperature (default 0.8)")
    .option("--top-p <p>", "nucleus sampling mass (default 1)")
    .option(
      "--difficulty-file <path>",
      "each problem's oracle pass rate, for compute-optimal with difficulty oracle: the difficulty.jsonl of `deliberate calibrate --difficulty-only` on the same problems",
    );
  addModelOptions(command)
    .option("--concurrency <n>", "work items searched at once; their model calls share batches (default 8)")
    .option("--item-timeout <seconds>", "record an item as failed when it runs longer than this")
    .option(
      "--grade-timeout <seconds>",
      "time limit of one grading try (default 30); a grading that does not finish in 3 tries is a grading failure, left out of accuracy and graded again on resume",
    )
    .option("--shard <i/n>", "run only slice i of n (1-based) of the work items, into results.shard-i-of-n.jsonl")
    .option("--progress <mode>", `${PROGRESS_MODES.join(", ")}: auto is a bar on a terminal, else lines (default auto)`)
    .option("--progress-interval <seconds>", "seconds between progress lines (default 30)")
    .option("--cache-dir <dir>", "dataset cache directory (default $DELIBERATE_CACHE, else ~/.cache/deliberate)")
    .option("--out <dir>", "the run directory (config.json and results); required")
    .option("--dry-run", "validate the configuration, the problems and the run directory, print the work planned, and stop (no model is loaded, nothing is written)")
    .addHelpText("after", EXAMPLE)
    .action(async (_options: unknown, self: Command) => {
      const config = await configFromCommand(self);
      for (const skip of config.experiment.skipped) process.stderr.write(`skipping ${skip.label} at N=${skip.budget}: ${skip.reason}\n`);
      const problems = await loadBenchProblems(config);
      checkKnownDifficulty(config, problems);
      await checkRunDirectory(config.out, config.experiment);
      if (self.opts<{ dryRun?: boolean }>().dryRun) {
        process.stdout.write(`${describePlan(config, problems)}\ndry run: the configuration, problems and run directory are valid; nothing was run or written\n`);
        return;
      }
      // The model flags always have values here (their defaults), so the labels are set.
      const models = await loadModels({
        ...splitServedFlags(self.opts()).served,
        policy: config.experiment.policy as string,
        verifier: config.experiment.verifier as string,
        device: config.run.device,
        threads: config.run.threads ?? undefined,
        ...(config.experiment.exitThreshold !== undefined ? { exitThreshold: config.experiment.exitThreshold } : {}),
        ...(config.run.depthBatching !== null ? { depthBatching: config.run.depthBatching } : {}),
      });
      const controller = new AbortController();
      let stopSignal: NodeJS.Signals | null = null;
      const onSignal = (signal: NodeJS.Signals) => {
        if (stopSignal !== null) process.exit(128 + constants.signals[signal]);
        stopSignal = signal;
        process.stderr.write(`\n${signal}: stopping; running items are aborted, finished ones are saved (${signal} again quits at once)\n`);
        controller.abort(new Error(`stopped by ${signal}`));
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      let summary: BenchSummary;
      try {
        summary = await runBench(config, {
          policy: models.policy,
          verifier: models.verifier,
          problems,
          signal: controller.signal,
          progress: createProgress(config.run.progress, config.run.progressIntervalS),
        });
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        await models.close();
      }
      printSummary(summary);
      if (summary.interrupted) {
        process.stderr.write(`interrupted; resume with the same command:\n  deliberate ${process.argv.slice(2).map(quote).join(" ")}\n`);
        process.exitCode = 128 + constants.signals[stopSignal ?? "SIGINT"];
      }
    });
}
