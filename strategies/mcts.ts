/**
 * mcts: Monte Carlo tree search over steps with a process reward model as the value (after the
 * step-level MCTS of OpenR, LLM Reasoners and rStar).
 *
 * A tree node is a partial solution. Each iteration:
 * - selection: from the root, descend to the child with the highest UCT value
 *   Q + c sqrt(ln N(parent) / N(child)) (Q the mean value, N the visits, c `exploration`), among
 *   children with something left to search, until a node that has not been expanded;
 * - expansion: that node's branch becomes k children (`branching`: itself and k - 1 forks), each
 *   extended by one sampled step, all in one policy call;
 * - simulation: every unfinished child is rolled out to the end on a fork, at the sampling
 *   temperature (the rollouts decoded together), and every finished solution is scored in one
 *   verifier call; a child's value is its solution's aggregated PRM score;
 * - backpropagation: each value is added to the child and its ancestors.
 * Every rollout is a complete solution and a candidate; one is chosen as in best-of-N.
 * Budget: N generations, one per expanded child with its rollout, so N / k iterations (the last
 * one narrower when k does not divide N) and N candidates; the search ends early when every path
 * is finished. At most N + k branches are live: the unexpanded children and one iteration's rollouts.
 */
import { z } from "zod";
import { aggregationSchema, budgetSchema, requireVerifier, selectionSchema, strategyParams, type Candidate, type Strategy } from "../src/strategy.js";
import { withSearch, type SearchPath } from "../src/search.js";
import { selectCandidate } from "../verifiers/select.js";

export const mctsParams = strategyParams("mcts", {
  budget: budgetSchema,
  branching: z.int().min(1).default(4).describe("children per expanded node (k)"),
  exploration: z.number().min(0).default(1).describe("UCT exploration constant c (0 always follows the best mean value)"),
  select: selectionSchema,
  aggregate: aggregationSchema,
});
export type MctsParams = z.output<typeof mctsParams>;

interface TreeNode {
  parent: TreeNode | null;
  children: TreeNode[];
  /** Its live branch until it is expanded; null for an expanded or finished node. */
  path: SearchPath | null;
  visits: number;
  /** The sum of the values backpropagated through it. */
  total: number;
  /** Nothing left to search below it: it is finished, or expanded with every child exhausted. */
  exhausted: boolean;
}

const leaf = (parent: TreeNode | null, path: SearchPath): TreeNode => ({ parent, children: [], path, visits: 0, total: 0, exhausted: false });

function uct(child: TreeNode, parentVisits: number, exploration: number): number {
  return child.total / child.visits + exploration * Math.sqrt(Math.log(parentVisits) / child.visits);
}

/** The unexpanded node that UCT leads to; null when the whole tree is exhausted. Ties go to the earlier child. */
function selectLeaf(root: TreeNode, exploration: number): TreeNode | null {
  let node = root;
  while (node.children.length > 0) {
    const open = node.children.filter((child) => !child.exhausted);
    if (open.length === 0) return null;
    const parentVisits = node.visits;
    node = open.reduce((best, child) => (uct(child, parentVisits, exploration) > uct(best, parentVisits, exploration) ? child : best));
  }
  return node.exhausted ? null : node;
}

function backpropagate(node: TreeNode, value: number): void {
  for (let at: TreeNode | null = node; at !== null; at = at.parent) {
    at.visits += 1;
    at.total += value;
  }
}

function markExhausted(node: TreeNode): void {
  for (let at: TreeNode | null = node; at !== null && at.children.every((child) => child.exhausted); at = at.parent) at.exhausted = true;
}

export const mcts: Strategy<MctsParams, "mcts"> = {
  name: "mcts",
  description: "Monte Carlo tree search over steps: UCT selection, k children per expansion, PRM-scored rollouts as values",
  params: mctsParams,
  needsVerifier: () => "MCTS",

  async run(problem, context, { budget, branching, exploration, select, aggregate }) {
    requireVerifier(context, "MCTS");
    return withSearch(problem, context, aggregate, async (search) => {
      const candidates: Candidate[] = [];
      const root = leaf(null, await search.start());
      for (let spent = 0; spent < budget; ) {
        const node = selectLeaf(root, exploration);
        if (node === null) break;
        const width = Math.min(branching, budget - spent);
        spent += width;
        context.meter.countGenerations(width);
        const paths = search.expand(node.path as SearchPath, width);
        node.path = null;
        await search.extend(paths);
        node.children = paths.map((path) => leaf(node, path));

        // A finished child is its own solution; an unfinished one is rolled out on a fork and stays expandable.
        const rolledOut = node.children.filter((child) => !search.isDone(child.path as SearchPath));
        const rollouts = await search.complete(rolledOut.map((child) => search.fork(child.path as SearchPath)));
        const solutions = node.children.map((child) => {
          const rollout = rolledOut.indexOf(child);
          if (rollout !== -1) return rollouts[rollout] as Candidate;
          child.exhausted = true;
          const solution = search.finish(child.path as SearchPath);
          child.path = null;
          return solution;
        });
        await search.score(solutions);
        candidates.push(...solutions);
        node.children.forEach((child, index) => backpropagate(child, solutions[index]?.score ?? 0));
        markExhausted(node);
      }
      const chosen = await selectCandidate(candidates, select, context.equivalent);
      return search.result(candidates, chosen);
    });
  },
};
