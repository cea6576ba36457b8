/**
 * Strategy configurations across budgets. A bench run has every configuration at every budget,
 * but a configuration only runs where its parameters hold (beam width 4 needs a budget that is a
 * multiple of 4). So a sweep over budgets is one bench run per budget, each in its own directory
 * `<out>/budget-N` with the configurations valid there; the others are skipped with the reason.
 * Used by `deliberate calibrate` and `deliberate compare`; their reports merge the directories.
 */
import { join } from "node:path";
import { getStrategy } from "../../strategies/registry.js";
import { describeZodError, InputError } from "../errors.js";
import { FileParamError, loadFileParams } from "../strategy.js";
import { parseBenchConfig, type BenchConfig, type SkippedConfiguration } from "./config.js";

export interface Configuration {
  label: string;
  strategy: string;
  params: Record<string, unknown>;
}


type Where = (path: readonly PropertyKey[]) => string;

/**
 * One bench config per budget with the configurations valid at it. `bench` holds the other bench
 * settings (flags of `deliberate bench` in camelCase); `where` names a field in messages, and
 * `listName` is the name of the configuration list there ("grid", "strategies").
 */
export function runsPerBudget(
  bench: Record<string, unknown>,
  configurations: readonly Configuration[],
  budgets: readonly number[],
  out: string,
  where: Where,
  listName: string,
): { runs: BenchConfig[]; skipped: SkippedConfiguration[] } {
  const skipped: SkippedConfiguration[] = [];
  const runnable = budgets.map((budget) => ({ budget, entries: [] as { entry: Configuration; index: number }[] }));
  for (const [index, entry] of configurations.entries()) {
    const at = (path: readonly PropertyKey[]) => where([listName, index, ...path]);
    let strategy;
    try {
      strategy = getStrategy(entry.strategy);
    } catch (error) {
      throw new InputError(`${at(["strategy"])}: ${(error as Error).message}`);
    }
    let params;
    try {
      // Loaded once here; the bench configs get the files' contents.
      params = loadFileParams(strategy, entry.params);
    } catch (error) {
      if (error instanceof FileParamError) throw new InputError(`${at(["params", error.param])}: ${error.message}`);
      throw error;
    }
    const loaded = { ...entry, params };
    for (const run of runnable) {
      const parsed = strategy.params.safeParse({ ...params, budget: run.budget });
      if (parsed.success) run.entries.push({ entry: loaded, index });
      // The strategies check what depends on the budget (divisibility) in refinements, whose issues
      // are "custom"; any other issue is a mistake in the entry at every budget.
      else if (parsed.error.issues.every((issue) => issue.code === "custom")) skipped.push({ label: entry.label, budget: run.budget, reason: describeZodError(parsed.error) });
      else throw new InputError(`${at(["params"])}: ${describeZodError(parsed.error)}`);
    }
  }
  const runs = runnable
    .filter((run) => run.entries.length > 0)
    .map(({ budget, entries }) => {
      const config = parseBenchConfig({ ...bench, strategies: entries.map(({ entry }) => entry), budgets: [budget], out: join(out, `budget-${budget}`) }, (path) =>
        // A strategy's issue is named by its place in the list.
        path[0] === "strategies" ? where([listName, entries[path[1] as number]?.index ?? 0, ...path.slice(2)]) : where(path),
      );
      // Recorded in the run, so that the report notes them as it does for a bench run.
      config.experiment.skipped = skipped.filter((skip) => skip.budget === budget);
      return config;
    });
  if (runs.length === 0) throw new InputError(`${where(["budgets"])}: no ${listName} configuration runs at budgets ${budgets.join(", ")}`);
  return { runs, skipped };
}
