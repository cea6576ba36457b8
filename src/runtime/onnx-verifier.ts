/** A StepVerifier backed by the ONNX process reward model in a worker thread; calls are coalesced. */
import type { ScoreRequest, StepScores, StepVerifier } from "../policy.js";
import { Coalescer } from "./coalescer.js";
import type { ModelInfo } from "./model-worker.js";
import type { PrmRequest, PrmResult } from "./prm-engine.js";
import type { WorkerClient } from "./worker-client.js";

export class OnnxStepVerifier implements StepVerifier {
  readonly name: string;
  readonly parameters: number;
  readonly device: string;
  readonly fingerprint: string;
  /** Longest input (problem and steps) the model takes, in tokens. */
  readonly maxSequenceTokens: number;
  private readonly scores = new Coalescer<PrmRequest, PrmResult>((requests) => this.client.call("score", { requests }));

  constructor(
    private readonly client: WorkerClient,
    info: ModelInfo,
  ) {
    this.name = info.name;
    this.parameters = info.parameters;
    this.device = info.device;
    this.fingerprint = info.fingerprint;
    this.maxSequenceTokens = info.maxSequenceTokens;
  }

  async scoreSteps(requests: readonly ScoreRequest[], signal?: AbortSignal): Promise<StepScores[]> {
    signal?.throwIfAborted();
    if (requests.length === 0) return [];
    const results = await this.scores.submit(requests.map(({ problem, steps }) => ({ problem, steps })));
    return results.map(({ scores, tokens }) => ({ scores, tokens }));
  }

  async close(): Promise<void> {
    await this.scores.onIdle();
    await this.client.close();
  }
}
