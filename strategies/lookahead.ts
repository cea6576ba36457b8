/**
 * lookahead: beam search whose steps are scored by looking ahead (Snell et al. 2024, §5.2).
 *
 * As in `beam`, but a candidate step is not scored on its own: a fork of its beam is rolled out k
 * more steps at temperature 0, the verifier scores the rollout (all rollouts and finished beams in
 * one call), and the rollout's aggregated score becomes the step's score; the rollout is then
 * released. Rollout tokens land on the meter like any others.
 *
 * Budget, as in the paper: a beam costs k + 1 generations (its own step and k rollout steps per
 * round), so budget N runs N / (k + 1) beams, kept N / ((k + 1) M) at a time and expanded M times.
 * At most 2 N / (k + 1) branches are live (the beams and their rollouts).
 */
import { z } from "zod";
import { aggregationSchema, beamWidthSchema, budgetSchema, requireVerifier, strategyParams, selectionSchema, type Strategy } from "../src/strategy.js";
import { withSearch, type Search, type SearchPath } from "../src/search.js";
import { selectCandidate } from "../verifiers/select.js";
import { beamSearch } from "./beam.js";

export const lookaheadParams = strategyParams("lookahead", {
    budget: budgetSchema,
    beamWidth: beamWidthSchema,
    lookahead: z.int().min(1).default(1).describe("greedy steps rolled out (k) before a step is scored"),
    select: selectionSchema,
    aggregate: aggregationSchema,
})
  .superRefine(({ budget, beamWidth, lookahead }, issues) => {
    const cost = lookahead + 1;
    if (budget % cost !== 0) {
      issues.addIssue({
        code: "custom",
        path: ["budget"],
        message: `budget ${budget} is not a multiple of lookahead + 1 = ${cost} (a beam costs lookahead + 1 generations, so budget / (lookahead + 1) beams run)`,
      });
    } else if ((budget / cost) % beamWidth !== 0) {
      issues.addIssue({
        code: "custom",
        path: ["budget"],
        message: `budget ${budget} with lookahead ${lookahead} runs ${budget / cost} beams, which is not a multiple of beamWidth ${beamWidth}`,
      });
    }
  });
export type LookaheadParams = z.output<typeof lookaheadParams>;

/**
 * Scores every beam by a greedy rollout of `steps` more steps (a finished beam on its own steps),
 * all in one verifier call; the rollouts are released.
 */
async function scoreWithLookahead(search: Search, beams: readonly SearchPath[], steps: number): Promise<void> {
  const rolloutOf = new Map<SearchPath, SearchPath>();
  for (const path of beams) if (!path.finished) rolloutOf.set(path, search.fork(path));
  for (let step = 0; step < steps; step++) {
    const rolling = [...rolloutOf.values()].filter((rollout) => !search.isDone(rollout));
    if (rolling.length === 0) break;
    await search.extendRollouts(rolling);
  }
  await search.score(beams.map((path) => rolloutOf.get(path) ?? path));
  for (const [path, rollout] of rolloutOf) {
    path.stepScores = rollout.stepScores.slice(0, path.steps.length);
    path.score = rollout.score;
    search.discard(rollout);
  }
}

export const lookahead: Strategy<LookaheadParams, "lookahead"> = {
  name: "lookahead",
  description: "beam search scoring each step after a greedy rollout of k more steps",
  params: lookaheadParams,
  needsVerifier: () => "look-ahead search",

  async run(problem, context, params) {
    const { budget, beamWidth, select, aggregate } = params;
    requireVerifier(context, "look-ahead search");
    context.meter.countGenerations(budget);
    const beamCount = budget / (params.lookahead + 1);
    return withSearch(problem, context, aggregate, async (search) => {
      const candidates = await beamSearch(search, beamCount, beamWidth, (paths) => scoreWithLookahead(search, paths, params.lookahead));
      const chosen = await selectCandidate(candidates, select, context.equivalent);
      return search.result(candidates, chosen);
    });
  },
};
