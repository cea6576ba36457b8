/**
 * A Policy backed by an ONNX model in a worker thread. Branch handles live here; their decoding
 * state lives in the worker. Concurrent `extend` calls (several problems searched at once) are
 * coalesced, so the worker decodes them as one batch.
 *
 * Beyond the Policy seam, it offers what a server needs: branches started from raw token ids,
 * tokens appended to a branch (a prompt's suffix after a cached prefix), decoding with any stop
 * strings and top log-probabilities (`decode`), tokenizing, and counts of the batches it decoded.
 */
import type { Branch, ExtendOptions, Policy, PolicyPrompt, RoutingCount, StepResult } from "../policy.js";
import type { ModelSpend } from "../meter.js";
import type { ExtendRequest, ExtendResult } from "./decoder-engine.js";
export type { ExtendResult, TokenLogprob } from "./decoder-engine.js";
import type { ModelInfo, RecursionInfo } from "./model-worker.js";
import type { WorkerClient } from "./worker-client.js";
import { Coalescer } from "./coalescer.js";

export interface DecodeOptions extends ExtendOptions {
  /** Strings that end the step. Default: the step delimiter; [] decodes to end of text or maxStepTokens. */
  stop?: string[];
  /** Also return this many most likely tokens per generated token. */
  topLogprobs?: number;
}

/** Batches the worker decoded: how many, how many branch-steps in all, and the largest. */
export interface DecodeBatchStats {
  batches: number;
  branchSteps: number;
  largestBatch: number;
}

class OnnxBranch implements Branch {
  steps: string[] = [];
  finished = false;
  generatedTokens = 0;
  promptTokens = 0;
  startFlops?: number;
  startRouting?: RoutingCount;
  released = false;

  constructor(
    readonly id: number,
    private readonly owner: OnnxPolicy,
  ) {}

  fork(): Branch {
    if (this.released) throw new Error("cannot fork a released branch");
    const child = this.owner.forkBranch(this);
    child.steps = [...this.steps];
    child.finished = this.finished;
    child.generatedTokens = this.generatedTokens;
    child.promptTokens = this.promptTokens;
    if (this.startFlops !== undefined) child.startFlops = this.startFlops;
    if (this.startRouting !== undefined) child.startRouting = this.startRouting;
    return child;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.owner.releaseBranch(this);
  }
}

export class OnnxPolicy implements Policy {
  readonly name: string;
  readonly parameters: number;
  readonly stepDelimiter: string;
  readonly device: string;
  readonly fingerprint: string;
  readonly maxSequenceTokens: number;
  /** The largest token id of the model's tokenizer. */
  readonly maxTokenId: number;
  /** Recursive models: the loops, and the exit threshold and batching this policy decodes with. */
  readonly recursion?: RecursionInfo;
  private readonly stateBytesPerBranch: { fixed: number; perToken: number };
  /** Mixture-of-Depths models: what a token and a token through each routed block cost. */
  readonly routing: ModelInfo["routing"];
  private nextBranch = 0;
  private readonly batchStats: DecodeBatchStats = { batches: 0, branchSteps: 0, largestBatch: 0 };
  private readonly extends = new Coalescer<ExtendRequest, ExtendResult>((requests) => {
    this.batchStats.batches++;
    this.batchStats.branchSteps += requests.length;
    this.batchStats.largestBatch = Math.max(this.batchStats.largestBatch, requests.length);
    return this.client.call("extend", { requests });
  });

  constructor(
    private readonly client: WorkerClient,
    info: ModelInfo,
  ) {
    this.name = info.name;
    this.parameters = info.parameters;
    this.stepDelimiter = info.stepDelimiter;
    this.device = info.device;
    this.fingerprint = info.fingerprint;
    this.maxSequenceTokens = info.maxSequenceTokens;
    this.maxTokenId = info.maxTokenId ?? Number.MAX_SAFE_INTEGER;
    this.stateBytesPerBranch = info.stateBytes;
    this.routing = info.routing;
    if (info.recursion) this.recursion = info.recursion;
  }

  /**
   * What the model spent, when it counts its own FLOPs, for `tokens` tokens fed (a prefill's prompt,
   * or a result's `runs`): a routed model's FLOPs through the blocks its tokens went through, and the
   * routing counts; a recursive model's FLOPs for the loops it ran and the state copies it made
   * (`loops`, `copies`: a step's, reported for loops and copies per token; a prefill runs every loop
   * and copies nothing), {} for other models (2 x parameters x tokens).
   */
  spent(tokens: number, routedTokens: readonly number[] | undefined, loops?: number, copies = 0): ModelSpend {
    const recursion = this.recursion;
    if (recursion) {
      const run = loops ?? tokens * recursion.loops;
      return {
        flops: run * recursion.flopsPerLoopToken + copies * recursion.flopsPerCopyToken,
        ...(loops !== undefined ? { loops, copies } : {}),
      };
    }
    const routing = this.routing;
    if (!routing || !routedTokens) return {};
    let flops = tokens * routing.flopsPerToken;
    const counts: RoutingCount = {};
    routing.routedBlocks.forEach((block, k) => {
      const routed = routedTokens[k] ?? 0;
      flops += routed * (routing.flopsPerRoutedToken[k] as number);
      counts[String(block)] = { routed, tokens };
    });
    return { flops, routing: counts };
  }

  /** Bytes of decoding state a branch of `length` tokens holds. */
  stateBytes(length: number): number {
    return this.stateBytesPerBranch.fixed + this.stateBytesPerBranch.perToken * length;
  }

  /** The batches decoded so far (each is one `extend` call to the worker, however many callers it served). */
  decodeBatches(): DecodeBatchStats {
    return { ...this.batchStats };
  }

  /** The token ids of a prompt in the model's own format (embedded prompt format or chat template). */
  renderPrompt(prompt: PolicyPrompt): Promise<number[]> {
    return this.client.call("render", { prompt });
  }

  /** Token ids of a text, with the tokenizer's special tokens (BOS, ...) when `addSpecialTokens`. */
  tokenize(text: string, addSpecialTokens: boolean): Promise<number[]> {
    return this.client.call("tokenize", { text, addSpecialTokens });
  }

  /** The text of token ids, special tokens written out (as vLLM's /detokenize decodes). */
  detokenize(tokens: number[]): Promise<string> {
    return this.client.call("detokenize", { tokens });
  }

  /** A branch after the given token ids, prefilled in one run (no prompt format applied). */
  async startFromTokens(tokens: readonly number[]): Promise<Branch> {
    if (tokens.length === 0) throw new Error("startFromTokens: no tokens");
    const branch = new OnnxBranch(this.nextBranch++, this);
    await this.extends.exclusive(() => this.client.call("startTokens", { branch: branch.id, tokens }));
    branch.promptTokens = tokens.length;
    const { flops } = this.spent(tokens.length, undefined);
    if (flops !== undefined) branch.startFlops = flops;
    return branch;
  }

  /** Feeds more tokens to a branch, as if they had been part of its prompt. */
  async appendTokens(branch: Branch, tokens: readonly number[]): Promise<void> {
    const own = this.own(branch);
    if (tokens.length === 0) return;
    await this.extends.exclusive(() => this.client.call("append", { branch: own.id, tokens }));
    own.promptTokens += tokens.length;
  }

  private own(branch: Branch): OnnxBranch {
    if (!(branch instanceof OnnxBranch) || branch.released) throw new Error("a branch that is not a live branch of this policy");
    return branch;
  }

  async start(prompt: PolicyPrompt): Promise<Branch> {
    const branch = new OnnxBranch(this.nextBranch++, this);
    const { promptTokens, routedTokens } = await this.extends.exclusive(() => this.client.call("start", { branch: branch.id, prompt }));
    branch.promptTokens = promptTokens;
    const { flops, routing } = this.spent(promptTokens, routedTokens);
    if (flops !== undefined) branch.startFlops = flops;
    if (routing !== undefined) branch.startRouting = routing;
    return branch;
  }

  forkBranch(parent: OnnxBranch): OnnxBranch {
    const child = new OnnxBranch(this.nextBranch++, this);
    this.client.send("fork", { parent: parent.id, child: child.id });
    return child;
  }

  releaseBranch(branch: OnnxBranch): void {
    this.client.send("release", { branch: branch.id });
  }

  async extend(branches: readonly Branch[], options: ExtendOptions): Promise<StepResult[]> {
    const results = await this.decode(branches, options);
    // A routed model counts the FLOPs of the tokens it fed (runs), eos excluded, through the blocks they went through;
    // a recursive model counts the loops run for the logits its tokens were sampled from, and its state copies.
    return results.map(({ text, tokens, logprobs, stopReason, injectedTokens, runs, routedTokens, loops, copies }) => ({
      text,
      tokens,
      logprobs,
      stopReason,
      ...(injectedTokens > 0 ? { injectedTokens } : {}),
      calls: runs,
      ...this.spent(runs, routedTokens, loops, copies),
    }));
  }

  /** `extend` with the worker's full results: token ids, the stop string met, the uncut text, top log-probabilities. */
  async decode(branches: readonly Branch[], options: DecodeOptions): Promise<ExtendResult[]> {
    if (options.seeds.length !== branches.length) throw new Error(`extend: ${branches.length} branches but ${options.seeds.length} seeds`);
    options.signal?.throwIfAborted();
    const own = branches.map((branch) => this.own(branch));
    const results = await this.extends.submit(
      own.map((branch, i) => ({
        branch: branch.id,
        seed: options.seeds[i] as number,
        temperature: options.temperature,
        topP: options.topP,
        topK: options.topK,
        maxStepTokens: options.maxStepTokens,
        ...(options.stop !== undefined ? { stop: options.stop } : {}),
        ...(options.topLogprobs !== undefined ? { topLogprobs: options.topLogprobs } : {}),
      })),
    );
    own.forEach((branch, i) => {
      const result = results[i] as ExtendResult;
      // An empty step (a delimiter right away, or end of text) adds no step.
      if (result.text !== "") branch.steps.push(result.text);
      branch.finished = result.stopReason === "eos" || result.stopReason === "max-length";
      branch.generatedTokens += result.tokens;
    });
    return results;
  }

  /** Live branches, the bytes of decoding state the worker holds (and would hold at `lengths`), and the decoding graph runs so far. */
  stats(lengths: number[] = []): Promise<{ liveBranches: number; heldStateBytes: number; stateBytesAt: number[]; decodeRuns: number }> {
    return this.client.call("stats", { lengths });
  }

  async close(): Promise<void> {
    await this.extends.onIdle();
    await this.client.close();
  }
}
