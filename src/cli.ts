#!/usr/bin/env node
/** The `deliberate` command: runs the program (src/program.ts) and turns expected failures into one line and an exit status. */
import { CommanderError } from "commander";
import { describeExpectedError, UnavailableError } from "./errors.js";
import { buildProgram } from "./program.js";

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
    if (error instanceof UnavailableError) {
      process.stderr.write(`deliberate: ${error.message}\nThe run stopped: finished results are saved; run the same command again once the server is back.\n`);
      process.exit(3);
    }
    // Expected failures (input, file system, network, a model's limits) in one line; a bug with its stack.
    const message = describeExpectedError(error);
    if (message === null) throw error;
    process.stderr.write(`deliberate: ${message}\n`);
    process.exit(2);
  }
}

await main();
