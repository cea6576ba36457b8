/**
 * Why beam search loses to best-of-N where it does (issue 15; a measurement, not a timed test).
 * Runs beam search and PRM-weighted best-of-N at the same budget on the same synthetic test
 * problems with the embedded models (the bench's seeds and defaults, so its results are the
 * `compare` run's), keeps beam search's tree, and labels every node with the task's exact checker
 * (a prefix is right when every step of it is). Each problem beam search gets wrong is put in one
 * of five places, by the last round that still held a right unfinished prefix:
 *
 * - selection: a right solution finished, but another candidate was chosen;
 * - pruning: every right prefix of that round was pruned, outranked by the wrong prefixes kept
 *   (the kind of step where the best kept wrong prefix went wrong is counted: that is the check the
 *   PRM failed);
 * - generation: a right prefix was kept, and none of its continuations was right;
 * - stopped: a right prefix was still open when the search stopped (enough beams had finished, or
 *   the round limit);
 * - never right: no right prefix was ever written (no first step was right);
 *
 * and best-of-N's losses in two: a right solution among the candidates but not chosen, or none.
 * It also measures the scores where pruning uses them: over every round, every pair of a right and a
 * wrong open prefix, the share the right one outscores, by the kind of the wrong one's first mistake.
 *
 *   npm run bench:beam-pruning -- --levels 4,5 [--n 500] [--budget 16] [--beam-width 4] [--threads 1] [--concurrency 16]
 *
 * `--n` and the levels pick the problems as `deliberate compare --n N` does (ladder 2, test split,
 * data seed 1), then keeps the given levels. It prints one table; `--out FILE` also writes every
 * problem's outcome as JSON lines.
 */
import { parseArgs } from "node:util";
import { checkSteps } from "../datasets/synth/check.js";
import { solve } from "../src/solve.js";
import type { SearchNode, StrategyResult } from "../src/strategy.js";
import { count, measureProblems, minutesSince, percent, testProblems, writeOutcomes, type Models } from "./problem-measure.js";

const { values: flags } = parseArgs({
  options: {
    levels: { type: "string", default: "4,5" },
    n: { type: "string", default: "500" },
    budget: { type: "string", default: "16" },
    "beam-width": { type: "string", default: "4" },
    threads: { type: "string", default: "1" },
    concurrency: { type: "string", default: "16" },
    out: { type: "string" },
  },
});
const levels = new Set(flags.levels.split(",").map(Number));
const budget = Number(flags.budget);
const beamWidth = Number(flags["beam-width"]);
const problems = testProblems(Number(flags.n), levels);
if (problems.length === 0) throw new Error(`no problems at levels ${flags.levels} among the first ${flags.n}`);

const INTEGER_STEP = /^(-?\d+) ([-+*]) (-?\d+) = (-?\d+)$/;

/** What a step does, as models/train/rank_check.py names it: integer +, -, *, fraction work, an equation in x, or the answer. */
function stepKind(step: string): string {
  const text = step.trim();
  const integer = INTEGER_STEP.exec(text);
  if (integer) return `integer ${integer[2]}`;
  if (text.startsWith("The answer")) return "answer";
  if (text.includes("x")) return "equation in x";
  return text.includes("/") ? "fractions" : "other";
}

type BeamOutcome = "solved" | "selection" | "pruning" | "generation" | "stopped" | "never right";
type BestOfNOutcome = "solved" | "not chosen" | "none right";

interface ProblemOutcome {
  id: string;
  level: number;
  subject: string;
  beam: BeamOutcome;
  bestOfN: BestOfNOutcome;
  /** Beam search's candidates with the right answer, and best-of-N's. */
  beamRight: number;
  bestOfNRight: number;
  /** For a pruning loss: the round, and the kind of step where the best kept wrong prefix went wrong. */
  prunedAt?: number;
  failedCheck?: string;
}

/** The steps of the prefix ending at `node` (the prompt node excluded). */
function prefixSteps(tree: readonly SearchNode[], node: SearchNode): string[] {
  const steps: string[] = [];
  for (let at: SearchNode | undefined = node; at !== undefined && at.depth > 0; at = at.parentId === null ? undefined : tree[at.parentId]) steps.unshift(at.step);
  return steps;
}

/** Beam search's tree with the checker's labels: a node's prefix is right when every step of it is. */
class LabelledTree {
  private readonly checks = new Map<number, boolean[]>();
  constructor(
    private readonly problem: string,
    readonly nodes: readonly SearchNode[],
  ) {}

  /** The checker's verdict on each step of the prefix ending at `node`. */
  stepChecks(node: SearchNode): boolean[] {
    let known = this.checks.get(node.id);
    if (known === undefined) {
      known = checkSteps(this.problem, prefixSteps(this.nodes, node)).map((step) => step.correct);
      this.checks.set(node.id, known);
    }
    return known;
  }

  right(node: SearchNode): boolean {
    return node.depth > 0 && this.stepChecks(node).every(Boolean);
  }

  /** The kind of the first wrong step of a wrong prefix. */
  mistake(node: SearchNode): string {
    return stepKind(prefixSteps(this.nodes, node)[this.stepChecks(node).indexOf(false)] as string);
  }

  /** Open (unfinished) prefixes, round by round: what each pruning chose among. */
  rounds(): SearchNode[][] {
    const open = this.nodes.filter((node) => node.depth > 0 && !node.finished);
    const depths = [...new Set(open.map((node) => node.depth))].sort((a, b) => a - b);
    return depths.map((depth) => open.filter((node) => node.depth === depth));
  }
}

function classifyBeam(tree: LabelledTree, solved: boolean, rightCandidates: number): Omit<ProblemOutcome, "id" | "level" | "subject" | "bestOfN" | "bestOfNRight" | "beamRight"> {
  if (solved) return { beam: "solved" };
  if (rightCandidates > 0) return { beam: "selection" };
  const round = tree.rounds().findLast((nodes) => nodes.some((node) => tree.right(node)));
  if (round === undefined) return { beam: "never right" };
  const keptRight = round.filter((node) => tree.right(node) && node.status === "kept");
  if (keptRight.some((node) => node.children.length === 0)) return { beam: "stopped" };
  if (keptRight.length > 0) return { beam: "generation" };
  const keptWrong = round.filter((node) => node.status === "kept" && !tree.right(node)).sort((a, b) => (b.score ?? 0) - (a.score ?? 0));
  const best = keptWrong[0];
  if (best === undefined) return { beam: "generation" };
  return { beam: "pruning", prunedAt: best.depth, failedCheck: tree.mistake(best) };
}

/**
 * How well the scores order what pruning chose among: over every round, every pair of a right and
 * a wrong open prefix, by the kind of the wrong one's first mistake, the pairs the right one
 * outscores (ties count half). Rounds the search ended before pruning are included: the scores are
 * the same.
 */
function pairsOrdered(tree: LabelledTree, into: Map<string, { ordered: number; pairs: number }>): void {
  for (const round of tree.rounds()) {
    const right = round.filter((node) => tree.right(node));
    for (const wrong of round.filter((node) => !tree.right(node))) {
      const tally = into.get(tree.mistake(wrong)) ?? { ordered: 0, pairs: 0 };
      for (const node of right) {
        const [a, b] = [node.score ?? 0, wrong.score ?? 0];
        tally.ordered += a > b ? 1 : a === b ? 0.5 : 0;
        tally.pairs += 1;
      }
      into.set(tree.mistake(wrong), tally);
    }
  }
}

const ordering = new Map<string, { ordered: number; pairs: number }>();
const rightCount = async (result: StrategyResult, gold: string, { isRight }: Models) =>
  (await Promise.all(result.candidates.map((c) => isRight(c.answer, gold)))).filter(Boolean).length;
const started = performance.now();
const outcomes = await measureProblems(problems, { threads: Number(flags.threads), concurrency: Number(flags.concurrency) }, async (problem, models) => {
  const { isRight } = models;
  const common = { budget, policy: models.policy, verifier: models.verifier, seed: 0, grader: models.grader };
  const beamResult = await solve(problem.problem, { ...common, strategy: "beam", params: { beamWidth } });
  const bestOfNResult = await solve(problem.problem, { ...common, strategy: "best-of-n" });
  const beamRight = await rightCount(beamResult, problem.answer, models);
  const bestOfNRight = await rightCount(bestOfNResult, problem.answer, models);
  const bestOfNSolved = await isRight(bestOfNResult.answer, problem.answer);
  const tree = new LabelledTree(problem.problem, beamResult.tree);
  const beamOutcome = classifyBeam(tree, await isRight(beamResult.answer, problem.answer), beamRight);
  pairsOrdered(tree, ordering);
  const outcome: ProblemOutcome = {
    id: problem.unique_id,
    level: problem.level,
    subject: problem.subject,
    ...beamOutcome,
    bestOfN: bestOfNSolved ? "solved" : bestOfNRight > 0 ? "not chosen" : "none right",
    beamRight,
    bestOfNRight,
  };
  return outcome;
});
writeOutcomes(flags.out, outcomes);

console.log(`${problems.length} problems (levels ${flags.levels}), budget ${budget}, beam width ${beamWidth}, ${minutesSince(started)} min`);
console.log(`solved: beam search ${percent(count(outcomes, (o) => o.beam === "solved"), outcomes.length)}, best-of-N ${percent(count(outcomes, (o) => o.bestOfN === "solved"), outcomes.length)}`);
console.log(
  `a right solution among the candidates: beam search ${percent(count(outcomes, (o) => o.beamRight > 0), outcomes.length)}, ` +
    `best-of-N ${percent(count(outcomes, (o) => o.bestOfNRight > 0), outcomes.length)}; ` +
    `right candidates per problem: beam search ${(outcomes.reduce((s, o) => s + o.beamRight, 0) / outcomes.length).toFixed(2)}, ` +
    `best-of-N ${(outcomes.reduce((s, o) => s + o.bestOfNRight, 0) / outcomes.length).toFixed(2)}`,
);
const groups: [string, ProblemOutcome[]][] = [
  ["every problem beam search got wrong", outcomes.filter((o) => o.beam !== "solved")],
  ["best-of-N right, beam search wrong", outcomes.filter((o) => o.beam !== "solved" && o.bestOfN === "solved")],
];
for (const [title, group] of groups) {
  console.log(`\n${title}: ${group.length}`);
  for (const place of ["selection", "pruning", "generation", "stopped", "never right"] as const) {
    console.log(`  ${place.padEnd(12)} ${String(count(group, (o) => o.beam === place)).padStart(4)}  ${percent(count(group, (o) => o.beam === place), group.length)}`);
  }
  const pruned = group.filter((o) => o.beam === "pruning");
  const kinds = [...new Set(pruned.map((o) => o.failedCheck as string))].sort();
  for (const kind of kinds) console.log(`    pruning, the kept wrong prefix's mistake is ${kind}: ${count(pruned, (o) => o.failedCheck === kind)}`);
  const rounds = pruned.map((o) => o.prunedAt as number).sort((a, b) => a - b);
  if (rounds.length > 0) console.log(`    pruning round: median ${rounds[Math.floor(rounds.length / 2)]}, range ${rounds[0]}-${rounds[rounds.length - 1]}`);
}
console.log("\nright against wrong open prefixes of the same round, ordered right by the score (by the wrong one's first mistake):");
for (const [kind, { ordered, pairs }] of [...ordering].filter(([, tally]) => tally.pairs > 0).sort(([a], [b]) => a.localeCompare(b))) {
  console.log(`  ${kind.padEnd(14)} ${(ordered / pairs).toFixed(3)} of ${pairs} pairs`);
}
const bestOfNLosses = outcomes.filter((o) => o.bestOfN !== "solved");
console.log(`\nbest-of-N wrong: ${bestOfNLosses.length}; a right solution not chosen ${count(bestOfNLosses, (o) => o.bestOfN === "not chosen")}, none right ${count(bestOfNLosses, (o) => o.bestOfN === "none right")}`);
