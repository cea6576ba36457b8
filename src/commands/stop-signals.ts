/** Ctrl-C and SIGTERM for long commands: stop taking work, keep what is finished, say how to resume. */
import { constants } from "node:os";

/**
 * Runs `work` with an AbortSignal that the first SIGINT or SIGTERM aborts (a second one quits at
 * once). Returns null when it was stopped, after telling the user that the same command resumes,
 * and sets the exit code to 128 + the signal's number.
 */
export async function untilStopped<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T | null> {
  const controller = new AbortController();
  let stopSignal: NodeJS.Signals | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopSignal !== null) process.exit(128 + constants.signals[signal]);
    stopSignal = signal;
    process.stderr.write(`\n${signal}: stopping; finished work is saved (${signal} again quits at once)\n`);
    controller.abort(new Error(`stopped by ${signal}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return await work(controller.signal);
  } catch (error) {
    if (stopSignal === null) throw error;
    process.stderr.write("interrupted; run the same command to resume\n");
    process.exitCode = 128 + constants.signals[stopSignal];
    return null;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
