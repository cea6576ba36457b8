#!/usr/bin/env node
/** The `deliberate` command. Each sub-command lives in src/commands/ and registers itself here. */
import { Command, CommanderError } from "commander";
import { InputError, UnavailableError } from "./errors.js";
import { registerGrade } from "./commands/grade.js";
import { registerData } from "./commands/data.js";
import { registerSolve } from "./commands/solve.js";
import { registerBench } from "./commands/bench.js";
import { registerReport } from "./commands/report.js";
import { registerCompare } from "./commands/compare.js";
import { registerCalibrate } from "./commands/calibrate.js";
import { registerServe } from "./commands/serve.js";

export function buildProgram(): Command {
  const program = new Command("deliberate")
    .description(
      "Spend compute at test time to make language models reason better: search strategies, " +
        "process reward models, compute-optimal allocation, MATH grading and benchmark reports.",
    )
    .version("0.1.0")
    .showHelpAfterError("(run with --help for usage)");
  registerGrade(program);
  registerData(program);
  registerSolve(program);
  registerBench(program);
  registerReport(program);
  registerCompare(program);
  registerCalibrate(program);
  registerServe(program);
  return program;
}

async function main(): Promise<void> {
  // Piping into a reader that closes early (`deliberate data synth ... | head`) is not an error.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
    throw error;
  });
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) process.exit(error.exitCode);
    if (error instanceof InputError) {
      process.stderr.write(`deliberate: ${error.message}\n`);
      process.exit(2);
    }
    if (error instanceof UnavailableError) {
      process.stderr.write(`deliberate: ${error.message}\nThe run stopped: finished results are saved; run the same command again once the server is back.\n`);
      process.exit(3);
    }
    throw error;
  }
}

await main();
