/** Selecting problems: by level and subject, then a seeded shuffle, then a limit (in that order). */
import { Random } from "../src/random.js";
import type { Problem } from "./problem.js";

export interface ProblemFilter {
  /** Keep only these levels; problems without a level are dropped when this is set. */
  levels?: Iterable<number>;
  /** Keep only these subjects, compared case-insensitively. */
  subjects?: Iterable<string>;
  /** Shuffle the kept problems with this seed (same seed, same order). */
  shuffleSeed?: number;
  /** Keep at most this many problems (after the shuffle). */
  limit?: number;
}

/** A predicate for the level and subject parts of the filter. */
export function problemMatcher(filter: ProblemFilter): (problem: Problem) => boolean {
  const levels = filter.levels === undefined ? null : new Set(filter.levels);
  const subjects = filter.subjects === undefined ? null : new Set([...filter.subjects].map(normalizeSubject));
  return (problem) =>
    (levels === null || (problem.level !== null && levels.has(problem.level))) &&
    (subjects === null || (problem.subject !== null && subjects.has(normalizeSubject(problem.subject))));
}

/** Applies the whole filter to an array: filter, then shuffle (if seeded), then limit. */
export function applyFilter(problems: readonly Problem[], filter: ProblemFilter): Problem[] {
  const kept = problems.filter(problemMatcher(filter));
  const ordered = filter.shuffleSeed === undefined ? kept : new Random(filter.shuffleSeed).shuffle(kept);
  return filter.limit === undefined ? ordered : ordered.slice(0, filter.limit);
}

/**
 * Collects the problems of a stream that pass the filter. Without a shuffle it stops reading at the
 * limit; with one it must read everything first, since any problem may come first after shuffling.
 */
export async function collectProblems(source: AsyncIterable<Problem>, filter: ProblemFilter): Promise<Problem[]> {
  const matches = problemMatcher(filter);
  const earlyLimit = filter.shuffleSeed === undefined ? filter.limit : undefined;
  const kept: Problem[] = [];
  if (earlyLimit === 0) return kept;
  for await (const problem of source) {
    if (!matches(problem)) continue;
    kept.push(problem);
    if (kept.length === earlyLimit) break;
  }
  return applyFilter(kept, { shuffleSeed: filter.shuffleSeed, limit: filter.limit });
}

function normalizeSubject(subject: string): string {
  return subject.trim().toLowerCase();
}
