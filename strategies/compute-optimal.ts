/**
 * compute-optimal: spend the budget the way that works best for the problem's difficulty
 * (Snell et al. 2024, §3.2 and §5-6).
 *
 * First the difficulty is predicted without ground truth: k samples (the table's `samples`) are
 * drawn and scored by the verifier, and their mean final score is binned by the table's edges.
 * Those k samples count against the budget and are kept as candidates. The rest of the budget
 * goes to the configuration the allocation table chose for that bin (the largest table budget that
 * fits; an unseen bin or budget takes the nearest entry). The answer is chosen over the estimate's
 * samples and the configuration's candidates together, with the configuration's selection rule.
 * Budget: at most N generations (k + the table budget that fits in N - k).
 *
 * With `spread`, N is a benchmark's average per problem instead: the table's budgets are spread
 * over the bins (`spreadAcrossBins`) so that easy problems get less and hard ones more where the
 * calibration says more helps, and a problem gets k + its bin's budget.
 */
import { z } from "zod";
import { budgetSchema, requireVerifier, Search, type Strategy, type StrategyResult } from "../src/strategy.js";
import { allocationTableSchema, binOfScore, lookupEntry, spreadAcrossBins, type AllocationEntry } from "../src/allocation/table.js";
import { describeZodError, InputError } from "../src/errors.js";
import { selectCandidate, SELECTIONS } from "../verifiers/select.js";
import { beam } from "./beam.js";
import { bestOfN } from "./best-of-n.js";
import { dvts } from "./dvts.js";
import { lookahead } from "./lookahead.js";
import { revision } from "./revision.js";

/** The strategies an allocation table may choose. */
const TABLE_STRATEGIES: readonly Strategy[] = [bestOfN, beam, lookahead, dvts, revision];

export const computeOptimalParams = z.object({
  budget: budgetSchema,
  /** The allocation table (`deliberate calibrate` writes one; a default ships in models/). */
  table: allocationTableSchema,
  /** The budget is the average per problem over a benchmark, spread across difficulty bins. */
  spread: z.boolean().default(false),
});
export type ComputeOptimalParams = z.output<typeof computeOptimalParams>;

export const computeOptimal: Strategy<ComputeOptimalParams> = {
  name: "compute-optimal",
  description: "predict the difficulty from a few scored samples, then run the configuration the allocation table chose for it",
  params: computeOptimalParams,

  async run(problem, context, { budget, table, spread }) {
    requireVerifier(context, "compute-optimal (the difficulty estimate)");
    const samples = Math.min(table.difficulty.samples, budget);
    context.meter.countGenerations(samples);
    const search = new Search(problem, context, "last");
    let estimate;
    try {
      estimate = await search.complete(search.expand(await search.start(), samples));
      await search.score(estimate);
    } finally {
      search.releaseAll();
    }
    const score = estimate.reduce((sum, candidate) => sum + (candidate.score ?? 0), 0) / estimate.length;
    const bin = binOfScore(score, table.difficulty.edges);

    const remaining = budget - samples;
    let entry: AllocationEntry | null = null;
    if (spread) entry = spreadAcrossBins(table, remaining)?.get(bin) ?? null;
    else if (remaining > 0) entry = lookupEntry(table, bin, remaining);
    let rest: StrategyResult | null = null;
    if (entry !== null && (spread || entry.budget <= remaining)) {
      const strategy = TABLE_STRATEGIES.find((candidate) => candidate.name === entry.strategy);
      if (strategy === undefined) throw new InputError(`allocation table entry ${entry.label}: unknown strategy ${entry.strategy}`);
      const params = strategy.params.safeParse({ ...entry.params, budget: entry.budget });
      if (!params.success) throw new InputError(`allocation table entry ${entry.label}: ${describeZodError(params.error)}`);
      rest = await strategy.run(problem, context, params.data);
    }

    // The two searches' trees side by side: the configuration's node ids shifted past the estimate's.
    const offset = search.tree.nodes.length;
    const candidates = [...estimate, ...(rest?.candidates ?? []).map((candidate) => ({ ...candidate, nodeId: candidate.nodeId + offset }))];
    const selection = SELECTIONS.find((rule) => rule === entry?.params.select) ?? "weighted";
    const chosen = await selectCandidate(candidates, selection, context.equivalent);
    const shifted = (rest?.tree ?? []).map((node) => ({
      ...node,
      id: node.id + offset,
      parentId: node.parentId === null ? null : node.parentId + offset,
      children: node.children.map((child) => child + offset),
    }));
    return {
      ...search.result(candidates, chosen),
      tree: [...search.tree.nodes, ...shifted],
      difficulty: { score, bin, configuration: rest ? (entry?.label ?? null) : null },
    };
  },
};
