/** `deliberate solve`: one problem through one search strategy on the embedded (or given) models. */
import { Command, Option } from "commander";
import { STRATEGY_NAMES } from "../../strategies/registry.js";
import { AGGREGATIONS } from "../../verifiers/aggregate.js";
import { SELECTIONS } from "../../verifiers/select.js";
import { WITHIN_CHAIN } from "../../strategies/revision.js";
import { InputError } from "../errors.js";
import { solve } from "../solve.js";
import { defaultAllocationTable, loadAllocationTable } from "../allocation/table.js";
import { addModelOptions, loadModels, positiveInteger, splitServedFlags, type ModelFlags } from "./model-options.js";

interface SolveFlags extends ModelFlags {
  strategy: string;
  budget: number;
  seed: number;
  select?: string;
  aggregate?: string;
  beamWidth?: number;
  lookahead?: number;
  ratio?: number;
  history?: number;
  withinChain?: string;
  allocation?: string;
  temperature?: number;
  topP?: number;
  maxSteps?: number;
  maxStepTokens?: number;
  json?: boolean;
}

/** Strategy parameter names as the flags that set them, so that errors name the flag. */
const FLAG_OF: Record<string, string> = {
  budget: "--budget",
  beamWidth: "--beam-width",
  lookahead: "--lookahead",
  ratio: "--ratio",
  history: "--history",
  withinChain: "--within-chain",
  select: "--select",
  aggregate: "--aggregate",
  maxSteps: "--max-steps",
  maxStepTokens: "--max-step-tokens",
  temperature: "--temperature",
  topP: "--top-p",
};

export function withFlagNames(message: string): string {
  return message.replace(/\b(budget|beamWidth|lookahead|ratio|history|withinChain|select|aggregate|maxSteps|maxStepTokens|temperature|topP)\b/g, (name) => FLAG_OF[name] ?? name);
}

function number(flag: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isFinite(parsed)) throw new InputError(`${flag} must be a number, got "${value}"`);
    return parsed;
  };
}

/** Only the flags the user gave, so that each strategy's own defaults apply to the rest. */
function definedParams(flags: SolveFlags): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  if (flags.strategy === "compute-optimal") params.table = loadAllocationTable(flags.allocation ?? defaultAllocationTable());
  for (const key of ["select", "aggregate", "beamWidth", "lookahead", "ratio", "history", "withinChain"] as const) {
    if (flags[key] !== undefined) params[key] = flags[key];
  }
  return params;
}

export function registerSolve(program: Command): void {
  const command = program
    .command("solve")
    .description("Solve one problem with a test-time search strategy and print the chosen solution, its answer and the compute spent")
    .argument("<problem>", "the problem text")
    .addOption(new Option("--strategy <name>", "search strategy").choices([...STRATEGY_NAMES]).default("best-of-n"))
    .option("--budget <n>", "budget N in generations", positiveInteger("--budget"), 16)
    .option("--seed <n>", "seed of every random choice", number("--seed"), 0)
    .addOption(new Option("--select <rule>", "final selection: highest score, majority vote, or PRM-weighted vote").choices([...SELECTIONS]))
    .addOption(new Option("--aggregate <how>", "step scores to a solution score").choices([...AGGREGATIONS]))
    .option("--beam-width <m>", "beam, lookahead, dvts: expansions per kept beam (M)", positiveInteger("--beam-width"))
    .option("--lookahead <k>", "lookahead: greedy steps rolled out before scoring", positiveInteger("--lookahead"))
    .option("--ratio <r>", "revision: sequential revisions per parallel chain", number("--ratio"))
    .option("--history <n>", "revision: previous attempts the model sees", positiveInteger("--history"))
    .addOption(new Option("--within-chain <how>", "revision: choice within a chain").choices([...WITHIN_CHAIN]))
    .option("--allocation <table.json>", "compute-optimal: the allocation table (default: the one shipped for the embedded models)")
    .option("--temperature <t>", "sampling temperature (0 is greedy)", number("--temperature"))
    .option("--top-p <p>", "nucleus sampling mass", number("--top-p"))
    .option("--max-steps <n>", "most steps in a solution", positiveInteger("--max-steps"))
    .option("--max-step-tokens <n>", "most tokens in a step", positiveInteger("--max-step-tokens"))
    .option("--json", "print the whole result (candidates, step scores, search tree, compute) as JSON")
    .addHelpText("after", '\nExample:\n  deliberate solve --strategy beam --budget 16 "Compute (17 + 5) * 3 - 8."');
  addModelOptions(command).action(async (problem: string, flags: SolveFlags) => {
    const models = await loadModels({ ...flags, ...splitServedFlags({ ...flags }).served });
    try {
      const result = await solve(problem, {
        strategy: flags.strategy,
        budget: flags.budget,
        policy: models.policy,
        verifier: models.verifier,
        seed: flags.seed,
        params: definedParams(flags),
        limits: { ...(flags.maxSteps ? { maxSteps: flags.maxSteps } : {}), ...(flags.maxStepTokens ? { maxStepTokens: flags.maxStepTokens } : {}) },
        sampling: { ...(flags.temperature !== undefined ? { temperature: flags.temperature } : {}), ...(flags.topP !== undefined ? { topP: flags.topP } : {}) },
      }).catch((error: unknown) => {
        if (error instanceof InputError) throw new InputError(withFlagNames(error.message));
        throw error;
      });
      if (flags.json) {
        console.log(JSON.stringify(result, null, 2));
        return;
      }
      const chosen = result.chosen;
      console.log(chosen ? chosen.steps.join("\n\n") : "(no candidate produced an answer)");
      console.log(`\nanswer: ${result.answer ?? "(none)"}`);
      if (chosen) console.log(`score: ${chosen.score === null ? "(none)" : chosen.score.toFixed(3)} (${result.candidates.length} candidates)`);
      const c = result.compute;
      console.log(
        `compute: ${c.generations} generations, ${c.generatedTokens} generated + ${c.prefilledTokens} prefilled + ${c.verifierTokens} verifier tokens, ` +
          `${c.flops === null ? "unknown" : (c.flops / 1e9).toFixed(2)} GFLOP, ${c.policyCalls} policy / ${c.verifierCalls} verifier calls, ${(c.wallMs / 1000).toFixed(1)} s`,
      );
    } finally {
      await models.close();
    }
  });
}
