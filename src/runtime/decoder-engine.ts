/**
 * The decoding engine that runs inside a model's worker thread: it owns the decoding state of
 * every branch, prefills prompts, forks and releases branches, and extends a set of branches by one
 * step each with one batched graph run per token over all live branches. A recursive model with
 * early exit decodes through RecursiveDecoderEngine (recursive-engine.ts), which reuses all of this
 * but the loop of `extend`.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { Random } from "../random.js";
import type { SamplingOptions, StopReason } from "../policy.js";
import type { DecoderGraphs } from "./graphs.js";
import type { InjectedLines } from "./prompt.js";
import { sampleToken, topTokens } from "./sampling.js";
import { stateSize } from "./state.js";

export interface EngineSettings {
  stepDelimiter: string;
  eosTokenIds: number[];
  /** Longest sequence (prompt and solution) a branch may reach; it ends with "max-length" there. */
  maxSequenceTokens: number;
  /** Refuse to hold more decoding state than this, in bytes. */
  maxStateBytes: number;
  /**
   * Loops of a recursive model's shared block that one decode run goes through (every loop: the
   * path with exits off). When set, results report the loops run per step (`loops`).
   */
  loops?: number;
}

export interface ExtendRequest extends SamplingOptions {
  branch: number;
  seed: number;
  maxStepTokens: number;
  /** Strings that end the step when they appear in its text. Default: the model's step delimiter; [] decodes to end of text or the token limit. */
  stop?: string[];
  /** Also return, for each generated token, this many most likely tokens with their log-probabilities. */
  topLogprobs?: number;
}

/** A candidate token with its log-probability under the model's own distribution. */
export interface TokenLogprob {
  token: number;
  text: string;
  logprob: number;
}

export interface ExtendResult {
  branch: number;
  text: string;
  tokens: number;
  /** The generated token ids, delimiter and end of text included. */
  tokenIds: number[];
  logprobs: number[];
  stopReason: StopReason;
  /** The stop string that ended the step (stopReason "delimiter"), null otherwise. */
  stopString: string | null;
  /** The text of every generated token, special tokens skipped, nothing cut. */
  fullText: string;
  /** Each generated token's own text, and its most likely alternatives; only when `topLogprobs` was asked for. */
  tokenLogprobs?: { text: string; top: TokenLogprob[] }[];
  /**
   * Forced tokens fed before the step (an interleaved reviser's line of its previous attempt):
   * context, like a prompt's, and not part of the step's tokens or text.
   */
  injectedTokens: number;
  /** Batched graph runs this branch took part in (forced tokens included). */
  runs: number;
  /**
   * Recursive models: loops of the shared block run to produce the logits each generated token was
   * sampled from, summed over the step's tokens (a token that exited after loop 0 counts 1; the
   * first token after a prefill counts every loop). Absent for other models.
   */
  loops?: number;
  /**
   * Recursive models with the state copy: loops whose state was updated by the copy for this step's
   * tokens that exited early (one per token and skipped loop). Absent for other models.
   */
  copies?: number;
  /** Mixture-of-Depths models: of this step's `runs` tokens, how many went through each routed block (in `routedBlocks` order). */
  routedTokens?: number[];
}

export interface BranchRecord {
  state: Float32Array[];
  /** Tokens consumed so far (prompt and solution): the position of the next token. */
  length: number;
  /** Next-token logits. */
  logits: Float32Array;
  /** Loops run to produce `logits` (recursive models; 1 for others). */
  logitsLoops: number;
  finished: boolean;
  /** An interleaved reviser's lines, one fed at the start of each step; shared by forks, never written. */
  injections?: InjectedLines;
  /** Lines of `injections` fed so far. */
  linesFed: number;
}

/** One branch being extended by one step. */
export interface ExtendItem {
  request: ExtendRequest;
  record: BranchRecord;
  stops: string[];
  random: Random;
  tokens: number[];
  logprobs: number[];
  top: TokenLogprob[][];
  /** Forced tokens still to feed before sampling, and how many were fed. */
  forced: number[];
  injected: number;
  /** The token the next graph run feeds for this branch (forced or just sampled). */
  input: number;
  runs: number;
  loops: number;
  /** State copies made for this step's tokens (recursive models with the state copy). */
  copies: number;
  /** Mixture-of-Depths models: of the tokens fed, how many went through each routed block. */
  routed: number[] | undefined;
  stop: StopReason | null;
  stopString: string | null;
}

export class MemoryCapError extends Error {
  override name = "MemoryCapError";
}

export class DecoderEngine {
  private readonly branches = new Map<number, BranchRecord>();
  /** Graph runs that decoded tokens (decode steps, and one-loop runs of a recursive model), since loading. */
  decodeRuns = 0;

  constructor(
    protected readonly graphs: DecoderGraphs,
    protected readonly tokenizer: Tokenizer,
    protected readonly settings: EngineSettings,
  ) {}

  /** Bytes of decoding state held by one branch of the given length. */
  stateBytes(length: number): number {
    return this.graphs.layouts.reduce((sum, layout) => sum + 4 * stateSize(layout, length), 0);
  }

  /**
   * Bytes of decoding state held now, from the tensors themselves (a Mixture-of-Depths model's
   * routed caches are shorter than the length). Forks share fixed-size tensors; this counts each branch in full.
   */
  heldStateBytes(): number {
    let total = 0;
    for (const record of this.branches.values()) total += record.state.reduce((sum, tensor) => sum + tensor.byteLength, 0);
    return total;
  }

  liveBranches(): number {
    return this.branches.size;
  }

  private checkMemory(extraBytes: number): void {
    const held = this.heldStateBytes();
    if (held + extraBytes > this.settings.maxStateBytes) {
      const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
      throw new MemoryCapError(
        `decoding state would reach ${mib(held + extraBytes)} MiB over ${this.branches.size} live branches, above the cap of ` +
          `${mib(this.settings.maxStateBytes)} MiB: release branches that are no longer needed, or raise maxStateBytes`,
      );
    }
  }

  /**
   * Prefills a prompt, with the lines an interleaved reviser is fed before its steps, if any; for a
   * Mixture-of-Depths model, returns how many prompt tokens went through each routed block.
   */
  async start(branch: number, tokens: number[], injections?: InjectedLines): Promise<number[] | undefined> {
    this.checkMemory(this.stateBytes(tokens.length));
    const { logits, state, routed } = await this.graphs.prefill(tokens);
    this.branches.set(branch, { state, length: tokens.length, logits, logitsLoops: this.settings.loops ?? 1, finished: false, linesFed: 0, ...(injections ? { injections } : {}) });
    return routed;
  }

  /**
   * Feeds more tokens to a live branch (a prompt's suffix after a cached prefix), one decode run
   * per token; afterwards the branch is exactly where a prefill and decoding of the same tokens
   * would have left it.
   */
  async append(branch: number, tokens: readonly number[]): Promise<void> {
    const record = this.record(branch);
    if (record.finished) throw new Error(`branch ${branch} is finished; tokens cannot be appended to it`);
    if (record.length + tokens.length > this.settings.maxSequenceTokens) {
      throw new Error(`appending ${tokens.length} tokens to a branch of ${record.length} would pass the model's ${this.settings.maxSequenceTokens} tokens`);
    }
    this.checkMemory(this.stateBytes(record.length + tokens.length) - this.stateBytes(record.length));
    for (const token of tokens) {
      const output = await this.graphs.step([token], [record.state], [record.length]);
      record.state = output.states[0] as Float32Array[];
      record.logits = (output.logits[0] as Float32Array).slice();
      record.logitsLoops = this.settings.loops ?? 1;
      record.length++;
    }
  }

  /** A new branch sharing the parent's state: tensors are never written in place, so no copy is needed. */
  fork(parent: number, child: number): void {
    const record = this.record(parent);
    this.checkMemory(this.stateBytes(record.length));
    this.branches.set(child, { ...record, state: [...record.state] });
  }

  release(branch: number): void {
    this.branches.delete(branch);
  }

  protected record(branch: number): BranchRecord {
    const record = this.branches.get(branch);
    if (!record) throw new Error(`branch ${branch} is not live (released, or never started)`);
    return record;
  }

  /** Decodes every requested branch by one step, all together. */
  async extend(requests: readonly ExtendRequest[]): Promise<ExtendResult[]> {
    const live = this.prepare(requests);
    let active = live.filter((item) => item.stop === null);
    while (active.length > 0) {
      // Each branch's next forced or sampled token; end of text finishes it without another run.
      const feeding = active.filter((item) => this.nextInput(item));
      if (feeding.length > 0) {
        const output = await this.graphs.step(
          feeding.map((item) => item.input),
          feeding.map((item) => item.record.state),
          feeding.map((item) => item.record.length),
        );
        this.decodeRuns++;
        feeding.forEach((item, b) => {
          item.record.state = output.states[b] as Float32Array[];
          item.runs++;
          output.routed?.[b]?.forEach((went, k) => {
            if (item.routed) item.routed[k] = (item.routed[k] as number) + went;
          });
          this.tokenFed(item, output.logits[b] as Float32Array, this.settings.loops ?? 1);
        });
      }
      active = active.filter((item) => item.stop === null);
    }
    return this.results(live);
  }

  /** The branches of an extend call, checked against the memory cap; finished ones are already stopped. */
  protected prepare(requests: readonly ExtendRequest[]): ExtendItem[] {
    const live = requests.map(
      (request): ExtendItem => ({
        request,
        record: this.record(request.branch),
        stops: request.stop ?? [this.settings.stepDelimiter],
        random: new Random(request.seed),
        tokens: [],
        logprobs: [],
        top: [],
        forced: [],
        injected: 0,
        input: -1,
        runs: 0,
        loops: 0,
        copies: 0,
        routed: this.graphs.routedBlocks?.map(() => 0),
        stop: null,
        stopString: null,
      }),
    );
    for (const item of live) {
      if (item.record.finished) item.stop = "eos";
      else item.forced = this.nextLine(item.record);
    }
    const growth = live.reduce(
      (sum, item) => sum + this.stateBytes(item.record.length + item.forced.length + item.request.maxStepTokens) - this.stateBytes(item.record.length),
      0,
    );
    this.checkMemory(growth);
    return live;
  }

  /** The line an interleaved reviser is fed before its next step (none for other branches); counted as fed. */
  private nextLine(record: BranchRecord): number[] {
    const injections = record.injections;
    if (!injections) return [];
    const line = injections.lines[record.linesFed] ?? injections.pastEnd;
    record.linesFed++;
    return [...line];
  }

  /** Takes the branch's next forced token, or samples one; false when it sampled end of text. */
  private nextInput(item: ExtendItem): boolean {
    const forced = item.forced.shift();
    if (forced === undefined) return this.sampleNext(item);
    item.input = forced;
    item.injected++;
    return true;
  }

  /** Samples a branch's next token from its logits; false when it was end of text (the step is over, nothing to feed). */
  protected sampleNext(item: ExtendItem): boolean {
    const { token, logprob } = sampleToken(item.record.logits, item.request, item.random);
    if (item.request.topLogprobs !== undefined) item.top.push(this.topTokens(item.record.logits, item.request.topLogprobs));
    item.input = token;
    item.tokens.push(token);
    item.logprobs.push(logprob);
    item.loops += item.record.logitsLoops;
    if (this.settings.eosTokenIds.includes(token)) {
      item.stop = "eos";
      item.record.finished = true;
      return false;
    }
    return true;
  }

  /** The branch's newest token went through the model: its next-token logits, and whether the step is over. */
  protected tokenFed(item: ExtendItem, logits: Float32Array, loops: number): void {
    // Copied: the view would keep the whole batch's logits alive.
    item.record.logits = logits.slice();
    item.record.logitsLoops = loops;
    item.record.length++;
    item.stopString = this.stopStringIn(item.tokens, item.stops);
    item.stop = item.stopString !== null ? "delimiter" : this.limitReason(item.tokens, item.request.maxStepTokens, item.record.length);
    if (item.stop === "max-length") item.record.finished = true;
  }

  protected results(live: readonly ExtendItem[]): ExtendResult[] {
    return live.map((item) => ({
      branch: item.request.branch,
      text: this.stepText(item.tokens),
      tokens: item.tokens.length,
      tokenIds: item.tokens,
      logprobs: item.logprobs,
      stopReason: item.stop as StopReason,
      stopString: item.stopString,
      fullText: item.tokens.length > 0 ? this.tokenizer.decode(item.tokens, { skip_special_tokens: true }) : "",
      ...(item.request.topLogprobs !== undefined
        ? { tokenLogprobs: item.tokens.map((token, i) => ({ text: this.tokenText(token), top: item.top[i] as TokenLogprob[] })) }
        : {}),
      injectedTokens: item.injected,
      runs: item.runs,
      ...(this.settings.loops !== undefined ? { loops: item.loops, copies: item.copies } : {}),
      ...(item.routed ? { routedTokens: item.routed } : {}),
    }));
  }

  /** The stop string that appears in the generated text, or null. */
  private stopStringIn(tokens: number[], stops: readonly string[]): string | null {
    // No tokens yet: the branch is still being fed forced ones.
    if (stops.length === 0 || tokens.length === 0) return null;
    // A stop string can only have appeared with the newest token, so only the tail needs decoding.
    const longest = Math.max(...stops.map((stop) => stop.length));
    const tail = this.tokenizer.decode(tokens.slice(-(longest + 2)), { skip_special_tokens: true });
    return stops.find((stop) => tail.includes(stop)) ?? null;
  }

  private limitReason(tokens: number[], maxStepTokens: number, length: number): StopReason | null {
    if (length >= this.settings.maxSequenceTokens) return "max-length";
    if (tokens.length >= maxStepTokens) return "max-tokens";
    return null;
  }

  private tokenText(token: number): string {
    return this.tokenizer.decode([token], { skip_special_tokens: false });
  }

  private topTokens(logits: Float32Array, count: number): TokenLogprob[] {
    return topTokens(logits, count).map(({ token, logprob }) => ({ token, text: this.tokenText(token), logprob }));
  }

  /** The step's text without special tokens, cut before the step delimiter. */
  private stepText(tokens: number[]): string {
    if (tokens.length === 0) return "";
    const text = this.tokenizer.decode(tokens, { skip_special_tokens: true });
    const delimiter = text.indexOf(this.settings.stepDelimiter);
    return (delimiter === -1 ? text : text.slice(0, delimiter)).trim();
  }

  async close(): Promise<void> {
    this.branches.clear();
    await this.graphs.release();
  }
}
