/**
 * A rule-based step verifier for the synthetic task: the oracle PRM. It scores the prefix ending
 * at each step 1 when every step so far is correct by `checkSolution` (exact arithmetic, x set to
 * the problem's own solution, the boxed answer against the true one), else 0. Use it in tests and
 * to measure how far a learned PRM is from perfect. It reads no tokens: only its calls are metered.
 */
import type { ComputeMeter } from "../src/meter.js";
import type { ScoreRequest, StepVerifier } from "../src/policy.js";
import { checkSolution } from "../datasets/synth/check.js";

/** Whether one step is correct; an empty step is not a step and is never correct. */
function stepCorrect(problem: string, step: string): boolean {
  return checkSolution(problem, step).allStepsCorrect;
}

export class SynthRuleVerifier implements StepVerifier {
  readonly name = "synth-rule";
  readonly parameters = 0;

  scoreSteps(requests: readonly ScoreRequest[], signal?: AbortSignal): Promise<number[][]> {
    signal?.throwIfAborted();
    const meters = new Set<ComputeMeter>(requests.map((request) => request.meter));
    for (const meter of meters) meter.verifierCalls += 1;
    return Promise.resolve(
      requests.map(({ problem, steps }) => {
        let allCorrect = true;
        return steps.map((step) => {
          allCorrect &&= stepCorrect(problem, step);
          return allCorrect ? 1 : 0;
        });
      }),
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
