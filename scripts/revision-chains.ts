/**
 * Why sequential revision chains do or do not beat parallel sampling (issue 15; a measurement, not a
 * timed test). Runs revision chains (`ratio` 1 by default: 4 chains of 4 attempts at N=16) and
 * PRM-weighted best-of-N at the same budget on the same synthetic test problems with the embedded
 * models (the bench's seeds and defaults, so the solved rates are the `compare` run's), grades every
 * candidate, and splits the difference in two:
 *
 * - coverage: the share of problems with at least one right candidate among the N, and the right
 *   candidates and distinct answers per problem (chains whose attempts repeat each other cover less);
 * - selection: of the problems with a right candidate, the share whose chosen answer is right
 *   (chains choose within each chain by score, then across the chains' picks).
 *
 * It also chooses among the chains' attempts by best-of-N's rule (one weighted vote over all N), to
 * show what the chains' hierarchical choice costs. For the chains it also gives each attempt position's accuracy and, between consecutive attempts of
 * a chain, how often a wrong attempt was fixed and a right one broken. Every problem best-of-N solves
 * and the chains do not is put in one place: no right attempt in any chain (coverage), a right
 * attempt that its chain's pick passed over (within-chain choice), or a chain picked a right attempt
 * and the choice across chains took another (across-chain choice).
 *
 *   npm run bench:revision-chains -- --levels 1,2 [--n 500] [--budget 16] [--ratio 1] [--revision-temperature T] [--data-seed 1] [--threads 1] [--concurrency 16] [--out FILE]
 *
 * `--n` and the levels pick the problems as `deliberate compare --n N` does (ladder 2, test split,
 * data seed 1), then keeps the given levels. `--data-seed S` draws other test problems the same way
 * and leaves out those of data seed 1's draw: a held-out check of what was chosen on the usual ones.
 * `--revision-temperature T` samples the chains' revisions at T (the strategy's `revisionTemperature`;
 * first attempts stay at the run's 0.8).
 */
import { parseArgs } from "node:util";
import { solve } from "../src/solve.js";
import type { StrategyResult } from "../src/strategy.js";
import { revisionsPerChain } from "../strategies/revision.js";
import { selectCandidate } from "../verifiers/select.js";
import { count, measureProblems, minutesSince, percent, testProblems, writeOutcomes, type Models } from "./problem-measure.js";

const { values: flags } = parseArgs({
  options: {
    levels: { type: "string", default: "1,2" },
    n: { type: "string", default: "500" },
    budget: { type: "string", default: "16" },
    ratio: { type: "string", default: "1" },
    "revision-temperature": { type: "string" },
    threads: { type: "string", default: "1" },
    concurrency: { type: "string", default: "16" },
    "data-seed": { type: "string", default: "1" },
    out: { type: "string" },
  },
});
const levels = new Set(flags.levels.split(",").map(Number));
const budget = Number(flags.budget);
const ratio = Number(flags.ratio);
const revisionTemperature = flags["revision-temperature"] === undefined ? undefined : Number(flags["revision-temperature"]);
if (revisionTemperature !== undefined && !(revisionTemperature >= 0)) throw new Error(`--revision-temperature must be a number >= 0, got ${flags["revision-temperature"]}`);
const split = revisionsPerChain(budget, ratio);
if (split === null) throw new Error(`--ratio ${flags.ratio} does not split --budget ${flags.budget} into whole chains`);
const attemptsPerChain: number = split;
const chainCount = budget / attemptsPerChain;
const drawn = (seed: number) => testProblems(Number(flags.n), levels, seed);
// Another data seed draws held-out problems: those of the usual draw (data seed 1, what `compare` runs) are left out.
const dataSeed = Number(flags["data-seed"]);
const usual = new Set(dataSeed === 1 ? [] : drawn(1).map((p) => p.problem));
const problems = drawn(dataSeed).filter((p) => !usual.has(p.problem));
if (problems.length === 0) throw new Error(`no problems at levels ${flags.levels} among the first ${flags.n}`);

type ChainLoss = "coverage" | "within-chain choice" | "across-chain choice";

interface ProblemOutcome {
  id: string;
  level: number;
  chainsSolved: boolean;
  bestOfNSolved: boolean;
  /** The chains' attempts chosen by one weighted vote over all of them (best-of-N's rule), not chain by chain. */
  chainsPooledSolved: boolean;
  /** Per candidate, right or not: the chains' in chain order (chain 0's attempts first), best-of-N's in sample order. */
  chainsRight: boolean[];
  bestOfNRight: boolean[];
  chainsDistinctAnswers: number;
  bestOfNDistinctAnswers: number;
  /** Where the chains lost a problem best-of-N solved. */
  chainLoss?: ChainLoss;
}

const rightPerCandidate = (result: StrategyResult, gold: string, { isRight }: Models) => Promise.all(result.candidates.map((c) => isRight(c.answer, gold)));
/** Distinct answers by the grader's equivalence (a missing answer counts as one more). */
async function distinctAnswers(result: StrategyResult, { grader }: Models): Promise<number> {
  const kept: string[] = [];
  let missing = 0;
  for (const { answer } of result.candidates) {
    if (answer === null) {
      missing = 1;
      continue;
    }
    let seen = false;
    for (const other of kept) if ((seen = (await grader.grade(answer, other)).equal)) break;
    if (!seen) kept.push(answer);
  }
  return kept.length + missing;
}

/** Where the chains lost: no right attempt, a right attempt its chain's pick passed over, or a right pick not chosen across chains. */
async function chainLoss(result: StrategyResult, right: readonly boolean[]): Promise<ChainLoss> {
  if (!right.some(Boolean)) return "coverage";
  // The chain's pick as the strategy makes it (`withinChain: verifier`, its default: the highest score).
  const pickedRight = await Promise.all(
    Array.from({ length: chainCount }, async (_, chain) => {
      const attempts = result.candidates.slice(chain * attemptsPerChain, (chain + 1) * attemptsPerChain);
      const pick = await selectCandidate(attempts, "naive", () => Promise.resolve(false));
      return pick !== null && right[result.candidates.indexOf(pick)] === true;
    }),
  );
  return pickedRight.some(Boolean) ? "across-chain choice" : "within-chain choice";
}

const started = performance.now();
const outcomes = await measureProblems(problems, { threads: Number(flags.threads), concurrency: Number(flags.concurrency) }, async (problem, models) => {
  const { isRight, grader } = models;
  const common = { budget, policy: models.policy, verifier: models.verifier, seed: 0, grader };
  const chains = await solve(problem.problem, { ...common, strategy: "revision", params: { ratio, ...(revisionTemperature === undefined ? {} : { revisionTemperature }) } });
  const bestOfN = await solve(problem.problem, { ...common, strategy: "best-of-n" });
  const chainsRight = await rightPerCandidate(chains, problem.answer, models);
  const chainsSolved = await isRight(chains.answer, problem.answer);
  const pooled = await selectCandidate(chains.candidates, "weighted", async (a, b) => (await grader.grade(a, b)).equal);
  const bestOfNSolved = await isRight(bestOfN.answer, problem.answer);
  const outcome: ProblemOutcome = {
    id: problem.unique_id,
    level: problem.level,
    chainsSolved,
    bestOfNSolved,
    chainsPooledSolved: await isRight(pooled?.answer ?? null, problem.answer),
    chainsRight,
    bestOfNRight: await rightPerCandidate(bestOfN, problem.answer, models),
    chainsDistinctAnswers: await distinctAnswers(chains, models),
    bestOfNDistinctAnswers: await distinctAnswers(bestOfN, models),
    ...(bestOfNSolved && !chainsSolved ? { chainLoss: await chainLoss(chains, chainsRight) } : {}),
  };
  return outcome;
});
writeOutcomes(flags.out, outcomes);

const n = outcomes.length;
const meanOf = (values: readonly number[]) => (values.reduce((s, v) => s + v, 0) / values.length).toFixed(2);
const rightCount = (right: readonly boolean[]) => count(right, Boolean);

console.log(`${n} problems (levels ${flags.levels}, data seed ${dataSeed}${usual.size > 0 ? `, ${drawn(dataSeed).length - n} of the usual draw left out` : ""}), budget ${budget}: ${chainCount} chains of ${attemptsPerChain} attempts against best-of-${budget}${revisionTemperature === undefined ? "" : `, revisions at T=${revisionTemperature}`}, ${minutesSince(started)} min`);
console.log(`solved: chains ${percent(count(outcomes, (o) => o.chainsSolved), n)}, best-of-N ${percent(count(outcomes, (o) => o.bestOfNSolved), n)}`);
console.log(`the chains' attempts chosen by one weighted vote over all ${budget} (best-of-N's rule): ${percent(count(outcomes, (o) => o.chainsPooledSolved), n)}`);
console.log(
  `coverage (a right candidate among the ${budget}): chains ${percent(count(outcomes, (o) => o.chainsRight.some(Boolean)), n)}, ` +
    `best-of-N ${percent(count(outcomes, (o) => o.bestOfNRight.some(Boolean)), n)}`,
);
console.log(
  `right candidates per problem: chains ${meanOf(outcomes.map((o) => rightCount(o.chainsRight)))}, best-of-N ${meanOf(outcomes.map((o) => rightCount(o.bestOfNRight)))}; ` +
    `distinct answers per problem: chains ${meanOf(outcomes.map((o) => o.chainsDistinctAnswers))}, best-of-N ${meanOf(outcomes.map((o) => o.bestOfNDistinctAnswers))}`,
);
const coveredChains = outcomes.filter((o) => o.chainsRight.some(Boolean));
const coveredBestOfN = outcomes.filter((o) => o.bestOfNRight.some(Boolean));
console.log(
  `selection (solved, of the problems with a right candidate): chains ${percent(count(coveredChains, (o) => o.chainsSolved), coveredChains.length)} of ${coveredChains.length}, ` +
    `best-of-N ${percent(count(coveredBestOfN, (o) => o.bestOfNSolved), coveredBestOfN.length)} of ${coveredBestOfN.length}`,
);

console.log("\nchains, by attempt position (accuracy over all chains; between attempt k-1 and k: wrong fixed, right broken):");
for (let k = 0; k < attemptsPerChain; k++) {
  const at = outcomes.flatMap((o) => Array.from({ length: chainCount }, (_, c) => ({ now: o.chainsRight[c * attemptsPerChain + k] as boolean, before: o.chainsRight[c * attemptsPerChain + k - 1] })));
  const line = `  attempt ${k + 1}: ${percent(count(at, (a) => a.now), at.length)} right`;
  if (k === 0) {
    console.log(line);
    continue;
  }
  const wrongBefore = at.filter((a) => a.before === false);
  const rightBefore = at.filter((a) => a.before === true);
  console.log(
    `${line}; fixed ${percent(count(wrongBefore, (a) => a.now), wrongBefore.length)} of ${wrongBefore.length} wrong, ` +
      `broke ${percent(count(rightBefore, (a) => !a.now), rightBefore.length)} of ${rightBefore.length} right`,
  );
}

const lost = outcomes.filter((o) => o.chainLoss !== undefined);
const won = count(outcomes, (o) => o.chainsSolved && !o.bestOfNSolved);
console.log(`\nbest-of-N right, chains wrong: ${lost.length} (chains right, best-of-N wrong: ${won})`);
for (const place of ["coverage", "within-chain choice", "across-chain choice"] as const) {
  console.log(`  ${place.padEnd(20)} ${String(count(lost, (o) => o.chainLoss === place)).padStart(4)}  ${percent(count(lost, (o) => o.chainLoss === place), lost.length)}`);
}
