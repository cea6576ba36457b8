/**
 * Choosing one solution among candidates: naive (highest score), majority vote over extracted
 * answers, or PRM-weighted vote (sum of scores per answer). Answers are grouped by mathematical
 * equivalence (the grader's), not by string: `\frac12` and `0.5` vote together.
 *
 * Only candidates with an extracted answer can win. Ties go to the candidate (or the answer group)
 * that came first, so a selection is deterministic.
 */

export const SELECTIONS = ["naive", "majority", "weighted"] as const;
export type Selection = (typeof SELECTIONS)[number];

/** Whether two answers are equivalent (asynchronous: the grader compares in worker threads). */
export type Equivalence = (a: string, b: string) => Promise<boolean>;

/** What selection needs of a candidate. A null score counts as 0 in a weighted vote. */
export interface Voter {
  answer: string | null;
  score: number | null;
}

export interface AnswerGroup<T extends Voter> {
  /** The group's answer as first written. */
  answer: string;
  members: T[];
  votes: number;
  /** Sum of the members' scores. */
  weight: number;
}

/**
 * Groups candidates by equivalent answers, in order of first appearance; candidates without an
 * answer are left out. Identical answer strings never reach `equivalent`; a new answer is compared
 * with every group's answer at once.
 */
export async function groupByAnswer<T extends Voter>(candidates: readonly T[], equivalent: Equivalence): Promise<AnswerGroup<T>[]> {
  const groups: AnswerGroup<T>[] = [];
  const groupOfAnswer = new Map<string, AnswerGroup<T>>();
  for (const candidate of candidates) {
    if (candidate.answer === null) continue;
    const answer = candidate.answer.trim();
    let group = groupOfAnswer.get(answer);
    if (group === undefined) {
      const matches = await Promise.all(groups.map((existing) => equivalent(existing.answer, answer)));
      group = groups[matches.indexOf(true)];
      if (group === undefined) {
        group = { answer, members: [], votes: 0, weight: 0 };
        groups.push(group);
      }
      groupOfAnswer.set(answer, group);
    }
    group.members.push(candidate);
    group.votes += 1;
    group.weight += candidate.score ?? 0;
  }
  return groups;
}

/** The highest-scored candidate (the first on a tie), or null for none. */
export function highestScore<T extends Voter>(candidates: readonly T[]): T | null {
  let best: T | null = null;
  for (const candidate of candidates) {
    if (best === null || (candidate.score ?? -Infinity) > (best.score ?? -Infinity)) best = candidate;
  }
  return best;
}

/**
 * The chosen candidate under a selection rule, or null when no candidate has an answer. For
 * majority and weighted votes it is the highest-scored member of the winning answer group.
 */
export async function selectCandidate<T extends Voter>(
  candidates: readonly T[],
  selection: Selection,
  equivalent: Equivalence,
): Promise<T | null> {
  if (selection === "naive") return highestScore(candidates.filter((candidate) => candidate.answer !== null));
  const strength = (group: AnswerGroup<T>) => (selection === "majority" ? group.votes : group.weight);
  let winner: AnswerGroup<T> | null = null;
  for (const group of await groupByAnswer(candidates, equivalent)) {
    if (winner === null || strength(group) > strength(winner)) winner = group;
  }
  return winner === null ? null : highestScore(winner.members);
}

/**
 * Wraps an equivalence with a cache, so that every pair of answers is compared once (equivalence is
 * taken as symmetric); identical strings are equal without asking.
 */
export function cachedEquivalence(equivalent: Equivalence): Equivalence {
  const verdicts = new Map<string, Promise<boolean>>();
  return (a, b) => {
    if (a === b) return Promise.resolve(true);
    const key = a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
    let verdict = verdicts.get(key);
    if (verdict === undefined) {
      verdict = equivalent(a, b);
      verdicts.set(key, verdict);
    }
    return verdict;
  };
}
