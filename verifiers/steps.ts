/**
 * Steps of a solution as verifiers see them. An empty or whitespace-only step is never a step: a
 * trailing step delimiter (or a model that writes the delimiter twice) must not add an empty step
 * whose score would stand in for the solution's (a known bug in a popular Python implementation,
 * where it made bad branches look good).
 */

/** The non-empty steps, in order. */
export function solutionSteps(steps: readonly string[]): string[] {
  return steps.filter((step) => step.trim() !== "");
}

/** Splits a solution text into its non-empty steps on `delimiter` (for the embedded models, "\n\n"). */
export function splitSolution(text: string, delimiter: string): string[] {
  return solutionSteps(text.split(delimiter));
}
