/** The strategies by the names used on the CLI, in configs and in results. */
import { InputError } from "../src/errors.js";
import type { Strategy } from "../src/strategy.js";
import { beam } from "./beam.js";
import { computeOptimal } from "./compute-optimal.js";
import { bestOfN } from "./best-of-n.js";
import { dvts } from "./dvts.js";
import { lookahead } from "./lookahead.js";
import { mcts } from "./mcts.js";
import { particleFiltering } from "./particle-filtering.js";
import { revision } from "./revision.js";

export const STRATEGIES = [bestOfN, beam, lookahead, dvts, revision, computeOptimal, particleFiltering, mcts] as const;

/** The registered strategies' names: `"bean"` is a type error where a StrategyName is expected. */
export type StrategyName = (typeof STRATEGIES)[number]["name"];

export const STRATEGY_NAMES: readonly StrategyName[] = STRATEGIES.map((strategy) => strategy.name);

/** The strategy called `name` (a registered name, or a string from a flag or a file); an InputError listing the valid names otherwise. */
export function getStrategy(name: string): Strategy {
  const strategy = STRATEGIES.find((candidate) => candidate.name === name);
  if (strategy === undefined) throw new InputError(`unknown strategy "${name}"; valid strategies: ${STRATEGY_NAMES.join(", ")}`);
  return strategy;
}
