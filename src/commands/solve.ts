/** `deliberate solve`: one problem through one search strategy on the embedded (or given) models. */
import { Command, Option } from "commander";
import { getStrategy, STRATEGIES, STRATEGY_NAMES, type StrategyName } from "../../strategies/registry.js";
import { InputError } from "../errors.js";
import { MAX_TEXT_FILE_BYTES, readTextFile } from "../files.js";
import { ComputeMeter } from "../meter.js";
import { limitsSchema, loadFileParams, MAX_BUDGET, samplingSchema } from "../strategy.js";
import { checkProblem, solve } from "../solve.js";
import { addModelOptions, loadModels, positiveInteger, splitServedFlags, type ModelFlags } from "./model-options.js";
import { fileParamFlags, fileParamsFromFlags, flagName, strategyParamFlags } from "./strategy-flags.js";

interface SolveFlags extends ModelFlags {
  /** One of the choices commander checked. */
  strategy: StrategyName;
  problemFile?: string;
  budget: number;
  seed: number;
  temperature?: number;
  topP?: number;
  maxSteps?: number;
  maxStepTokens?: number;
  json?: boolean;
}

/** Seconds between progress lines on stderr; a solve shorter than this prints none. */
export const PROGRESS_INTERVAL_S = 5;

/** Prints the compute spent so far every few seconds, until the returned function is called. */
export function reportProgress(meter: ComputeMeter): () => void {
  const timer = setInterval(() => {
    const c = meter.report();
    process.stderr.write(
      `solving: ${(c.wallMs / 1000).toFixed(0)} s, ${c.generatedTokens} tokens generated, ${c.policyCalls} policy / ${c.verifierCalls} verifier calls, ` +
        `rss ${Math.round(process.memoryUsage.rss() / 2 ** 20)} MiB\n`,
    );
  }, PROGRESS_INTERVAL_S * 1000);
  return () => clearInterval(timer);
}

/** The flags of the strategies' parameters, made from their schemas. */
const PARAM_FLAGS = strategyParamFlags(STRATEGIES);

/** Parameter, limit and sampling names in a message, as the flags that set them. */
const PARAM_NAMES = new RegExp(
  `\\b(${["budget", ...PARAM_FLAGS.map(({ key }) => key), ...Object.keys(limitsSchema.shape), ...Object.keys(samplingSchema.shape)].join("|")})\\b`,
  "g",
);

export function withFlagNames(message: string): string {
  return message.replace(PARAM_NAMES, flagName);
}

function number(flag: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isFinite(parsed)) throw new InputError(`${flag} must be a number, got "${value}"`);
    return parsed;
  };
}

/** The problem: the argument, or the text of --problem-file (standard input for "-"); one of the two. */
async function problemText(argument: string | undefined, file: string | undefined): Promise<string> {
  if ((argument === undefined) === (file === undefined)) throw new InputError("give the problem as an argument or with --problem-file, one of the two");
  if (argument !== undefined) return argument;
  return file === "-" ? readStdin(MAX_TEXT_FILE_BYTES) : readTextFile(file as string, "--problem-file");
}

/** Standard input as text, refused past `maxBytes`. */
async function readStdin(maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of process.stdin) {
    bytes += (chunk as Buffer).length;
    if (bytes > maxBytes) throw new InputError(`--problem-file -: standard input is above the limit of ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Only the parameter flags the user gave, so that the strategy's own defaults apply to the rest (a
 * flag of another strategy's parameter is refused by the strategy's schema), and its files loaded.
 */
function definedParams(flags: SolveFlags): Record<string, unknown> {
  const given = flags as unknown as Record<string, unknown>;
  const params: Record<string, unknown> = {};
  for (const { key, option } of PARAM_FLAGS) if (given[option.attributeName()] !== undefined) params[key] = given[option.attributeName()];
  const strategy = getStrategy(flags.strategy);
  return loadFileParams(strategy, { ...params, ...fileParamsFromFlags(strategy, given) });
}

export function registerSolve(program: Command): void {
  const command = program
    .command("solve")
    .description("Solve one problem with a test-time search strategy and print the chosen solution, its answer and the compute spent")
    .argument("[problem]", "the problem text (or --problem-file)")
    .option("--problem-file <file>", `read the problem from this file (- for standard input; at most ${MAX_TEXT_FILE_BYTES} bytes), e.g. one too long for a command line`)
    .addOption(new Option("--strategy <name>", "search strategy").choices([...STRATEGY_NAMES]).default("best-of-n"))
    .option("--budget <n>", `budget N in generations (at most ${MAX_BUDGET})`, positiveInteger("--budget"), 16)
    .option("--seed <n>", "seed of every random choice", number("--seed"), 0)
    .option("--temperature <t>", "sampling temperature (0 is greedy)", number("--temperature"))
    .option("--top-p <p>", "nucleus sampling mass", number("--top-p"))
    .option("--max-steps <n>", "most steps in a solution", positiveInteger("--max-steps"))
    .option("--max-step-tokens <n>", "most tokens in a step", positiveInteger("--max-step-tokens"))
    .option("--truncate-problem", "cut a problem too long for the policy's prompt limit to fit, instead of refusing it")
    .option("--json", "print the whole result (candidates, step scores, search tree, compute) as JSON")
    .addHelpText("after", '\nExample:\n  deliberate solve --strategy beam --budget 16 "Compute (17 + 5) * 3 - 8."');
  for (const { option } of PARAM_FLAGS) command.addOption(option);
  for (const option of fileParamFlags(STRATEGIES)) command.addOption(option);
  addModelOptions(command).action(async (argument: string | undefined, flags: SolveFlags) => {
    const problem = await problemText(argument, flags.problemFile);
    checkProblem(problem);
    const params = definedParams(flags);
    const models = await loadModels({ ...flags, ...splitServedFlags({ ...flags }).served });
    const meter = new ComputeMeter();
    const stopProgress = reportProgress(meter);
    try {
      const result = await solve(problem, {
        strategy: flags.strategy,
        budget: flags.budget,
        policy: models.policy,
        verifier: models.verifier,
        seed: flags.seed,
        params,
        meter,
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
          `${c.flops === null ? "unknown" : (c.flops / 1e9).toFixed(2)} GFLOP, ${c.policyCalls} policy / ${c.verifierCalls} verifier calls, ${(c.wallMs / 1000).toFixed(1)} s` +
          (c.loops ? `, ${c.loops.perToken.toFixed(2)} loops + ${c.loops.copiesPerToken.toFixed(2)} state copies per generated token` : ""),
      );
      if (c.routing) {
        const shares = Object.entries(c.routing).map(([block, { routed, tokens, share }]) => `block ${block} ${(100 * share).toFixed(1)}% (${routed}/${tokens})`);
        console.log(`routed tokens (Mixture-of-Depths; FLOPs count only these): ${shares.join(", ")}`);
      }
    } finally {
      stopProgress();
      await models.close();
    }
  });
}
