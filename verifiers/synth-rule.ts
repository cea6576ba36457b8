/**
 * A rule-based step verifier for the synthetic task: the oracle PRM. It scores the prefix ending
 * at each step 1 when every step so far is correct by `checkSolution` (exact arithmetic, x set to
 * the problem's own solution, the boxed answer against the true one), else 0. Use it in tests and
 * to measure how far a learned PRM is from perfect. It reads no tokens (and has no parameters).
 */
import type { ScoreRequest, StepScores, StepVerifier } from "../src/policy.js";
import { checkSteps } from "../datasets/synth/check.js";

/** Per step: whether the prefix ending there is correct (every step up to it is; an empty step is not a step and is never correct). */
export function prefixCorrectness(problem: string, steps: readonly string[]): boolean[] {
  let allCorrect = true;
  return checkSteps(problem, steps).map((step) => (allCorrect &&= step.correct));
}

export class SynthRuleVerifier implements StepVerifier {
  readonly name = "synth-rule";
  readonly parameters = 0;

  scoreSteps(requests: readonly ScoreRequest[], signal?: AbortSignal): Promise<StepScores[]> {
    signal?.throwIfAborted();
    return Promise.resolve(
      requests.map(({ problem, steps }) => ({ scores: prefixCorrectness(problem, steps).map((correct) => (correct ? 1 : 0)), tokens: 0 })),
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
