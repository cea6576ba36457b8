/**
 * The seams between search strategies and models (see DESIGN.md). Strategies talk to models only
 * through these interfaces: the ONNX runtime, remote servers and scripted test policies all
 * implement them.
 *
 * No implementation counts compute itself: it reports what it did (prompt tokens, tokens and model
 * calls per step, tokens read per scoring) and the search bookkeeping (`Search` in strategy.ts)
 * puts that on the meter, so local, served and scripted models are all counted the same way.
 */
/** What the policy is asked to solve: a problem, and for a revision, the earlier attempts. */
export interface PolicyPrompt {
  problem: string;
  /** Earlier attempts (whole solution texts), oldest first; the policy writes a revised solution. */
  previousAttempts?: readonly string[];
}

export interface SamplingOptions {
  /** 0 is greedy. */
  temperature: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches topP. Default 1. */
  topP?: number;
  /** Keep only the topK most likely tokens. Default: no limit. */
  topK?: number;
}

export interface ExtendOptions extends SamplingOptions {
  /** One seed per branch: the same seed on the same state gives the same step. */
  seeds: readonly number[];
  /** Most tokens in one step; the step stops there with stopReason "max-tokens". */
  maxStepTokens: number;
  signal?: AbortSignal;
}

export type StopReason = "delimiter" | "eos" | "max-tokens" | "max-length";

export interface StepResult {
  /** The step's text, without the step delimiter. */
  text: string;
  tokens: number;
  /** Log-probability of each generated token under the sampling distribution's source model. */
  logprobs: number[];
  stopReason: StopReason;
  /**
   * Tokens the model was fed before this step as context, not generated: an interleaved reviser's
   * line of its previous attempt. Counted as prefilled tokens.
   */
  injectedTokens?: number;
  /**
   * Model calls this step took part in: batched forward passes for a local model, completion
   * requests for a served one. Steps decoded together share their calls.
   */
  calls: number;
  /** Requests a served model sent again for this step (connection errors, timeouts, 429, 5xx). */
  retries?: number;
  /**
   * FLOPs the model really spent on this step, when it counts them itself (a Mixture-of-Depths
   * model, whose routed blocks skip tokens; a recursive model, from the loops it ran); otherwise
   * the meter counts 2 x parameters x tokens.
   */
  flops?: number;
  /** Mixture-of-Depths models: per routed block (by index), the step's tokens that went through it, and the tokens decided. */
  routing?: RoutingCount;
  /**
   * Recursive models: loops of the shared block run to produce this step's tokens, summed over its
   * tokens (fewer than tokens x loops when tokens exit early); the meter reports loops per token.
   */
  loops?: number;
  /**
   * Recursive models with the state copy: skipped loops whose state was updated from an exited
   * token's hidden state, summed over the step's tokens (counted in `flops`; reported per token).
   */
  copies?: number;
}

/** Per routed block (by block index): tokens that went through it, out of the tokens that reached its router. */
export type RoutingCount = Record<string, { routed: number; tokens: number }>;

/**
 * A handle on decoding state: the prompt and the steps written so far. Local models keep real
 * state (KV cache or recurrent state); remote models keep the text. `fork()` is cheap and never
 * re-encodes the prefix; `release()` frees the state.
 */
export interface Branch {
  readonly steps: readonly string[];
  /** True once the model ended the solution (end of text) or the branch ran out of room. */
  readonly finished: boolean;
  /** Tokens generated on this branch, over all its steps. */
  readonly generatedTokens: number;
  /** Tokens of the prompt `start` prefilled (forks keep their root's count). */
  readonly promptTokens: number;
  /** Requests a served model sent again after a fault to start this branch (forks keep their root's). */
  readonly startRetries?: number;
  /** FLOPs the prefill really spent, when the model counts them itself (see StepResult.flops); forks keep their root's. */
  readonly startFlops?: number;
  /** Mixture-of-Depths models: the prompt's tokens per routed block (forks keep their root's). */
  readonly startRouting?: RoutingCount;
  fork(): Branch;
  release(): void;
}

export interface Policy {
  readonly name: string;
  /** What identifies the weights (a hash of the model's files), when the policy has any. */
  readonly fingerprint?: string;
  /** Parameter count, for FLOPs; null when unknown (FLOPs are then reported as unknown). */
  readonly parameters: number | null;
  /** The string between steps (for the embedded models, a blank line). */
  readonly stepDelimiter: string;
  /** Prefills the prompt once and returns a branch at the start of the solution. */
  start(prompt: PolicyPrompt): Promise<Branch>;
  /** Decodes every branch by one step, all together; the branches advance in place. */
  extend(branches: readonly Branch[], options: ExtendOptions): Promise<StepResult[]>;
  close(): Promise<void>;
}

/** One request to a step verifier: score every prefix of `steps`. */
export interface ScoreRequest {
  problem: string;
  steps: readonly string[];
}

/** A verifier's answer to one ScoreRequest. */
export interface StepScores {
  /** One score per step, in [0, 1]: the score of the prefix ending at that step. */
  scores: number[];
  /** Tokens the verifier read for this request (0 for a verifier that reads none). */
  tokens: number;
  /** Requests a served verifier sent again (connection errors, timeouts, 429, 5xx) to answer this one. */
  retries?: number;
}

export interface StepVerifier {
  readonly name: string;
  /** What identifies the weights (a hash of the model's files), when the verifier has any. */
  readonly fingerprint?: string;
  /** Parameter count, for FLOPs; null when unknown. */
  readonly parameters: number | null;
  /** One answer per request, in order. */
  scoreSteps(requests: readonly ScoreRequest[], signal?: AbortSignal): Promise<StepScores[]>;
  close(): Promise<void>;
}
