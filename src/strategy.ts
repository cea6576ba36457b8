/**
 * The strategy contract (see DESIGN.md): what a search strategy declares (`Strategy`: its name,
 * parameters, and what it needs), what it receives (`StrategyContext`) and what it returns
 * (`StrategyResult`: the answer, every candidate with its step scores, the search tree and the
 * compute spent). The bookkeeping strategies share is in src/search.ts; the strategies themselves
 * are in strategies/, one per file.
 */
import { z } from "zod";
import type { Policy, StepVerifier } from "./policy.js";
import type { ComputeMeter, ComputeReport } from "./meter.js";
import type { Random } from "./random.js";
import { InputError } from "./errors.js";
import { AGGREGATIONS } from "../verifiers/aggregate.js";
import { SELECTIONS, type Equivalence } from "../verifiers/select.js";

export const limitsSchema = z.object({
  /** Most steps in one solution; a search runs at most this many rounds. */
  maxSteps: z.int().min(1).default(32),
  /** Most tokens in one step. */
  maxStepTokens: z.int().min(1).default(256),
});
export type Limits = z.output<typeof limitsSchema>;

export const samplingSchema = z.object({
  temperature: z.number().min(0).default(0.8),
  topP: z.number().gt(0).max(1).default(1),
  topK: z.int().min(1).optional(),
});
export type Sampling = z.output<typeof samplingSchema>;

/**
 * The largest budget a strategy takes, in generations: far above the paper's largest (256), and
 * below what would hold more decoding state than a machine has (each generation is a live branch).
 */
export const MAX_BUDGET = 1024;

/** Parameters every strategy shares: the budget N in generations (the paper's unit), and the verifier rules. */
export const budgetSchema = z
  .int()
  .min(1)
  .max(MAX_BUDGET, `at most ${MAX_BUDGET} generations (the documented ceiling)`)
  .describe(`budget N in generations (at most ${MAX_BUDGET})`);
export const aggregationSchema = z.enum(AGGREGATIONS).default("last").describe("step scores to a solution score");
export const selectionSchema = z.enum(SELECTIONS).default("weighted").describe("final selection: highest score, majority vote, or PRM-weighted vote");
/** Beam width M: the expansions of each kept beam (beam, look-ahead) or proposals per step (DVTS). */
export const beamWidthSchema = z.int().min(1).default(4).describe("expansions per kept beam, or proposals per step (M)");

/**
 * A strategy's parameter object: strict, so that a misspelt key (`selcet`) is an error naming it and
 * the parameters there are, not silently ignored.
 */
export function strategyParams<S extends z.ZodRawShape>(strategy: string, shape: S) {
  const names = Object.keys(shape).join(", ");
  return z.strictObject(shape, {
    error: (issue) => (issue.code === "unrecognized_keys" ? `${strategy} has no parameter ${issue.keys.join(", ")}; its parameters: ${names}` : undefined),
  });
}

/** A refinement for strategies that split the budget by the beam width; `why` says how they use it. */
export function budgetMultipleOfWidth(why: string) {
  return ({ budget, beamWidth }: { budget: number; beamWidth: number }, issues: z.RefinementCtx): void => {
    if (budget % beamWidth !== 0) {
      issues.addIssue({ code: "custom", path: ["budget"], message: `budget ${budget} is not a multiple of beamWidth ${beamWidth} (${why})` });
    }
  };
}

export interface StrategyContext {
  policy: Policy;
  /** The step verifier (PRM); strategies that need one fail with an InputError without it. */
  verifier: StepVerifier | null;
  /** The source of every per-branch seed. */
  random: Random;
  meter: ComputeMeter;
  signal?: AbortSignal;
  limits: Limits;
  sampling: Sampling;
  /** Answer equivalence (backed by a Grader), for voting. */
  equivalent: Equivalence;
  /**
   * The problem's difficulty measured with the gold answer (the share of samples graded right),
   * when known: for analysis, compute-optimal with the oracle difficulty bins by it.
   */
  knownDifficulty?: { passRate: number };
  /** The registered strategy called `name`, for a strategy that runs others (compute-optimal runs a table's choice). */
  strategy(name: string): Strategy;
  /** Told after every decoding round and every scoring of a search (for live progress, e.g. a streamed response). */
  onProgress?: (progress: SearchProgress) => void;
}

/** Where a search stands: what `StrategyContext.onProgress` is told. */
export interface SearchProgress {
  /** Decoding rounds of this search so far (one batched policy call each). */
  rounds: number;
  /** Branches the search holds now. */
  liveBranches: number;
  /** The compute spent so far on the run's meter. */
  compute: ComputeReport;
}

/** One solution the strategy produced, complete or not. */
export interface Candidate {
  /** Its non-empty steps. */
  steps: string[];
  /** The steps joined with the policy's step delimiter. */
  text: string;
  /** The extracted answer (`extractAnswer`), or null. */
  answer: string | null;
  /** The verifier's score of the prefix ending at each step; empty when it was not scored. */
  stepScores: number[];
  /** The aggregated score; null when not scored. */
  score: number | null;
  /** Whether its branch finished (the model ended it, or it ran out of room); false when the search stopped it. */
  finished: boolean;
  /** Tokens generated on its branch, over all its steps. */
  tokens: number;
  /** Its last node in the search tree. */
  nodeId: number;
}

/**
 * A node of the search tree: one decoded step. A node at depth 0 is a prompt (the start of an
 * attempt); for a revision, its parent is the last node of the attempt it revises.
 */
export interface SearchNode {
  id: number;
  parentId: number | null;
  /** The step's text; empty for a prompt node (and for an empty step the model wrote). */
  step: string;
  depth: number;
  /** The score the search used for this node (aggregated prefix score, or the look-ahead value); null if unscored. */
  score: number | null;
  /** "pruned" when the search dropped this node's branch. */
  status: "kept" | "pruned";
  /** Whether the model ended the solution at this step. */
  finished: boolean;
  /** Tokens the policy generated for this step; 0 for a prompt node. */
  tokens: number;
  children: number[];
}

export interface StrategyResult {
  answer: string | null;
  chosen: Candidate | null;
  candidates: Candidate[];
  /** Every node, indexed by id. */
  tree: SearchNode[];
  compute: ComputeReport;
  /** The difficulty the strategy went by, predicted or known (compute-optimal): its score, bin and the configuration run. */
  difficulty?: { score: number; bin: number; configuration: string | null };
}

/** A parameter given as a file: a path in flags and config files, loaded once per configuration. */
export interface FileParam {
  /** The command-line flag that gives the path (`--allocation`). */
  readonly flag: string;
  readonly description: string;
  /** Reads and validates the file, or the default one when no path is given; an InputError names the file. */
  load(path: string | undefined): unknown;
}

/**
 * A search strategy: one file in strategies/ and a line in the registry. It declares what it needs
 * here (a verifier, files, a known difficulty), so that generic code never names a strategy.
 */
export interface Strategy<P = unknown, N extends string = string> {
  /** The name used on the CLI, in configs and in results. */
  readonly name: N;
  readonly description: string;
  /**
   * Validates the parameters (the budget among them) and fills in defaults; unknown keys are errors
   * (`strategyParams`). Each field's `.describe()` is the help of its command-line flag.
   */
  readonly params: z.ZodType<P> & { readonly shape: Readonly<Record<string, z.ZodType>> };
  /**
   * Why a run with these parameters needs a step verifier (for the error when there is none), or
   * null when it runs without one: checked before any work, by `solve` and by the bench's config.
   */
  needsVerifier(params: P): string | null;
  /**
   * Why a run with these parameters needs each problem's known difficulty (`StrategyContext.knownDifficulty`),
   * or null: the bench then requires a difficulty file that covers its problems.
   */
  needsKnownDifficulty?(params: P): string | null;
  /** Parameters given as files, by parameter name. */
  readonly fileParams?: Readonly<Record<string, FileParam>>;
  /** True for a strategy that runs the configurations an allocation table chose: a table cannot choose it in turn. */
  readonly allocates?: boolean;
  run(problem: string, context: StrategyContext, params: P): Promise<StrategyResult>;
}

/** A file parameter that could not be loaded; `param` names it (an InputError, so it prints as one line). */
export class FileParamError extends InputError {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The parameters with every file parameter loaded: a path, or nothing for the default, becomes the
 * file's content; a value already loaded (an object) is kept. Done once per configuration.
 */
export function loadFileParams(strategy: Strategy, params: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const loaded = { ...params };
  for (const [key, file] of Object.entries(strategy.fileParams ?? {})) {
    const given = loaded[key];
    if (given !== undefined && typeof given !== "string") continue;
    try {
      loaded[key] = file.load(given);
    } catch (error) {
      throw new FileParamError(key, (error as Error).message);
    }
  }
  return loaded;
}

/** Fails with an InputError when the context has no step verifier. */
export function requireVerifier(context: StrategyContext, why: string): StepVerifier {
  if (context.verifier === null) throw new InputError(`${why} needs a step verifier (a PRM), and none was given`);
  return context.verifier;
}
