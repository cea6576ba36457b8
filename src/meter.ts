/**
 * Compute accounting. Every strategy is measured on the same meter: tokens the policy prefilled
 * and generated, tokens the verifier read, model calls, FLOPs estimated as 2 x parameters x tokens
 * (or counted by the model itself: a Mixture-of-Depths policy's routed blocks, a recursive policy's
 * loops really run, with the mean loops per token),
 * generations (the paper's budget unit) and wall time. The cost of estimating difficulty is metered
 * like everything else. Models never write to a meter: the search bookkeeping counts what they
 * report (see policy.ts).
 */
import type { RoutingCount, ScoreRequest, StepVerifier } from "./policy.js";

/**
 * What a model that counts its own compute reports for some tokens: its FLOPs (a Mixture-of-Depths
 * policy through the blocks its tokens went through; a recursive policy for the loops it ran), the
 * routing counts, and, for a recursive policy's generated tokens, the loops of the shared block run.
 */
export interface ModelSpend {
  flops?: number;
  routing?: RoutingCount;
  loops?: number;
  /** A recursive policy's state copies for these generated tokens (one per token and skipped loop). */
  copies?: number;
}

export interface ComputeReport {
  /** Complete or partial solutions the strategy sampled (the budget unit N of Snell et al.). */
  generations: number;
  generatedTokens: number;
  prefilledTokens: number;
  verifierTokens: number;
  /** Batched forward passes that served this meter (a pass shared by several meters counts for each). */
  policyCalls: number;
  verifierCalls: number;
  /** Requests to served models sent again after a fault (connection error, timeout, 429, 5xx). */
  retries: number;
  /**
   * 2 x parameters x tokens, over the policy's and the verifier's tokens; null when a model that
   * read or wrote tokens has an unknown parameter count (unknown, not zero).
   */
  flops: number | null;
  /**
   * Mixture-of-Depths policies: per routed block, the policy tokens (prefilled and fed) that went
   * through it, out of those that reached its router, and the share. Absent for other models.
   */
  routing?: Record<string, { routed: number; tokens: number; share: number }>;
  wallMs: number;
  /**
   * Only when a recursive policy generated tokens: its generated tokens, the loops of the shared block
   * run for them, and the mean loops per token (below the loop count when tokens exit early); the
   * state copies made for the loops exited tokens skipped, and copies per token (0 without the copy).
   */
  loops?: { tokens: number; run: number; perToken: number; copies: number; copiesPerToken: number };
}

export class ComputeMeter {
  generations = 0;
  generatedTokens = 0;
  prefilledTokens = 0;
  verifierTokens = 0;
  policyCalls = 0;
  verifierCalls = 0;
  retries = 0;
  flops: number | null = 0;
  /** Generated tokens of recursive policies, and the loops run for them. */
  loopedTokens = 0;
  loopsRun = 0;
  loopCopies = 0;
  private readonly routing = new Map<string, { routed: number; tokens: number }>();
  private readonly started = performance.now();

  countGenerations(count: number): void {
    this.generations += count;
  }

  /** A prefill; `spent` holds the FLOPs a model counted itself (then used instead of 2 x parameters x tokens). */
  countPrefill(tokens: number, parameters: number | null, spent: ModelSpend = {}): void {
    this.prefilledTokens += tokens;
    this.countSpend(tokens, parameters, spent);
  }

  /** Generated tokens; `spent.loops`, when a recursive policy reports it, counts toward the loops per token. */
  countGenerated(tokens: number, parameters: number | null, spent: ModelSpend = {}): void {
    this.generatedTokens += tokens;
    if (spent.loops !== undefined) {
      this.loopedTokens += tokens;
      this.loopsRun += spent.loops;
      this.loopCopies += spent.copies ?? 0;
    }
    this.countSpend(tokens, parameters, spent);
  }

  private countSpend(tokens: number, parameters: number | null, spent: ModelSpend): void {
    for (const [block, count] of Object.entries(spent.routing ?? {})) {
      const total = this.routing.get(block) ?? { routed: 0, tokens: 0 };
      this.routing.set(block, { routed: total.routed + count.routed, tokens: total.tokens + count.tokens });
    }
    if (spent.flops === undefined) this.countFlops(tokens, parameters);
    else if (this.flops !== null) this.flops += spent.flops;
  }

  /** One verifier call that read `tokens` tokens for each of its requests. */
  countVerifierCall(tokens: readonly number[], parameters: number | null): void {
    this.verifierCalls += 1;
    for (const count of tokens) {
      this.verifierTokens += count;
      this.countFlops(count, parameters);
    }
  }

  private countFlops(tokens: number, parameters: number | null): void {
    if (tokens === 0 || this.flops === null) return;
    this.flops = parameters === null ? null : this.flops + 2 * parameters * tokens;
  }

  report(): ComputeReport {
    return {
      generations: this.generations,
      generatedTokens: this.generatedTokens,
      prefilledTokens: this.prefilledTokens,
      verifierTokens: this.verifierTokens,
      policyCalls: this.policyCalls,
      verifierCalls: this.verifierCalls,
      retries: this.retries,
      flops: this.flops,
      ...(this.routing.size > 0
        ? { routing: Object.fromEntries([...this.routing].map(([block, { routed, tokens }]) => [block, { routed, tokens, share: tokens === 0 ? 0 : routed / tokens }])) }
        : {}),
      wallMs: Math.round(performance.now() - this.started),
      ...(this.loopedTokens > 0
        ? {
            loops: {
              tokens: this.loopedTokens,
              run: this.loopsRun,
              perToken: this.loopsRun / this.loopedTokens,
              copies: this.loopCopies,
              copiesPerToken: this.loopCopies / this.loopedTokens,
            },
          }
        : {}),
    };
  }
}

/**
 * One verifier call, counted on `meter` from what the verifier returns; checks that it answered
 * every request with one score per step. Returns the step scores in the order of `requests`.
 */
export async function scoreCounted(verifier: StepVerifier, requests: readonly ScoreRequest[], meter: ComputeMeter, signal?: AbortSignal): Promise<number[][]> {
  if (requests.length === 0) return [];
  const answers = await verifier.scoreSteps(requests, signal);
  if (answers.length !== requests.length) throw new Error(`verifier ${verifier.name} answered ${answers.length} of ${requests.length} requests`);
  answers.forEach((answer, index) => {
    const steps = (requests[index] as ScoreRequest).steps.length;
    if (answer.scores.length !== steps) throw new Error(`verifier ${verifier.name} gave ${answer.scores.length} scores for ${steps} steps`);
  });
  meter.countVerifierCall(
    answers.map((answer) => answer.tokens),
    verifier.parameters,
  );
  for (const answer of answers) meter.retries += answer.retries ?? 0;
  return answers.map((answer) => answer.scores);
}
