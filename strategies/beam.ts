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
import { aggregationSchema, beamWidthSchema, budgetMultipleOfWidth, budgetSchema, requireVerifier, strategyParams, selectionSchema, type Candidate, type Strategy } from "../src/strategy.js";
import { highestScored, withSearch, type Search, type SearchPath } from "../src/search.js";
import { selectCandidate } from "../verifiers/select.js";

export const beamParams = strategyParams("beam", { budget: budgetSchema, beamWidth: beamWidthSchema, select: selectionSchema, aggregate: aggregationSchema })
  .superRefine(budgetMultipleOfWidth("beam search keeps budget / beamWidth beams each round and expands each beamWidth times"));
export type BeamParams = z.output<typeof beamParams>;

/**
 * The beam search loop (shared with look-ahead search, which scores differently): `beams` beams
 * from one prefilled prompt; each round extends every active beam, scores them with `score`, sets
 * finished beams aside as candidates, keeps the `beams / width` best of the others and expands each
 * `width` times. It ends when `beams` beams have finished, none is active, or after maxSteps
 * rounds; beams still active then become unfinished candidates.
 */
export async function beamSearch(
  search: Search,
  beams: number,
  width: number,
  score: (paths: SearchPath[]) => Promise<void>,
): Promise<Candidate[]> {
  const candidates: Candidate[] = [];
  let active = search.expand(await search.start(), beams);
  for (let round = 1; active.length > 0; round++) {
    await search.extend(active);
    await score(active);
    for (const path of active) if (path.finished) candidates.push(search.finish(path));
    active = active.filter((path) => !path.finished);
    if (candidates.length >= beams || round >= search.context.limits.maxSteps) break;

    const kept = highestScored(active, beams / width);
    for (const path of active) if (!kept.includes(path)) search.prune(path);
    active = kept.flatMap((path) => search.expand(path, width));
  }
  for (const path of active) candidates.push(search.finish(path));
  return candidates;
}

export const beam: Strategy<BeamParams, "beam"> = {
  name: "beam",
  description: "beam search over steps: keep the top N/M beams by PRM score each round, expand each M times",
  params: beamParams,
  needsVerifier: () => "beam search",

  async run(problem, context, { budget, beamWidth, select, aggregate }) {
    requireVerifier(context, "beam search");
    context.meter.countGenerations(budget);
    return withSearch(problem, context, aggregate, async (search) => {
      const candidates = await beamSearch(search, budget, beamWidth, (paths) => search.score(paths));
      const chosen = await selectCandidate(candidates, select, context.equivalent);
      return search.result(candidates, chosen);
    });
  },
};
