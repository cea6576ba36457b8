/**
 * Turning a process reward model's step scores into one solution score. A solution that is not
 * finished is scored on the steps it has; a solution with no steps scores 0 (nothing to trust).
 */

export const AGGREGATIONS = ["last", "min", "prod", "mean"] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

export function aggregateScores(stepScores: readonly number[], aggregation: Aggregation): number {
  if (stepScores.length === 0) return 0;
  switch (aggregation) {
    case "last":
      return stepScores[stepScores.length - 1] as number;
    case "min":
      return Math.min(...stepScores);
    case "prod":
      return stepScores.reduce((product, score) => product * score, 1);
    case "mean":
      return stepScores.reduce((sum, score) => sum + score, 0) / stepScores.length;
  }
}

/** Outcome score: the verifier's score of the whole solution, that is its last step's score (0 with no steps). */
export function outcomeScore(stepScores: readonly number[]): number {
  return aggregateScores(stepScores, "last");
}
