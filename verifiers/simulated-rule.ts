/**
 * A simulated verifier of chosen quality: the synthetic task's exact step checker (synth-rule) with
 * calibrated noise, to measure what search buys as a function of the verifier, whatever a learned
 * PRM reaches. It is not a model and its scores are not a model's: it is labelled simulated
 * everywhere (its name, `--verifier rule@AUC`, the sweep's tables).
 *
 * Binormal model: a prefix's logit is +d/2 when every step so far is correct and -d/2 when not,
 * plus standard normal noise, and its score is the logit's sigmoid. The AUC of the scores of
 * correct against incorrect prefixes is then P(d + e1 - e2 > 0) = Phi(d / sqrt 2), so
 * d = sqrt 2 * Phi^-1(auc) gives the target AUC in expectation. At AUC 1 there is no noise and the
 * scores are the checker's 0 and 1.
 *
 * The noise of a prefix is a function of the noise seed, the problem and the prefix's steps only (a
 * SHA-256 of them), so a step gets the same score in every strategy, call order and re-run.
 */
import { createHash, type Hash } from "node:crypto";
import { quantileNormal } from "vega-statistics";
import type { ScoreRequest, StepScores, StepVerifier } from "../src/policy.js";
import { prefixCorrectness } from "./synth-rule.js";

/** Whether `auc` is a target the simulation can reach: above chance (0.5), at most perfect (1). */
export function isSimulatedAuc(auc: number): boolean {
  return Number.isFinite(auc) && auc > 0.5 && auc <= 1;
}

/** The separation of the two classes' logits (in noise standard deviations) that gives `auc`. */
export function separationForAuc(auc: number): number {
  return auc === 1 ? Number.POSITIVE_INFINITY : Math.SQRT2 * quantileNormal(auc);
}

/** A standard normal draw from a hash's first 53 bits (a uniform strictly inside (0, 1), then the inverse CDF). */
function normalFromHash(hash: Hash): number {
  const digest = hash.digest();
  const bits = digest.readUInt32BE(0) * 2 ** 21 + (digest.readUInt32BE(4) >>> 11);
  return quantileNormal((bits + 0.5) / 2 ** 53);
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export class SimulatedRuleVerifier implements StepVerifier {
  readonly name: string;
  readonly parameters = 0;
  private readonly separation: number;

  /** `auc` in (0.5, 1]; `noiseSeed` picks another draw of the noise. */
  constructor(
    readonly auc: number,
    readonly noiseSeed = 0,
  ) {
    if (!isSimulatedAuc(auc)) throw new RangeError(`a simulated verifier's AUC must be in (0.5, 1], got ${auc}`);
    if (!Number.isInteger(noiseSeed)) throw new RangeError(`a simulated verifier's noise seed must be an integer, got ${noiseSeed}`);
    this.separation = separationForAuc(auc);
    this.name = `synth-rule-simulated-auc-${auc}${noiseSeed === 0 ? "" : `-seed-${noiseSeed}`}`;
  }

  scoreSteps(requests: readonly ScoreRequest[], signal?: AbortSignal): Promise<StepScores[]> {
    signal?.throwIfAborted();
    return Promise.resolve(requests.map(({ problem, steps }) => ({ scores: this.scorePrefixes(problem, steps), tokens: 0 })));
  }

  private scorePrefixes(problem: string, steps: readonly string[]): number[] {
    const correct = prefixCorrectness(problem, steps);
    if (this.separation === Number.POSITIVE_INFINITY) return correct.map((right) => (right ? 1 : 0));
    // One running hash over the seed, the problem and the steps so far; a copy is finished per prefix.
    const running = createHash("sha256").update(JSON.stringify([this.noiseSeed, problem]));
    return steps.map((step, index) => {
      running.update(JSON.stringify(step));
      const noise = normalFromHash(running.copy());
      return sigmoid(((correct[index] as boolean) ? this.separation : -this.separation) / 2 + noise);
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
