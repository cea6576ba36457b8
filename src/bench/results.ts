/**
 * The results of a benchmark run: one JSON object per line of `results.jsonl` (or of
 * `results.shard-I-of-N.jsonl` for shards) in the run directory, one per work item
 * (problem, strategy configuration, budget, seed). Written by `deliberate bench` as each item
 * finishes; read by `deliberate report`.
 */
import { z } from "zod";

export const computeSchema = z.object({
  generations: z.number(),
  generatedTokens: z.number(),
  prefilledTokens: z.number(),
  verifierTokens: z.number(),
  policyCalls: z.number(),
  verifierCalls: z.number(),
  /** Requests to served models sent again after a fault; 0 in results written before it was recorded. */
  retries: z.number().default(0),
  /** Null when a model's parameter count is unknown (a served model without --policy-params). */
  flops: z.number().nullable(),
  wallMs: z.number(),
  /** Recursive policies only: generated tokens, loops run for them, mean loops per token. */
  // copies: state copies of a recursive model with the state copy (results written before it lack them).
  loops: z.object({ tokens: z.number(), run: z.number(), perToken: z.number(), copies: z.number().optional(), copiesPerToken: z.number().optional() }).optional(),
});

export const resultSchema = z.looseObject({
  problemId: z.string(),
  /** The strategy configuration's label (unique in a run), e.g. "beam" or "beam-w8". */
  strategy: z.string(),
  /** The registered strategy it runs (best-of-n, beam, lookahead, dvts, revision, compute-optimal). */
  strategyName: z.string(),
  budget: z.number().int(),
  seed: z.number().int(),
  level: z.number().int().nullable(),
  subject: z.string().nullable(),
  /** The chosen answer (null when no candidate had one, or on error). */
  answer: z.string().nullable(),
  gold: z.string(),
  correct: z.boolean(),
  compute: computeSchema.nullable(),
  ms: z.number(),
  /**
   * Why the item failed (model error, timeout, grading failure); null when it ran. A failed item
   * counts as wrong, except a grading failure (`gradingFailed`), which is left out of accuracy.
   */
  error: z.string().nullable(),
  /**
   * True when the search ran but grading did not finish (timeouts on every try, or a crashed
   * grading worker): no judgment, so the item is left out of accuracy (and counted apart) rather
   * than counted wrong. With `answer` kept, a resumed run grades it again without running the
   * search; without one (the vote's comparison did not finish), the item runs again.
   */
  gradingFailed: z.boolean().optional(),
  /** Difficulty bin (1-5) when the strategy went by one (compute-optimal: predicted, or the oracle's with difficulty oracle), else null. */
  difficultyBin: z.number().int().nullable().optional(),
});
export type BenchResult = z.infer<typeof resultSchema>;

/** The key of a work item: a run holds exactly one result per key. */
export function workItemKey(item: { problemId: string; strategy: string; budget: number; seed: number }): string {
  return JSON.stringify([item.problemId, item.strategy, item.budget, item.seed]);
}

/** Whether a result is a grading failure: not a judgment, left out of accuracy (see `gradingFailed`). */
export function isGradingFailure(result: BenchResult): boolean {
  return result.gradingFailed === true;
}
