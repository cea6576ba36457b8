/**
 * dvts: diverse verifier tree search (Beeching et al. 2024, the open reproduction of Snell et al.).
 *
 * The budget N is split into N/M independent subtrees, which keeps the search diverse where one
 * beam search would collapse onto a few high-scored prefixes. Each round, every subtree proposes M
 * next steps (its head and M - 1 forks; all subtrees in one policy call), all proposals are scored
 * in one verifier call, and each subtree greedily keeps its highest-scored proposal and prunes the
 * others. A subtree ends when its kept proposal is finished or has `maxSteps` steps; its path is
 * its candidate (N/M candidates), and one is chosen as in best-of-N.
 * Budget: N generations; at most N branches are live at any time.
 */
import { z } from "zod";
import { aggregationSchema, beamWidthSchema, budgetMultipleOfWidth, budgetSchema, requireVerifier, strategyParams, selectionSchema, type Candidate, type Strategy } from "../src/strategy.js";
import { highestScored, withSearch, type SearchPath } from "../src/search.js";
import { selectCandidate } from "../verifiers/select.js";

export const dvtsParams = strategyParams("dvts", {
    budget: budgetSchema,
    /** Proposals per step in each subtree (M). */
    beamWidth: beamWidthSchema,
    select: selectionSchema,
    aggregate: aggregationSchema,
})
  .superRefine(budgetMultipleOfWidth("DVTS runs budget / beamWidth subtrees with beamWidth proposals per step"));
export type DvtsParams = z.output<typeof dvtsParams>;

export const dvts: Strategy<DvtsParams, "dvts"> = {
  name: "dvts",
  description: "diverse verifier tree search: N/M independent subtrees, each greedy over M proposals per step",
  params: dvtsParams,
  needsVerifier: () => "DVTS",

  async run(problem, context, { budget, beamWidth, select, aggregate }) {
    requireVerifier(context, "DVTS");
    context.meter.countGenerations(budget);
    return withSearch(problem, context, aggregate, async (search) => {
      const candidates: Candidate[] = [];
      let heads = search.expand(await search.start(), budget / beamWidth);
      while (heads.length > 0) {
        const proposals = heads.map((head) => search.expand(head, beamWidth));
        await search.extend(proposals.flat());
        await search.score(proposals.flat());
        heads = [];
        for (const subtree of proposals) {
          const best = highestScored(subtree, 1)[0] as SearchPath;
          for (const path of subtree) if (path !== best) search.prune(path);
          if (search.isDone(best)) candidates.push(search.finish(best));
          else heads.push(best);
        }
      }
      const chosen = await selectCandidate(candidates, select, context.equivalent);
      return search.result(candidates, chosen);
    });
  },
};
