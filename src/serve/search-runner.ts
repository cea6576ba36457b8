/**
 * Runs the searches the strategy models ask for, as a service: at most `concurrency` at once
 * (their policy and verifier calls still share batches), at most `maxQueue` waiting (beyond that a
 * 429 with Retry-After), each stopped at the time limit (a 504), when its client goes away, or when
 * the server shuts down past its grace period; a stopped search releases all its branches.
 */
import PQueue from "p-queue";
import { GradingError } from "../../datasets/answer/grader.js";
import { InputError } from "../errors.js";
import { ComputeMeter } from "../meter.js";
import type { Policy, StepVerifier } from "../policy.js";
import { solve, type SolveResult } from "../solve.js";
import type { SearchProgress } from "../strategy.js";
import { ApiError, badRequest } from "./protocol.js";
import { timedOut, type SearchJob } from "./search-api.js";

/** How often a search waiting for a slot is told its place again (a streamed one sends it, so idle-timing proxies keep the connection). */
const QUEUE_NOTICE_MS = 10_000;

export interface RunnerLimits {
  concurrency: number;
  maxQueue: number;
  timeoutMs: number;
}

export interface SearchRun {
  problem: string;
  job: SearchJob;
  seed: number;
  sampling: { temperature?: number; topP?: number };
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  onProgress?: (progress: SearchProgress) => void;
  /** Told its place in the queue (1: next) when the search has to wait for a slot, and again every 10 s while it waits. */
  onQueued?: (position: number) => void;
}

export class SearchRunner {
  private readonly queue: PQueue;
  /** Aborted when the server stops waiting for searches in flight. */
  private readonly shutdown = new AbortController();
  /** Mean search time, for Retry-After (an exponential moving average, seconds). */
  private meanSeconds = 1;
  /** The searches waiting for a slot, in queue order (p-queue runs them first in, first out). */
  private readonly waiting = new Set<object>();

  constructor(
    private readonly policy: Policy,
    private readonly verifier: StepVerifier | null,
    private readonly limits: RunnerLimits,
    private readonly onDone: (compute: ReturnType<ComputeMeter["report"]>) => void,
  ) {
    this.queue = new PQueue({ concurrency: limits.concurrency });
  }

  counts(): { running: number; queued: number } {
    return { running: this.queue.pending, queued: this.queue.size };
  }

  /**
   * Admits a search or refuses it with a 429 when every slot is taken and the queue is full. Call it
   * before answering anything (a stream's 200 included); `run` then waits for a slot.
   */
  admit(): void {
    if (this.queue.pending < this.limits.concurrency || this.queue.size < this.limits.maxQueue) return;
    const waits = Math.ceil((this.meanSeconds * (this.queue.size + this.queue.pending)) / this.limits.concurrency);
    throw new ApiError(
      429,
      "RateLimitError",
      `all ${this.limits.concurrency} search slots are busy and ${this.queue.size} searches are waiting (--max-concurrent, --max-queue); retry later`,
      { "retry-after": String(Math.max(1, waits)) },
    );
  }

  async run(request: SearchRun): Promise<SolveResult> {
    const timeout = AbortSignal.timeout(this.limits.timeoutMs);
    const signal = AbortSignal.any([request.signal, timeout, this.shutdown.signal]);
    const meter = new ComputeMeter();
    const started = performance.now();
    const ticket = {};
    let notices: NodeJS.Timeout | undefined;
    const running = () => {
      this.waiting.delete(ticket);
      clearInterval(notices);
    };
    try {
      this.waiting.add(ticket);
      const searched = this.queue.add(
        () => {
          running();
          return solve(request.problem, {
            strategy: request.job.strategy,
            budget: request.job.budget,
            params: request.job.params,
            limits: request.job.limits,
            sampling: request.sampling,
            policy: this.policy,
            verifier: this.verifier,
            seed: request.seed,
            meter,
            signal,
            onProgress: request.onProgress,
          });
        },
        { signal },
      );
      // p-queue starts a search at once when a slot is free; one still waiting is told its place.
      const { onQueued } = request;
      if (this.waiting.has(ticket) && onQueued !== undefined) {
        const tell = () => onQueued([...this.waiting].indexOf(ticket) + 1);
        tell();
        notices = setInterval(tell, QUEUE_NOTICE_MS);
      }
      const result = await searched;
      this.meanSeconds = 0.8 * this.meanSeconds + 0.2 * ((performance.now() - started) / 1000);
      return result;
    } catch (error) {
      if (timeout.aborted) throw timedOut(this.limits.timeoutMs / 1000, meter.report());
      // Nobody reads this answer; the status is what the request metrics count (nginx's "client closed request").
      if (request.signal.aborted) throw new ApiError(499, "ClientClosedRequest", "the client disconnected");
      if (this.shutdown.signal.aborted) throw new ApiError(503, "ServiceUnavailableError", "the server is shutting down and stopped this search");
      if (error instanceof InputError) throw badRequest(error.message);
      // A vote whose comparison did not finish (30 s, three tries) would otherwise split equal answers: a load problem, worth a retry.
      if (error instanceof GradingError) throw new ApiError(503, "ServiceUnavailableError", `${error.message}; the server is overloaded, try again`);
      throw error;
    } finally {
      running();
      this.onDone(meter.report());
    }
  }

  /** Stops every search still queued or running (at the end of a shutdown's grace period). */
  stopAll(): void {
    this.shutdown.abort(new Error("the server is shutting down"));
  }
}
