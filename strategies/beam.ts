/**
 * beam: beam search over steps with a process reward model (Snell et al. 2024, §5.2).
 *
 * N beams, beam width M. The prompt is prefilled once and forked N ways. Each round extends every
 * active beam by one step (one policy call) and scores every beam's steps (one verifier call).
 * Beams the model finished are set aside as candidates; of the others, the N/M with the highest
 * aggregated score are kept and each is expanded M times (itself and M - 1 forks), the rest pruned.
 * The search ends when N beams have finished, no beam is active, or after `maxSteps` rounds; beams
 * still active then become unfinished candidates. One candidate is chosen as in best-of-N.
 * Budget: N generations (N beams); at most N branches are live at any time.
 */
import { z } from "zod";
import {
  aggregationSchema,
  budgetSchema,
  highestScored,
  requireVerifier,
  Search,
  selectionSchema,
  type Candidate,
  type Strategy,
} from "../src/strategy.js";
import { selectCandidate } from "../verifiers/select.js";

export const beamParams = z
  .object({
    budget: budgetSchema,
    beamWidth: z.int().min(1).default(4),
    select: selectionSchema,
    aggregate: aggregationSchema,
  })
  .superRefine(({ budget, beamWidth }, issues) => {
    if (budget % beamWidth !== 0) {
      issues.addIssue({
        code: "custom",
        path: ["budget"],
        message: `budget ${budget} is not a multiple of beamWidth ${beamWidth} (beam search keeps budget / beamWidth beams each round and expands each beamWidth times)`,
      });
    }
  });
export type BeamParams = z.output<typeof beamParams>;

export const beam: Strategy<BeamParams> = {
  name: "beam",
  description: "beam search over steps: keep the top N/M beams by PRM score each round, expand each M times",
  params: beamParams,

  async run(problem, context, { budget, beamWidth, select, aggregate }) {
    requireVerifier(context, "beam search");
    context.meter.countGenerations(budget);
    const search = new Search(problem, context, aggregate);
    try {
      const candidates: Candidate[] = [];
      let beams = search.expand(await search.start(), budget);
      for (let round = 1; beams.length > 0; round++) {
        await search.extend(beams);
        await search.score(beams);
        const active = beams.filter((path) => !path.finished);
        for (const path of beams) if (path.finished) candidates.push(search.finish(path));
        beams = active;
        if (candidates.length >= budget || round >= context.limits.maxSteps) break;

        const kept = highestScored(beams, budget / beamWidth);
        for (const path of beams) if (!kept.includes(path)) search.prune(path);
        beams = kept.flatMap((path) => search.expand(path, beamWidth));
      }
      for (const path of beams) candidates.push(search.finish(path));
      const chosen = await selectCandidate(candidates, select, context.equivalent);
      return search.result(candidates, chosen);
    } finally {
      search.releaseAll();
    }
  },
};
