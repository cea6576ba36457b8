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
import type { z } from "zod";
import { aggregationSchema, budgetSchema, requireVerifier, selectionSchema, strategyParams, type Strategy } from "../src/strategy.js";
import { withSearch } from "../src/search.js";
import { selectCandidate } from "../verifiers/select.js";

export const bestOfNParams = strategyParams("best-of-n", {
  budget: budgetSchema,
  select: selectionSchema,
  aggregate: aggregationSchema,
});
export type BestOfNParams = z.output<typeof bestOfNParams>;

/** Only majority voting runs without a verifier. */
function needsVerifier({ select }: Pick<BestOfNParams, "select">): string | null {
  return select === "majority" ? null : `best-of-n with select=${select} (use select=majority without one)`;
}

export const bestOfN: Strategy<BestOfNParams, "best-of-n"> = {
  name: "best-of-n",
  description: "N independent samples; choose by highest score, majority vote or PRM-weighted vote",
  params: bestOfNParams,
  needsVerifier,

  async run(problem, context, { budget, select, aggregate }) {
    const need = needsVerifier({ select });
    const scored = need !== null;
    if (scored) requireVerifier(context, need);
    context.meter.countGenerations(budget);
    return withSearch(problem, context, aggregate, async (search) => {
      const root = await search.start();
      const candidates = await search.complete(search.expand(root, budget));
      if (scored) await search.score(candidates);
      const chosen = await selectCandidate(candidates, select, context.equivalent);
      return search.result(candidates, chosen);
    });
  },
};
