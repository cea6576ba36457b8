/**
 * Compute accounting. Every strategy is measured on the same meter: tokens the policy prefilled
 * and generated, tokens the verifier read, model calls, FLOPs estimated as 2 x parameters x tokens,
 * generations (the paper's budget unit) and wall time. The cost of estimating difficulty is metered
 * like everything else.
 */

export interface ComputeReport {
  /** Complete or partial solutions the strategy sampled (the budget unit N of Snell et al.). */
  generations: number;
  generatedTokens: number;
  prefilledTokens: number;
  verifierTokens: number;
  /** Batched forward passes that served this meter (a pass shared by several meters counts for each). */
  policyCalls: number;
  verifierCalls: number;
  /** 2 x parameters x tokens, over the policy's and the verifier's tokens. */
  flops: number;
  wallMs: number;
}

export class ComputeMeter {
  generations = 0;
  generatedTokens = 0;
  prefilledTokens = 0;
  verifierTokens = 0;
  policyCalls = 0;
  verifierCalls = 0;
  flops = 0;
  private readonly started = performance.now();

  countGenerations(count: number): void {
    this.generations += count;
  }

  countPrefill(tokens: number, parameters: number): void {
    this.prefilledTokens += tokens;
    this.flops += 2 * parameters * tokens;
  }

  countGenerated(tokens: number, parameters: number): void {
    this.generatedTokens += tokens;
    this.flops += 2 * parameters * tokens;
  }

  countVerifier(tokens: number, parameters: number): void {
    this.verifierTokens += tokens;
    this.flops += 2 * parameters * tokens;
  }

  report(): ComputeReport {
    return {
      generations: this.generations,
      generatedTokens: this.generatedTokens,
      prefilledTokens: this.prefilledTokens,
      verifierTokens: this.verifierTokens,
      policyCalls: this.policyCalls,
      verifierCalls: this.verifierCalls,
      flops: this.flops,
      wallMs: Math.round(performance.now() - this.started),
    };
  }
}
