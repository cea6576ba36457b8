/**
 * Outcome scoring: one score per whole solution, the verifier's score at its last step (a PRM read
 * as an outcome verifier). Used where only final scores matter, such as estimating difficulty.
 */
import { scoreCounted, type ComputeMeter } from "../src/meter.js";
import type { StepVerifier } from "../src/policy.js";
import { outcomeScore } from "./aggregate.js";
import { solutionSteps } from "./steps.js";

/** Scores every solution (given as steps) in one verifier call; a solution with no steps scores 0. */
export async function scoreOutcomes(
  verifier: StepVerifier,
  problem: string,
  solutions: readonly (readonly string[])[],
  meter: ComputeMeter,
  signal?: AbortSignal,
): Promise<number[]> {
  const requests = solutions.map((steps) => ({ problem, steps: solutionSteps(steps) }));
  const scored = requests.filter((request) => request.steps.length > 0);
  const scores = await scoreCounted(verifier, scored, meter, signal);
  const outcomeOf = new Map(scored.map((request, index) => [request, outcomeScore(scores[index] ?? [])]));
  return requests.map((request) => outcomeOf.get(request) ?? 0);
}
