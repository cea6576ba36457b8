/**
 * The strategy seam (see DESIGN.md): what a search strategy receives (`StrategyContext`), what it
 * returns (`StrategyResult`: the answer, every candidate with its step scores, the search tree and
 * the compute spent), and `Search`, the bookkeeping all strategies share: it starts, forks, extends,
 * scores, prunes and releases branches, records the search tree, and releases whatever is still
 * live when a strategy ends or fails. The strategies themselves are in strategies/, one per file.
 */
import { z } from "zod";
import type { Branch, Policy, PolicyPrompt, StepResult, StepVerifier } from "./policy.js";
import { scoreCounted, type ComputeMeter, type ComputeReport } from "./meter.js";
import type { Random } from "./random.js";
import { InputError } from "./errors.js";
import { extractAnswer } from "../datasets/answer/extract.js";
import { aggregateScores, AGGREGATIONS, type Aggregation } from "../verifiers/aggregate.js";
import { SELECTIONS, type Equivalence } from "../verifiers/select.js";
import { solutionSteps } from "../verifiers/steps.js";

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
export const budgetSchema = z.int().min(1).max(MAX_BUDGET, `at most ${MAX_BUDGET} generations (the documented ceiling)`);
export const aggregationSchema = z.enum(AGGREGATIONS).default("last");
export const selectionSchema = z.enum(SELECTIONS).default("weighted");
/** Beam width M: the expansions of each kept beam (beam, look-ahead) or proposals per step (DVTS). */
export const beamWidthSchema = z.int().min(1).default(4);

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

export interface Strategy<P = unknown, N extends string = string> {
  /** The name used on the CLI, in configs and in results. */
  readonly name: N;
  readonly description: string;
  /** Validates the parameters (the budget among them) and fills in defaults; unknown keys are errors (`strategyParams`). */
  readonly params: z.ZodType<P>;
  /**
   * Why a run with these parameters needs a step verifier (for the error when there is none), or
   * null when it runs without one: checked before any work, by `solve` and by the bench's config.
   */
  needsVerifier(params: P): string | null;
  run(problem: string, context: StrategyContext, params: P): Promise<StrategyResult>;
}

/** Fails with an InputError when the context has no step verifier. */
export function requireVerifier(context: StrategyContext, why: string): StepVerifier {
  if (context.verifier === null) throw new InputError(`${why} needs a step verifier (a PRM), and none was given`);
  return context.verifier;
}

/** The `count` highest-scored items, best first; ties keep the items' order. */
export function highestScored<T extends { score: number | null }>(items: readonly T[], count: number): T[] {
  return [...items].sort((a, b) => (b.score ?? -Infinity) - (a.score ?? -Infinity)).slice(0, count);
}

export class SearchTree {
  readonly nodes: SearchNode[] = [];

  node(id: number): SearchNode {
    const node = this.nodes[id];
    if (node === undefined) throw new Error(`no search node ${id}`);
    return node;
  }

  /** A prompt node; `parentId` links a revision to the attempt it revises. */
  addPrompt(parentId: number | null): SearchNode {
    return this.add(parentId, "", 0);
  }

  addStep(parentId: number, step: string, tokens: number): SearchNode {
    return this.add(parentId, step, this.node(parentId).depth + 1, tokens);
  }

  private add(parentId: number | null, step: string, depth: number, tokens = 0): SearchNode {
    const node: SearchNode = { id: this.nodes.length, parentId, step, depth, score: null, status: "kept", finished: false, tokens, children: [] };
    this.nodes.push(node);
    if (parentId !== null) this.node(parentId).children.push(node.id);
    return node;
  }
}

/** What `Search.score` scores: a live path or a finished candidate. */
export interface Scorable {
  readonly steps: readonly string[];
  stepScores: number[];
  score: number | null;
  nodeId: number;
}

/** A partial solution being searched: a live branch, its last node in the tree and its scores. */
export class SearchPath implements Scorable {
  stepScores: number[] = [];
  score: number | null = null;

  constructor(
    readonly branch: Branch,
    public nodeId: number,
  ) {}

  /** The branch's non-empty steps. */
  get steps(): string[] {
    return solutionSteps(this.branch.steps);
  }

  get finished(): boolean {
    return this.branch.finished;
  }
}

/**
 * One strategy run on one problem. Every policy call decodes all the paths it is given together
 * (one `extend`), every scoring is one verifier call, the abort signal is checked before each, and
 * every branch the search holds is tracked so that `releaseAll` frees what is left.
 */
export class Search {
  readonly tree = new SearchTree();
  private readonly live = new Set<SearchPath>();
  private rounds = 0;

  constructor(
    readonly problem: string,
    readonly context: StrategyContext,
    readonly aggregation: Aggregation,
  ) {}

  /** Prefills a prompt (by default the problem alone) and returns the path at the start of the solution. */
  async start(prompt: PolicyPrompt = { problem: this.problem }, parentNodeId: number | null = null): Promise<SearchPath> {
    this.checkAborted();
    const { policy, meter } = this.context;
    const branch = await policy.start(prompt);
    meter.countPrefill(branch.promptTokens, policy.parameters);
    meter.policyCalls += 1;
    meter.retries += branch.startRetries ?? 0;
    return this.track(new SearchPath(branch, this.tree.addPrompt(parentNodeId).id));
  }

  /**
   * Prefills several prompts concurrently (a runtime may batch them). Every prompt is settled
   * before this returns or throws, so no branch escapes `releaseAll`.
   */
  async startAll(starts: readonly { prompt: PolicyPrompt; parentNodeId: number | null }[]): Promise<SearchPath[]> {
    const settled = await Promise.allSettled(starts.map(({ prompt, parentNodeId }) => this.start(prompt, parentNodeId)));
    const failed = settled.find((outcome) => outcome.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    return settled.map((outcome) => (outcome as PromiseFulfilledResult<SearchPath>).value);
  }

  /** A copy of a path on a forked branch, at the same node. */
  fork(path: SearchPath): SearchPath {
    const copy = this.track(new SearchPath(path.branch.fork(), path.nodeId));
    copy.stepScores = [...path.stepScores];
    copy.score = path.score;
    return copy;
  }

  /** `count` paths that continue `path`: the path itself and count - 1 forks of it. */
  expand(path: SearchPath, count: number): SearchPath[] {
    return [path, ...Array.from({ length: count - 1 }, () => this.fork(path))];
  }

  /** Decodes one more step on every path, in one policy call, at the sampling temperature; records the steps in the tree. */
  async extend(paths: readonly SearchPath[]): Promise<void> {
    await this.decode(paths, this.context.sampling.temperature, true);
  }

  /** Decodes one more step on every path greedily (temperature 0), for a look-ahead rollout; the tree does not record it. */
  async extendRollouts(rollouts: readonly SearchPath[]): Promise<void> {
    await this.decode(rollouts, 0, false);
  }

  /** Whether a path can go no further: the model finished it, or it has `maxSteps` steps. */
  isDone(path: SearchPath): boolean {
    return path.finished || path.branch.steps.length >= this.context.limits.maxSteps;
  }

  /**
   * Decodes all paths together, one step per round, until each is done; releases each branch as it
   * finishes and returns the candidates in the order of `paths`.
   */
  async complete(paths: readonly SearchPath[]): Promise<Candidate[]> {
    const done = new Map<SearchPath, Candidate>();
    let open = [...paths];
    while (open.length > 0) {
      await this.extend(open);
      for (const path of open) if (this.isDone(path)) done.set(path, this.finish(path));
      open = open.filter((path) => !done.has(path));
    }
    return paths.map((path) => done.get(path) as Candidate);
  }

  /**
   * Scores the steps of every item in one verifier call and sets its step scores, its aggregated
   * score and its tree node's score. An item with no steps scores 0 without asking the verifier.
   */
  async score(items: readonly Scorable[]): Promise<void> {
    this.checkAborted();
    const verifier = requireVerifier(this.context, "scoring");
    const withSteps = items.filter((item) => item.steps.length > 0);
    const requests = withSteps.map((item) => ({ problem: this.problem, steps: item.steps }));
    const scores = await scoreCounted(verifier, requests, this.context.meter, this.context.signal);
    for (const [index, item] of withSteps.entries()) item.stepScores = scores[index] as number[];
    for (const item of items) {
      if (item.steps.length === 0) item.stepScores = [];
      item.score = aggregateScores(item.stepScores, this.aggregation);
      if (item.steps.length > 0) this.tree.node(item.nodeId).score = item.score;
    }
    this.reportProgress();
  }

  /** Drops a path the search no longer follows: marks its node pruned and releases its branch. */
  prune(path: SearchPath): void {
    this.tree.node(path.nodeId).status = "pruned";
    this.release(path);
  }

  /** Releases a look-ahead rollout; the tree is left as it is. */
  discard(rollout: SearchPath): void {
    this.release(rollout);
  }

  /** Turns a path into a candidate and releases its branch. */
  finish(path: SearchPath): Candidate {
    const steps = path.steps;
    const text = steps.join(this.context.policy.stepDelimiter);
    const candidate: Candidate = {
      steps,
      text,
      answer: extractAnswer(text),
      stepScores: path.stepScores,
      score: path.score,
      finished: path.finished,
      tokens: path.branch.generatedTokens,
      nodeId: path.nodeId,
    };
    this.release(path);
    return candidate;
  }

  /** Releases every branch still held; strategies call it in `finally`. */
  releaseAll(): void {
    for (const path of this.live) this.release(path);
  }

  result(candidates: Candidate[], chosen: Candidate | null): StrategyResult {
    return { answer: chosen?.answer ?? null, chosen, candidates, tree: this.tree.nodes, compute: this.context.meter.report() };
  }

  /** Throws the signal's reason (an AbortError) once the run was aborted. */
  checkAborted(): void {
    this.context.signal?.throwIfAborted();
  }

  private async decode(paths: readonly SearchPath[], temperature: number, record: boolean): Promise<void> {
    this.checkAborted();
    if (paths.length === 0) return;
    const { policy, sampling, limits, random, signal } = this.context;
    const results = await policy.extend(
      paths.map((path) => path.branch),
      {
        temperature,
        topP: sampling.topP,
        topK: sampling.topK,
        // A seed per branch, so that forks of one state diverge and the same run seed repeats the run.
        seeds: paths.map(() => random.int(0, 0x7fffffff)),
        maxStepTokens: limits.maxStepTokens,
        signal,
      },
    );
    if (results.length !== paths.length) throw new Error(`policy ${policy.name} returned ${results.length} steps for ${paths.length} branches`);
    for (const result of results) {
      this.context.meter.countGenerated(result.tokens, policy.parameters);
      this.context.meter.retries += result.retries ?? 0;
    }
    // Steps decoded together share their model calls: the call count is the longest step's.
    this.context.meter.policyCalls += Math.max(...results.map((result) => result.calls));
    this.rounds++;
    this.reportProgress();
    if (!record) return;
    for (const [index, path] of paths.entries()) {
      const result = results[index] as StepResult;
      const node = this.tree.addStep(path.nodeId, result.text, result.tokens);
      node.finished = path.finished;
      path.nodeId = node.id;
    }
  }

  private reportProgress(): void {
    this.context.onProgress?.({ rounds: this.rounds, liveBranches: this.live.size, compute: this.context.meter.report() });
  }

  private track(path: SearchPath): SearchPath {
    this.live.add(path);
    return path;
  }

  private release(path: SearchPath): void {
    if (!this.live.delete(path)) throw new Error("released a path that is not live");
    path.branch.release();
  }
}
