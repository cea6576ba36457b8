/** `deliberate report`: statistics, plots and tables of one or more benchmark runs. */
import type { Command } from "commander";
import { InputError } from "../errors.js";
import { writeReport } from "../report/report.js";
import { positiveInteger } from "./model-options.js";

interface ReportFlags {
  out?: string;
  resamples: number;
  seed: number;
  reference?: string;
  baseline?: string[];
}

function integer(flag: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!/^-?\d+$/.test(value) || Math.abs(parsed) >= 2 ** 31) throw new InputError(`${flag} must be a 32-bit integer, got "${value}"`);
    return parsed;
  };
}

export function registerReport(program: Command): void {
  program
    .command("report")
    .description(
      "Write report.md, a self-contained report.html and report.json for benchmark runs: accuracy with " +
        "95% bootstrap CIs per strategy and budget, generations, tokens, FLOPs, compute efficiency against " +
        "best-of-N, paired comparisons against a baseline (overall, per level and per predicted-difficulty bin), per-level results and plots. Several run " +
        "directories (and the shards in each) are merged; a work item found twice is an error.",
    )
    .argument("<runs...>", "run directories written by `deliberate bench`")
    .option("--out <dir>", "where to write the report (default: the run directory, when there is one)")
    .option("--resamples <n>", "bootstrap resamples", positiveInteger("--resamples"), 1000)
    .option("--seed <n>", "seed of the bootstrap resampling", integer("--seed"), 0)
    .option(
      "--reference <label>",
      "strategy label that compute efficiency is measured against (default: the one best-of-n configuration with weighted selection)",
    )
    .option(
      "--baseline <label[@N]>",
      "baseline of the paired comparisons (overall, per level and per predicted-difficulty bin): a strategy label, " +
        "compared with the other strategies at each budget, or label@N, compared with every other strategy and budget " +
        "(e.g. best-of-n@64). Repeat for several. Default: the efficiency reference",
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .action(async (runs: string[], flags: ReportFlags) => {
      const out = flags.out ?? (runs.length === 1 ? runs[0] : undefined);
      if (out === undefined) throw new InputError("--out is required when several run directories are given");
      const report = await writeReport(runs, {
        out,
        bootstrap: { resamples: flags.resamples, seed: flags.seed },
        reference: flags.reference,
        baselines: flags.baseline,
      });
      for (const warning of report.warnings) process.stderr.write(`warning: ${warning}\n`);
      process.stdout.write(`report: ${report.html}\n        ${report.markdown}\n        ${report.json}\n`);
    });
}
