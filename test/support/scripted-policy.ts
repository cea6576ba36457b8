/**
 * Test doubles for the model seams: a `ScriptedPolicy` whose steps come from a script and a
 * `ScriptedVerifier` whose scores are known, so that strategy tests can pin down which branches
 * survive, what is spent and which answer wins. The policy checks how it is used (no extending a
 * released or finished branch, no releasing twice) and counts live branches.
 */
import type { Branch, ExtendOptions, Policy, PolicyPrompt, ScoreRequest, StepResult, StepScores, StepVerifier, StopReason } from "../../src/policy.js";
import { Random } from "../../src/random.js";
import { ComputeMeter } from "../../src/meter.js";
import type { StrategyContext } from "../../src/strategy.js";
import { getStrategy } from "../../strategies/registry.js";

/** What a script sees when a branch is extended. */
export interface ScriptState {
  prompt: PolicyPrompt;
  steps: readonly string[];
  /** This branch's index among the branches of the same extend call with the same prompt and steps. */
  sibling: number;
  seed: number;
  temperature: number;
}

export interface ScriptedStep {
  text: string;
  /** The model ends the solution after this step. */
  end?: boolean;
  /** Tokens the step costs. Default: its characters plus one (the delimiter or end-of-text token). */
  tokens?: number;
}

export type StepScript = (state: ScriptState) => ScriptedStep;

/**
 * A script from whole solutions (steps separated by a blank line; the last step ends the
 * solution). After a given prefix, the options are the distinct continuations in the order of the
 * solutions, and a branch writes option `sibling` (mod their number): the k-th of several forks of
 * one state writes the k-th continuation. A prefix with no continuation is an error.
 */
export function solutionScript(solutions: readonly string[]): StepScript {
  const options = new Map<string, ScriptedStep[]>();
  for (const solution of solutions) {
    const steps = solution.split("\n\n");
    steps.forEach((text, index) => {
      const key = JSON.stringify(steps.slice(0, index));
      const end = index === steps.length - 1;
      const known = options.get(key) ?? [];
      if (!known.some((option) => option.text === text && option.end === end)) known.push({ text, end });
      options.set(key, known);
    });
  }
  return ({ steps, sibling }) => {
    const next = options.get(JSON.stringify(steps));
    if (next === undefined) throw new Error(`the script has no step after ${JSON.stringify(steps)}`);
    return next[sibling % next.length] as ScriptedStep;
  };
}

class ScriptedBranch implements Branch {
  steps: string[] = [];
  finished = false;
  generatedTokens = 0;
  released = false;

  constructor(
    readonly policy: ScriptedPolicy,
    readonly prompt: PolicyPrompt,
    readonly promptTokens: number,
  ) {
    policy.opened();
  }

  fork(): Branch {
    if (this.released) throw new Error("fork of a released branch");
    const copy = new ScriptedBranch(this.policy, this.prompt, this.promptTokens);
    copy.steps = [...this.steps];
    copy.finished = this.finished;
    copy.generatedTokens = this.generatedTokens;
    this.policy.forks += 1;
    return copy;
  }

  release(): void {
    if (this.released) throw new Error("branch released twice");
    this.released = true;
    this.policy.closed();
  }
}

/** A Policy test double whose steps come from a script. */
export class ScriptedPolicy implements Policy {
  readonly name = "scripted-policy";
  readonly stepDelimiter = "\n\n";
  /** Branches started or forked and not yet released. */
  live = 0;
  peakLive = 0;
  forks = 0;
  /** Every prompt prefilled, in order. */
  readonly prompts: PolicyPrompt[] = [];
  /** Per extend call: the batch size, the seeds and the temperature. */
  readonly calls: { size: number; seeds: number[]; temperature: number }[] = [];
  /** Every token generated, over all branches. */
  generatedTokens = 0;

  constructor(
    private readonly script: StepScript,
    readonly parameters: number | null = 1_000,
  ) {}

  opened(): void {
    this.live += 1;
    this.peakLive = Math.max(this.peakLive, this.live);
  }

  closed(): void {
    this.live -= 1;
  }

  start(prompt: PolicyPrompt): Promise<Branch> {
    this.prompts.push(prompt);
    return Promise.resolve(new ScriptedBranch(this, prompt, prompt.problem.length + (prompt.previousAttempts ?? []).join("").length));
  }

  extend(branches: readonly Branch[], options: ExtendOptions): Promise<StepResult[]> {
    options.signal?.throwIfAborted();
    if (options.seeds.length !== branches.length) throw new Error(`${options.seeds.length} seeds for ${branches.length} branches`);
    const batch = branches.map((branch) => {
      if (!(branch instanceof ScriptedBranch) || branch.policy !== this) throw new Error("not a branch of this policy");
      if (branch.released) throw new Error("extend of a released branch");
      if (branch.finished) throw new Error("extend of a finished branch");
      return branch;
    });
    if (new Set(batch).size !== batch.length) throw new Error("a branch appears twice in one batch");
    this.calls.push({ size: batch.length, seeds: [...options.seeds], temperature: options.temperature });

    const siblings = new Map<string, number>();
    const results = batch.map((branch, index): StepResult => {
      const key = JSON.stringify([branch.prompt, branch.steps]);
      const sibling = siblings.get(key) ?? 0;
      siblings.set(key, sibling + 1);
      const step = this.script({ prompt: branch.prompt, steps: branch.steps, sibling, seed: options.seeds[index] as number, temperature: options.temperature });
      let text = step.text;
      let tokens = step.tokens ?? text.length + 1;
      let stopReason: StopReason = step.end === true ? "eos" : "delimiter";
      if (tokens > options.maxStepTokens) {
        tokens = options.maxStepTokens;
        text = text.slice(0, tokens);
        stopReason = "max-tokens";
      }
      branch.steps.push(text);
      branch.generatedTokens += tokens;
      branch.finished = stopReason === "eos";
      this.generatedTokens += tokens;
      return { text, tokens, logprobs: new Array<number>(tokens).fill(-0.5), stopReason, calls: 1 };
    });
    return Promise.resolve(results);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The score of the prefix that ends at the last of `steps`. */
export type ScoreScript = (steps: readonly string[], problem: string) => number;

/** A StepVerifier test double with known scores; it records every request. */
export class ScriptedVerifier implements StepVerifier {
  readonly name = "scripted-verifier";
  /** Every scoreSteps call's requests (problem and steps). */
  readonly calls: { problem: string; steps: string[] }[][] = [];

  constructor(
    private readonly scoreOf: ScoreScript,
    readonly parameters: number | null = 100,
  ) {}

  /** Scores a prefix by its last step's text; steps not listed score `otherwise`. */
  static byStep(scores: Record<string, number>, otherwise = 0.5): ScriptedVerifier {
    return new ScriptedVerifier((steps) => scores[steps[steps.length - 1] ?? ""] ?? otherwise);
  }

  scoreSteps(requests: readonly ScoreRequest[], signal?: AbortSignal): Promise<StepScores[]> {
    signal?.throwIfAborted();
    this.calls.push(requests.map(({ problem, steps }) => ({ problem, steps: [...steps] })));
    return Promise.resolve(
      requests.map(({ problem, steps }) => ({
        scores: steps.map((_, index) => this.scoreOf(steps.slice(0, index + 1), problem)),
        tokens: problem.length + steps.join("\n\n").length,
      })),
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Answer equivalence by string, for tests that do not exercise the grader. */
export const sameString = (a: string, b: string): Promise<boolean> => Promise.resolve(a === b);

/** A strategy context on test doubles: seed 1, at most 10 steps of 100 tokens, temperature 0.8. */
export function testContext(policy: Policy, verifier: StepVerifier | null, overrides: Partial<StrategyContext> = {}): StrategyContext {
  return {
    policy,
    verifier,
    random: new Random(1),
    meter: new ComputeMeter(),
    limits: { maxSteps: 10, maxStepTokens: 100 },
    sampling: { temperature: 0.8, topP: 1 },
    equivalent: sameString,
    strategy: getStrategy,
    ...overrides,
  };
}
