/** The `deliberate` program: every sub-command, each from its file in src/commands/. Building it runs nothing. */
import { Command } from "commander";
import { registerGrade } from "./commands/grade.js";
import { registerData } from "./commands/data.js";
import { registerSolve } from "./commands/solve.js";
import { registerBench } from "./commands/bench.js";
import { registerReport } from "./commands/report.js";
import { registerCompare } from "./commands/compare.js";
import { registerCalibrate } from "./commands/calibrate.js";
import { registerServe } from "./commands/serve.js";
import { registerSweepVerifier } from "./commands/sweep-verifier.js";

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
  registerSweepVerifier(program);
  registerServe(program);
  return program;
}
