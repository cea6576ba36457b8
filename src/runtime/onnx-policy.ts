/**
 * A Policy backed by an ONNX model in a worker thread. Branch handles live here; their decoding
 * state lives in the worker. Concurrent `extend` calls (several problems searched at once) are
 * coalesced, so the worker decodes them as one batch.
 */
import type { Branch, ExtendOptions, Policy, PolicyPrompt, StepResult } from "../policy.js";
import type { ExtendRequest, ExtendResult } from "./decoder-engine.js";
import type { ModelInfo } from "./model-worker.js";
import type { WorkerClient } from "./worker-client.js";
import { Coalescer } from "./coalescer.js";

class OnnxBranch implements Branch {
  steps: string[] = [];
  finished = false;
  generatedTokens = 0;
  promptTokens = 0;
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
  private nextBranch = 0;
  private readonly extends = new Coalescer<ExtendRequest, ExtendResult>((requests) => this.client.call("extend", { requests }));

  constructor(
    private readonly client: WorkerClient,
    info: ModelInfo,
  ) {
    this.name = info.name;
    this.parameters = info.parameters;
    this.stepDelimiter = info.stepDelimiter;
    this.device = info.device;
    this.fingerprint = info.fingerprint;
  }

  async start(prompt: PolicyPrompt): Promise<Branch> {
    const branch = new OnnxBranch(this.nextBranch++, this);
    const { promptTokens } = await this.extends.exclusive(() => this.client.call<{ promptTokens: number }>("start", { branch: branch.id, prompt }));
    branch.promptTokens = promptTokens;
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
    if (options.seeds.length !== branches.length) throw new Error(`extend: ${branches.length} branches but ${options.seeds.length} seeds`);
    options.signal?.throwIfAborted();
    const own = branches.map((branch) => {
      if (!(branch instanceof OnnxBranch) || branch.released) throw new Error("extend: a branch that is not a live branch of this policy");
      return branch;
    });
    const results = await this.extends.submit(
      own.map((branch, i) => ({
        branch: branch.id,
        seed: options.seeds[i] as number,
        temperature: options.temperature,
        topP: options.topP,
        topK: options.topK,
        maxStepTokens: options.maxStepTokens,
      })),
    );
    own.forEach((branch, i) => {
      const result = results[i] as ExtendResult;
      // An empty step (a delimiter right away, or end of text) adds no step.
      if (result.text !== "") branch.steps.push(result.text);
      branch.finished = result.stopReason === "eos" || result.stopReason === "max-length";
      branch.generatedTokens += result.tokens;
    });
    return results.map(({ text, tokens, logprobs, stopReason, runs }) => ({ text, tokens, logprobs, stopReason, calls: runs }));
  }

  /** Live branches and the bytes of decoding state the worker holds (and would hold at `lengths`). */
  stats(lengths: number[] = []): Promise<{ liveBranches: number; heldStateBytes: number; stateBytesAt: number[] }> {
    return this.client.call("stats", { lengths });
  }

  async close(): Promise<void> {
    await this.extends.onIdle();
    await this.client.close();
  }
}
