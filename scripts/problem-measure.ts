/**
 * What the measurement scripts (beam-pruning.ts, revision-chains.ts) share: the synthetic test
 * problems `deliberate compare --n N` runs, the embedded models loaded once, one measurement per
 * problem run a few at a time with progress on stderr, and the outcomes written as JSON lines.
 */
import { writeFileSync } from "node:fs";
import PQueue from "p-queue";
import { BENCH_GRADER_OPTIONS, Grader } from "../datasets/answer/grader.js";
import { DEFAULT_LADDER, generateSynth, type SynthProblem } from "../datasets/synth/generate.js";
import type { Policy, StepVerifier } from "../src/policy.js";
import { loadPolicy, loadVerifier } from "../src/runtime/load.js";

/**
 * The first `n` problems of the ladder-2 test split drawn with `dataSeed` (as `compare --n` draws
 * them with data seed 1), at the given levels.
 */
export function testProblems(n: number, levels: ReadonlySet<number>, dataSeed = 1): SynthProblem[] {
  return generateSynth({ split: "test", seed: dataSeed, n, ladder: DEFAULT_LADDER }).filter((p) => levels.has(p.level));
}

export interface Models {
  policy: Policy;
  verifier: StepVerifier;
  grader: Grader;
  /** Whether an answer is the gold one by the bench's grader (no answer is wrong). */
  isRight(answer: string | null, gold: string): Promise<boolean>;
}

/**
 * Runs `measure` on every problem with the shipped policy and `prm-columns`, `concurrency` problems
 * at a time, and returns the outcomes sorted by problem id.
 */
export async function measureProblems<T extends { id: string }>(
  problems: readonly SynthProblem[],
  options: { threads: number; concurrency: number },
  measure: (problem: SynthProblem, models: Models) => Promise<T>,
): Promise<T[]> {
  const policy = await loadPolicy("policy", { threads: options.threads });
  const verifier = await loadVerifier("prm-columns", { threads: options.threads });
  const grader = new Grader(BENCH_GRADER_OPTIONS);
  const models: Models = {
    policy,
    verifier,
    grader,
    isRight: async (answer, gold) => answer !== null && (await grader.grade(answer, gold)).equal,
  };
  const queue = new PQueue({ concurrency: options.concurrency });
  const outcomes: T[] = [];
  const started = performance.now();
  try {
    for (const problem of problems) {
      void queue.add(async () => {
        outcomes.push(await measure(problem, models));
        if (outcomes.length % 20 === 0) console.error(`${outcomes.length}/${problems.length} problems, ${minutesSince(started)} min`);
      });
    }
    await queue.onIdle();
  } finally {
    await Promise.all([policy.close(), verifier.close(), grader.close()]);
  }
  return outcomes.sort((a, b) => a.id.localeCompare(b.id));
}

export const minutesSince = (started: number): string => ((performance.now() - started) / 60_000).toFixed(1);

/** Every outcome as one JSON line, when a file is named. */
export function writeOutcomes(path: string | undefined, outcomes: readonly object[]): void {
  if (path !== undefined) writeFileSync(path, outcomes.map((o) => JSON.stringify(o)).join("\n") + "\n");
}

export const percent = (count: number, of: number): string => (of === 0 ? "-" : `${((100 * count) / of).toFixed(1)}%`);
export const count = <T>(items: readonly T[], test: (item: T) => boolean): number => items.filter(test).length;
