/**
 * best-of-n: N independent samples, then one is chosen (Snell et al. 2024, §5).
 *
 * The prompt is prefilled once and forked N ways; all N branches are extended together, one step
 * per round, until each finishes or reaches the step limit, and each branch is released as soon as
 * it finishes. The N solutions are then scored by the verifier in one call (all step prefixes) and
 * one is chosen: `naive` (highest aggregated score), `majority` (most frequent equivalent answer;
 * needs no verifier, and calls none) or `weighted` (answer group with the largest sum of scores).
 * Budget: exactly N generations.
 */
import { z } from "zod";
import { aggregationSchema, budgetSchema, requireVerifier, Search, selectionSchema, type Strategy } from "../src/strategy.js";
import { selectCandidate } from "../verifiers/select.js";

export const bestOfNParams = z.object({
  budget: budgetSchema,
  select: selectionSchema,
  aggregate: aggregationSchema,
});
export type BestOfNParams = z.output<typeof bestOfNParams>;

export const bestOfN: Strategy<BestOfNParams> = {
  name: "best-of-n",
  description: "N independent samples; choose by highest score, majority vote or PRM-weighted vote",
  params: bestOfNParams,

  async run(problem, context, { budget, select, aggregate }) {
    const scored = select !== "majority";
    if (scored) requireVerifier(context, `best-of-n with select=${select} (use select=majority without one)`);
    context.meter.countGenerations(budget);
    const search = new Search(problem, context, aggregate);
    try {
      const root = await search.start();
      const candidates = await search.complete(search.expand(root, budget));
      if (scored) await search.score(candidates);
      const chosen = await selectCandidate(candidates, select, context.equivalent);
      return search.result(candidates, chosen);
    } finally {
      search.releaseAll();
    }
  },
};
