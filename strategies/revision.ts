/**
 * revision: sequential revisions in parallel chains (Snell et al. 2024, §6).
 *
 * The budget N is split into P parallel chains of S sequential attempts (P x S = N) by `ratio`, the
 * paper's sequential-to-parallel ratio S / P, so S = sqrt(N x ratio). In each chain the first
 * attempt answers the problem and every later one is written by the model seeing the chain's most
 * recent `history` attempts (PolicyPrompt.previousAttempts, oldest first; the runtime formats them
 * for its model). The chains advance together: the first attempts are forks of one prefilled
 * prompt, later attempts start from their own prompts; every round extends all attempts in one
 * policy call, and each revision's attempts are scored in one verifier call.
 *
 * Selection is hierarchical, as in the paper: within each chain (`withinChain`: the highest
 * verifier score, the majority answer, or simply the last attempt; a revision can turn a right
 * answer wrong), then across the chains' picks (`select`, as in best-of-N). `withinChain: pool`
 * skips the choice within chains: every attempt of every chain goes to one `select` vote, as
 * best-of-N's samples do (with the embedded models a chain's pick by score passes over right
 * attempts that a vote over all of them keeps: README, "Why revision chains do not beat parallel
 * sampling").
 * `revisionTemperature` samples the revisions cooler than the first attempts: the first attempts
 * give the chains their spread, and a sampled revision breaks right attempts more often than a
 * greedy one (README, "Why revision chains do not beat parallel sampling").
 * Budget: N generations; P branches are live at a time.
 */
import { z } from "zod";
import { aggregationSchema, budgetSchema, requireVerifier, selectionSchema, strategyParams, type Candidate, type Strategy } from "../src/strategy.js";
import { withSearch } from "../src/search.js";
import { selectCandidate, type Equivalence } from "../verifiers/select.js";

/** Revisions per chain for a budget and a sequential-to-parallel ratio, or null when they do not split it evenly. */
export function revisionsPerChain(budget: number, ratio: number): number | null {
  const exact = Math.sqrt(budget * ratio);
  const revisions = Math.round(exact);
  return revisions >= 1 && Math.abs(exact - revisions) < 1e-6 && budget % revisions === 0 ? revisions : null;
}

/** The ratios that split a budget evenly: S^2 / N for every divisor S of N. */
function validRatios(budget: number): number[] {
  const ratios: number[] = [];
  for (let revisions = 1; revisions <= budget; revisions++) if (budget % revisions === 0) ratios.push((revisions * revisions) / budget);
  return ratios;
}

export const WITHIN_CHAIN = ["verifier", "majority", "last", "pool"] as const;

export const revisionParams = strategyParams("revision", {
    budget: budgetSchema,
    ratio: z.number().positive().default(1).describe("sequential revisions per chain divided by parallel chains"),
    history: z.int().min(1).default(4).describe("previous attempts the model sees, the most recent (the paper shows 4)"),
    withinChain: z
      .enum(WITHIN_CHAIN)
      .default("verifier")
      .describe("choice within a chain: highest verifier score, majority answer, the last attempt, or pool (no choice: every attempt goes to the final vote)"),
    revisionTemperature: z
      .number()
      .min(0)
      .optional()
      .describe("sampling temperature of the revisions (attempts after the first; default: the run's temperature)"),
    select: selectionSchema,
    aggregate: aggregationSchema,
})
  .superRefine(({ budget, ratio }, issues) => {
    if (revisionsPerChain(budget, ratio) === null) {
      issues.addIssue({
        code: "custom",
        path: ["ratio"],
        message:
          `ratio ${ratio} does not split budget ${budget} into whole chains x revisions (revisions per chain = ` +
          `sqrt(budget x ratio) = ${Math.sqrt(budget * ratio).toFixed(3)} must be a whole number that divides budget); ` +
          `for budget ${budget} use ratio ${validRatios(budget).join(", ")}`,
      });
    }
  });
export type RevisionParams = z.output<typeof revisionParams>;

function pickWithinChain(chain: readonly Candidate[], rule: Exclude<(typeof WITHIN_CHAIN)[number], "pool">, equivalent: Equivalence): Promise<Candidate | null> {
  switch (rule) {
    case "verifier":
      return selectCandidate(chain, "naive", equivalent);
    case "majority":
      return selectCandidate(chain, "majority", equivalent);
    case "last":
      return Promise.resolve(chain[chain.length - 1] ?? null);
  }
}

/** Runs without a verifier only when no choice reads a score (withinChain=majority, last or pool, select=majority). */
function needsVerifier({ withinChain, select }: Pick<RevisionParams, "withinChain" | "select">): string | null {
  return withinChain === "verifier" || select !== "majority" ? `revision with withinChain=${withinChain} and select=${select}` : null;
}

export const revision: Strategy<RevisionParams, "revision"> = {
  name: "revision",
  description: "sequential revisions that see the previous attempts, in parallel chains; ratio = revisions / chains",
  params: revisionParams,
  needsVerifier,

  async run(problem, context, params) {
    const { budget, history, withinChain, revisionTemperature, select, aggregate } = params;
    const need = needsVerifier(params);
    const scored = need !== null;
    if (scored) requireVerifier(context, need);
    const revisions = revisionsPerChain(budget, params.ratio) as number;
    const chains: Candidate[][] = Array.from({ length: budget / revisions }, () => []);
    context.meter.countGenerations(budget);
    return withSearch(problem, context, aggregate, async (search) => {
      for (let attempt = 0; attempt < revisions; attempt++) {
        const paths =
          attempt === 0
            ? search.expand(await search.start(), chains.length)
            : await search.startAll(
                chains.map((chain) => ({
                  prompt: { problem, previousAttempts: chain.slice(-history).map((earlier) => earlier.text) },
                  parentNodeId: (chain[chain.length - 1] as Candidate).nodeId,
                })),
              );
        const attempts = await search.complete(paths, attempt === 0 ? undefined : revisionTemperature);
        if (scored) await search.score(attempts);
        attempts.forEach((written, index) => chains[index]?.push(written));
      }
      const attempts = chains.flat();
      if (withinChain === "pool") return search.result(attempts, await selectCandidate(attempts, select, context.equivalent));
      const picks = await Promise.all(chains.map((chain) => pickWithinChain(chain, withinChain, context.equivalent)));
      const chosen = await selectCandidate(
        picks.filter((pick) => pick !== null),
        select,
        context.equivalent,
      );
      return search.result(attempts, chosen);
    });
  },
};
