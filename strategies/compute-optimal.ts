/**
 * compute-optimal: spend the budget the way that works best for the problem's difficulty
 * (Snell et al. 2024, §3.2 and §5-6).
 *
 * First the difficulty is predicted without ground truth: k samples (the table's `samples`) are
 * drawn and scored by the verifier, and their mean final score is binned by the table's edges.
 * Those k samples count against the budget and are kept as candidates. The rest of the budget
 * goes to the configuration the allocation table chose for that bin at the largest calibrated
 * budget that fits (an unseen bin takes the nearest), run with all of N - k (or the most of it that
 * the configuration's parameters accept: beam search needs a multiple of its width), so that a
 * table calibrated at powers of two does not leave generations unspent. The answer is chosen over
 * the estimate's samples and the configuration's candidates together, with the configuration's
 * selection rule. Budget: at most N generations.
 *
 * With `difficulty: "oracle"`, for analysis, the difficulty is known instead: the problem's oracle
 * pass rate (the share of samples graded right against the gold answer, from the context's
 * `knownDifficulty`) is binned by the table's oracle edges, no estimate is drawn, and the whole
 * budget goes to the oracle section's configuration for that bin, chosen and run the same way.
 * Set beside the predicted run, this shows what not knowing the difficulty costs.
 *
 * With `spread`, N is a benchmark's average per problem instead: the table's budgets are spread
 * over the bins (`spreadAcrossBins`) so that easy problems get less and hard ones more where the
 * calibration says more helps, and a problem gets its bin's table budget exactly (after the k
 * estimate samples, when predicted).
 */
import { z } from "zod";
import { budgetSchema, requireVerifier, strategyParams, type Candidate, type SearchNode, type Strategy, type StrategyContext, type StrategyResult } from "../src/strategy.js";
import { withSearch } from "../src/search.js";
import {
  allocationTableSchema,
  binOfScore,
  defaultAllocationTable,
  loadAllocationTable,
  lookupEntry,
  spreadAcrossBins,
  type AllocationEntry,
} from "../src/allocation/table.js";
import { describeZodError, InputError } from "../src/errors.js";
import { selectCandidate, SELECTIONS } from "../verifiers/select.js";

export const DIFFICULTY_SOURCES = ["predicted", "oracle"] as const;

const NO_ORACLE_SECTION =
  "compute-optimal with difficulty oracle needs an allocation table with an oracle section, and this table has none: re-run deliberate calibrate";
const NO_PASS_RATE =
  "compute-optimal with difficulty oracle needs each problem's oracle pass rate: give the bench a difficultyFile " +
  "(--difficulty-file: the difficulty.jsonl of `deliberate calibrate --difficulty-only`), or solve() a knownDifficulty";

export const computeOptimalParams = strategyParams("compute-optimal", {
    budget: budgetSchema,
    /** The allocation table (`deliberate calibrate` writes one; a default ships in models/); a path on the command line and in configs. */
    table: allocationTableSchema,
    spread: z.boolean().default(false).describe("the budget is the average per problem over a benchmark, spread across difficulty bins"),
    difficulty: z
      .enum(DIFFICULTY_SOURCES)
      .default("predicted")
      .describe("predicted from scored samples, or the oracle pass rate (for analysis: it needs each problem's pass rate)"),
})
  .superRefine(({ table, difficulty }, issues) => {
    if (difficulty === "oracle" && table.oracle === undefined) issues.addIssue({ code: "custom", path: ["table"], message: NO_ORACLE_SECTION });
  });
export type ComputeOptimalParams = z.output<typeof computeOptimalParams>;

/**
 * The predicted difficulty needs scored samples. With the oracle's, the configuration the table
 * chose for the problem's bin decides, and it checks for itself when it runs (before any model call).
 */
function needsVerifier({ difficulty }: ComputeOptimalParams): string | null {
  return difficulty === "predicted" ? "compute-optimal (the difficulty estimate)" : null;
}

export const computeOptimal: Strategy<ComputeOptimalParams, "compute-optimal"> = {
  name: "compute-optimal",
  description: "predict the difficulty from a few scored samples (or take the oracle's), then run the configuration the allocation table chose for it",
  params: computeOptimalParams,
  needsVerifier,
  needsKnownDifficulty: ({ difficulty }) => (difficulty === "oracle" ? "compute-optimal with difficulty oracle" : null),
  fileParams: {
    table: {
      flag: "--allocation",
      description: "the allocation table (default: the one shipped for the embedded models)",
      load: (path) => loadAllocationTable(path ?? defaultAllocationTable()),
    },
  },
  allocates: true,

  run(problem, context, params) {
    return params.difficulty === "oracle" ? withOracleDifficulty(problem, context, params) : withPredictedDifficulty(problem, context, params);
  },
};

/**
 * The predicted difficulty of a problem, without its answer: `samples` samples from one prefilled
 * prompt, scored by the verifier; the score is their mean final score (higher is easier). The
 * calibration's difficulty pass draws it with this same function, so the table's bin edges and
 * compute-optimal's bins come from one estimate. Counts `samples` generations on the meter.
 */
export async function estimateDifficulty(problem: string, context: StrategyContext, samples: number): Promise<{ score: number; candidates: Candidate[]; tree: SearchNode[] }> {
  requireVerifier(context, "compute-optimal (the difficulty estimate)");
  context.meter.countGenerations(samples);
  return withSearch(problem, context, "last", async (search) => {
    const candidates = await search.complete(search.expand(await search.start(), samples));
    await search.score(candidates);
    const score = candidates.reduce((sum, candidate) => sum + (candidate.score ?? 0), 0) / candidates.length;
    return { score, candidates, tree: search.tree.nodes };
  });
}

async function withPredictedDifficulty(problem: string, context: StrategyContext, { budget, table, spread }: ComputeOptimalParams): Promise<StrategyResult> {
  const samples = Math.min(table.difficulty.samples, budget);
  const estimate = await estimateDifficulty(problem, context, samples);
  const bin = binOfScore(estimate.score, table.difficulty.edges);
  const entry = chooseEntry(table.entries, bin, budget - samples, spread);
  const rest = entry === null ? null : await runEntry(problem, context, entry, spread ? entry.budget : budget - samples);

  // The two searches' trees side by side: the configuration's node ids shifted past the estimate's.
  const offset = estimate.tree.length;
  const candidates = [...estimate.candidates, ...(rest?.candidates ?? []).map((candidate) => ({ ...candidate, nodeId: candidate.nodeId + offset }))];
  const selection = SELECTIONS.find((rule) => rule === entry?.params.select) ?? "weighted";
  const chosen = await selectCandidate(candidates, selection, context.equivalent);
  const shifted = (rest?.tree ?? []).map((node) => ({
    ...node,
    id: node.id + offset,
    parentId: node.parentId === null ? null : node.parentId + offset,
    children: node.children.map((child) => child + offset),
  }));
  return {
    answer: chosen?.answer ?? null,
    chosen,
    candidates,
    tree: [...estimate.tree, ...shifted],
    compute: context.meter.report(),
    difficulty: { score: estimate.score, bin, configuration: entry?.label ?? null },
  };
}

async function withOracleDifficulty(problem: string, context: StrategyContext, { budget, table, spread }: ComputeOptimalParams): Promise<StrategyResult> {
  if (table.oracle === undefined) throw new InputError(NO_ORACLE_SECTION);
  if (context.knownDifficulty === undefined) throw new InputError(NO_PASS_RATE);
  const score = context.knownDifficulty.passRate;
  const bin = binOfScore(score, table.oracle.edges);
  const entry = chooseEntry(table.oracle.entries, bin, budget, spread);
  const difficulty = { score, bin, configuration: entry?.label ?? null };
  if (entry === null) return { answer: null, chosen: null, candidates: [], tree: [], compute: context.meter.report(), difficulty };
  return { ...(await runEntry(problem, context, entry, spread ? entry.budget : budget)), difficulty };
}

/**
 * The entry to run for a bin with `budget` generations left: with `spread`, the bin's share of the
 * average; else the one at the largest table budget that fits (`lookupEntry`). Null when none fits.
 */
function chooseEntry(entries: readonly AllocationEntry[], bin: number, budget: number, spread: boolean): AllocationEntry | null {
  if (spread) return spreadAcrossBins(entries, budget)?.get(bin) ?? null;
  if (budget <= 0) return null;
  const entry = lookupEntry(entries, bin, budget);
  return entry.budget <= budget ? entry : null;
}

/**
 * Runs a table entry's configuration with the largest budget from `budget` down to the entry's own
 * that its parameters accept (the entry's own was calibrated, so it is accepted unless the table is broken).
 */
async function runEntry(problem: string, context: StrategyContext, entry: AllocationEntry, budget: number): Promise<StrategyResult> {
  let strategy;
  try {
    strategy = context.strategy(entry.strategy);
  } catch (error) {
    throw new InputError(`allocation table entry ${entry.label}: ${(error as Error).message}`);
  }
  if (strategy.allocates === true) throw new InputError(`allocation table entry ${entry.label}: ${entry.strategy} runs a table's choices itself and cannot be one`);
  for (let spend = budget; spend > entry.budget; spend--) {
    const params = strategy.params.safeParse({ ...entry.params, budget: spend });
    if (params.success) return strategy.run(problem, context, params.data);
  }
  const params = strategy.params.safeParse({ ...entry.params, budget: entry.budget });
  if (!params.success) throw new InputError(`allocation table entry ${entry.label}: ${describeZodError(params.error)}`);
  return strategy.run(problem, context, params.data);
}
