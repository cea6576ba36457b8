/**
 * particle-filtering: sequential Monte Carlo over steps with a process reward model (Puri et al.
 * 2025, "A Probabilistic Inference Approach to Inference-Time Scaling of LLMs using Particle-Based
 * Monte Carlo Methods").
 *
 * N particles are partial solutions, forked from one prefilled prompt. Each round extends every
 * unfinished particle by one step (one policy call) and scores them (one verifier call); a
 * particle's weight is its aggregated PRM score taken as log-odds (logit(score) / temperature,
 * softmax over the population), as its_hub does. Then N particles are drawn with replacement by
 * those weights, with the run's seeded random source: a particle drawn c times continues as itself
 * and c - 1 forks, one drawn 0 times is pruned. Finished particles stay in the population with
 * their weight, so a good finished solution keeps being drawn while others continue. Where beam
 * search keeps the top N/M deterministically, resampling keeps some lower-scored particles alive,
 * which is what makes it robust to an imperfect PRM. The search ends when every particle of the
 * population is finished or has `maxSteps` steps, and one answer is chosen from the final
 * population (duplicates included, so a particle drawn often weighs more) as in best-of-N.
 * Budget: N generations (N particles); at most N branches are live at any time.
 */
import { z } from "zod";
import { aggregationSchema, budgetSchema, requireVerifier, selectionSchema, strategyParams, type Candidate, type Strategy } from "../src/strategy.js";
import { withSearch, type SearchPath } from "../src/search.js";
import type { Random } from "../src/random.js";
import { selectCandidate } from "../verifiers/select.js";

export const particleFilteringParams = strategyParams("particle-filtering", {
  budget: budgetSchema,
  resampleTemperature: z
    .number()
    .positive()
    .default(1)
    .describe("softmax temperature over the particles' PRM log-odds when resampling (lower follows the PRM more greedily)"),
  select: selectionSchema,
  aggregate: aggregationSchema,
});
export type ParticleFilteringParams = z.output<typeof particleFilteringParams>;

/** Scores clipped away from 0 and 1, so that every particle has a finite log-odds weight. */
const CLIP = 1e-6;

/** The resampling probabilities: softmax of logit(score) / temperature. */
export function resamplingWeights(scores: readonly number[], temperature: number): number[] {
  const logits = scores.map((score) => {
    const p = Math.min(1 - CLIP, Math.max(CLIP, score));
    return Math.log(p / (1 - p)) / temperature;
  });
  const top = Math.max(...logits);
  const exps = logits.map((logit) => Math.exp(logit - top));
  const total = exps.reduce((sum, value) => sum + value, 0);
  return exps.map((value) => value / total);
}

/** How often each index is drawn when `draws` indices are drawn with replacement by `weights` (multinomial). */
export function drawCounts(weights: readonly number[], draws: number, random: Random): number[] {
  const counts = weights.map(() => 0);
  for (let draw = 0; draw < draws; draw++) {
    let u = random.next();
    let index = 0;
    while (index < weights.length - 1 && u >= (weights[index] as number)) u -= weights[index++] as number;
    counts[index] = (counts[index] as number) + 1;
  }
  return counts;
}

export const particleFiltering: Strategy<ParticleFilteringParams, "particle-filtering"> = {
  name: "particle-filtering",
  description: "particle filtering: N partial solutions resampled each step by their PRM scores",
  params: particleFilteringParams,
  needsVerifier: () => "particle filtering",

  async run(problem, context, { budget, resampleTemperature, select, aggregate }) {
    requireVerifier(context, "particle filtering");
    context.meter.countGenerations(budget);
    return withSearch(problem, context, aggregate, async (search) => {
      /** Every particle that finished, once each, in the order they finished. */
      const finished: Candidate[] = [];
      /** The finished part of the population: a candidate drawn c times appears c times. */
      let done: Candidate[] = [];
      let live: SearchPath[] = search.expand(await search.start(), budget);
      while (live.length > 0) {
        await search.extend(live);
        await search.score(live);
        const population = [...live, ...done];
        const weights = resamplingWeights(
          population.map((particle) => particle.score ?? 0),
          resampleTemperature,
        );
        const counts = drawCounts(weights, budget, context.random);
        const nextLive: SearchPath[] = [];
        const nextDone: Candidate[] = [];
        // Pruned first, so that the forks never hold more than N branches.
        for (const [index, path] of live.entries()) if (counts[index] === 0) search.prune(path);
        for (const [index, path] of live.entries()) {
          const count = counts[index] as number;
          if (count === 0) continue;
          if (search.isDone(path)) {
            const candidate = search.finish(path);
            finished.push(candidate);
            nextDone.push(...Array.from({ length: count }, () => candidate));
          } else nextLive.push(...search.expand(path, count));
        }
        done.forEach((candidate, index) => nextDone.push(...Array.from({ length: counts[live.length + index] as number }, () => candidate)));
        live = nextLive;
        done = nextDone;
      }
      const chosen = await selectCandidate(done, select, context.equivalent);
      return search.result(finished, chosen);
    });
  },
};
