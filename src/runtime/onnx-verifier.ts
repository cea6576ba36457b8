/** A StepVerifier backed by the ONNX process reward model in a worker thread; calls are coalesced. */
import PQueue from "p-queue";
import type { ScoreRequest, StepVerifier } from "../policy.js";
import type { ModelInfo } from "./model-worker.js";
import type { PrmResult } from "./prm-engine.js";
import type { WorkerClient } from "./worker-client.js";

interface PendingScore {
  requests: readonly ScoreRequest[];
  resolve: (scores: number[][]) => void;
  reject: (error: Error) => void;
}

export class OnnxStepVerifier implements StepVerifier {
  readonly name: string;
  readonly parameters: number;
  readonly device: string;
  private readonly queue = new PQueue({ concurrency: 1 });
  private pending: PendingScore[] = [];

  constructor(
    private readonly client: WorkerClient,
    info: ModelInfo,
  ) {
    this.name = info.name;
    this.parameters = info.parameters;
    this.device = info.device;
  }

  scoreSteps(requests: readonly ScoreRequest[], signal?: AbortSignal): Promise<number[][]> {
    if (signal?.aborted) {
      const error = new Error("the operation was aborted");
      error.name = "AbortError";
      return Promise.reject(error);
    }
    if (requests.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.pending.push({ requests, resolve, reject });
      void this.queue.add(() => this.flush());
    });
  }

  private async flush(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    let results: PrmResult[];
    try {
      const requests = batch.flatMap((call) => call.requests.map(({ problem, steps }) => ({ problem, steps })));
      results = await this.client.call<PrmResult[]>("score", { requests });
    } catch (error) {
      for (const call of batch) call.reject(error as Error);
      return;
    }
    let offset = 0;
    for (const call of batch) {
      const own = results.slice(offset, offset + call.requests.length);
      offset += call.requests.length;
      const meters = new Set(call.requests.map((request) => request.meter));
      call.requests.forEach((request, i) => request.meter.countVerifier((own[i] as PrmResult).tokens, this.parameters));
      for (const meter of meters) meter.verifierCalls++;
      call.resolve(own.map((result) => result.scores));
    }
  }

  async close(): Promise<void> {
    await this.queue.onIdle();
    await this.client.close();
  }
}
