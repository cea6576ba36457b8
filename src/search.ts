/**
 * The search machinery every strategy uses: `Search` starts, forks, extends, scores, prunes and
 * releases branches, counts what the seams return on the meter, records the search tree, and
 * releases whatever is still live when a strategy ends or fails.
 */
import type { Branch, PolicyPrompt, StepResult } from "./policy.js";
import { scoreCounted } from "./meter.js";
import { requireVerifier, type Candidate, type SearchNode, type StrategyContext, type StrategyResult } from "./strategy.js";
import { extractAnswer } from "../datasets/answer/extract.js";
import { aggregateScores, type Aggregation } from "../verifiers/aggregate.js";
import { solutionSteps } from "../verifiers/steps.js";

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
    meter.countPrefill(branch.promptTokens, policy.parameters, { ...(branch.startFlops !== undefined ? { flops: branch.startFlops } : {}), ...(branch.startRouting ? { routing: branch.startRouting } : {}) });
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

  /** Decodes one more step on every path, in one policy call, at the sampling temperature (or `temperature`); records the steps in the tree. */
  async extend(paths: readonly SearchPath[], temperature: number = this.context.sampling.temperature): Promise<void> {
    await this.decode(paths, temperature, true);
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
   * finishes and returns the candidates in the order of `paths`. At the sampling temperature unless
   * `temperature` is given.
   */
  async complete(paths: readonly SearchPath[], temperature?: number): Promise<Candidate[]> {
    const done = new Map<SearchPath, Candidate>();
    let open = [...paths];
    while (open.length > 0) {
      await this.extend(open, temperature);
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

  /** Releases every branch still held (`withSearch` does, when a strategy's search ends or fails). */
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
      if (result.injectedTokens) this.context.meter.countPrefill(result.injectedTokens, policy.parameters);
      this.context.meter.countGenerated(result.tokens, policy.parameters, { ...(result.flops !== undefined ? { flops: result.flops } : {}), ...(result.routing ? { routing: result.routing } : {}), ...(result.loops !== undefined ? { loops: result.loops, copies: result.copies ?? 0 } : {}) });
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

/**
 * Runs `body` on a new Search for one problem and releases every branch the search still holds when
 * the body returns or throws: what each strategy would otherwise write as try/finally.
 */
export async function withSearch<T>(problem: string, context: StrategyContext, aggregation: Aggregation, body: (search: Search) => Promise<T>): Promise<T> {
  const search = new Search(problem, context, aggregation);
  try {
    return await body(search);
  } finally {
    search.releaseAll();
  }
}
