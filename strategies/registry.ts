/** The strategies by the names used on the CLI, in configs and in results. */
import { InputError } from "../src/errors.js";
import type { Strategy } from "../src/strategy.js";
import { beam } from "./beam.js";
import { computeOptimal } from "./compute-optimal.js";
import { bestOfN } from "./best-of-n.js";
import { dvts } from "./dvts.js";
import { lookahead } from "./lookahead.js";
import { revision } from "./revision.js";

export const STRATEGIES: readonly Strategy[] = [bestOfN, beam, lookahead, dvts, revision, computeOptimal];

export const STRATEGY_NAMES: readonly string[] = STRATEGIES.map((strategy) => strategy.name);

/** The strategy called `name`; an InputError listing the valid names otherwise. */
export function getStrategy(name: string): Strategy {
  const strategy = STRATEGIES.find((candidate) => candidate.name === name);
  if (strategy === undefined) throw new InputError(`unknown strategy "${name}"; valid strategies: ${STRATEGY_NAMES.join(", ")}`);
  return strategy;
}
