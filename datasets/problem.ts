/** The shape every dataset in deliberate produces: MATH-style problems with a gold answer. */

export interface Problem {
  /** Stable identifier: the source's `unique_id`, else `<file name>:<line number>`. */
  id: string;
  problem: string;
  /** The gold final answer (the content of the last `\boxed{}` in MATH solutions). */
  answer: string;
  /** Difficulty level (1-5 in MATH), null when the source has none ("Level ?"). */
  level: number | null;
  subject: string | null;
  /** The reference worked solution, when the source has one. */
  solution?: string;
}

/** A named, re-iterable stream of problems. Grading lives in datasets/answer/. */
export interface Dataset extends AsyncIterable<Problem> {
  readonly name: string;
}
