/**
 * The grader: compares answers in worker threads with a hard time limit per comparison. Model
 * output is untrusted, so a comparison that runs past the limit has its worker terminated (not a
 * promise race that leaves the work running) and yields `false` with the reason "timeout"; the
 * worker is replaced and the other comparisons go on.
 */
import type { Worker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import type { CompareOptions, Verdict } from "./compare.js";
import type { GradeRequest } from "./worker.js";
import { startWorker } from "../../src/worker-threads.js";

export interface GraderOptions extends CompareOptions {
  /** Worker threads. Default: the number of cores, at most 4. */
  workers?: number;
  /** Hard time limit of one comparison in milliseconds. Default 5,000. */
  timeoutMs?: number;
  /** Largest input (either side, before extraction) in characters. Default 100,000. */
  maxInputChars?: number;
}

interface Job {
  request: GradeRequest;
  resolve: (verdict: Verdict) => void;
}

class Slot {
  private worker: Worker | null = null;
  private timer: NodeJS.Timeout | null = null;
  job: Job | null = null;

  constructor(
    private readonly timeoutMs: number,
    private readonly onIdle: (slot: Slot) => void,
  ) {}

  run(job: Job): void {
    this.job = job;
    const worker = this.ensureWorker();
    this.timer = setTimeout(() => {
      this.finish({ equal: false, reason: `timeout after ${this.timeoutMs} ms`, pred: null, gold: null });
      void worker.terminate();
      this.worker = null;
    }, this.timeoutMs);
    worker.postMessage(job.request);
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = startWorker(import.meta.url, "worker");
    worker.on("message", (message: { id: number; verdict: Verdict }) => {
      if (this.job?.request.id === message.id) this.finish(message.verdict);
    });
    worker.on("error", (error: Error) => {
      this.worker = null;
      this.finish({ equal: false, reason: `worker error: ${error.message}`, pred: null, gold: null });
    });
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private finish(verdict: Verdict): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const job = this.job;
    this.job = null;
    job?.resolve(verdict);
    this.onIdle(this);
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = null;
  }
}

export class Grader {
  private readonly slots: Slot[];
  private readonly queue: Job[] = [];
  private readonly compareOptions: CompareOptions;
  private readonly maxInputChars: number;
  private nextId = 0;
  /** Comparisons that hit the time limit so far. */
  timeouts = 0;

  constructor(options: GraderOptions = {}) {
    const { workers, timeoutMs = 5_000, maxInputChars = 100_000, ...compare } = options;
    this.compareOptions = compare;
    this.maxInputChars = maxInputChars;
    const count = workers ?? Math.min(4, availableParallelism());
    this.slots = Array.from({ length: count }, () => new Slot(timeoutMs, (slot) => this.dispatch(slot)));
  }

  /**
   * Whether `pred` is equivalent to `gold`, with the normalized forms and the deciding rule.
   * `overrides` change the comparison options for this call only.
   */
  grade(pred: string, gold: string, overrides: CompareOptions = {}): Promise<Verdict> {
    const compare = { ...this.compareOptions, ...overrides };
    if (pred.length > this.maxInputChars || gold.length > this.maxInputChars) {
      const reason = `input longer than ${this.maxInputChars} characters`;
      return Promise.resolve({ equal: false, reason, pred: null, gold: null });
    }
    return new Promise((resolve) => {
      const job: Job = {
        request: { id: this.nextId++, pred, gold, options: compare },
        resolve: (verdict) => {
          if (verdict.reason.startsWith("timeout")) this.timeouts++;
          resolve(verdict);
        },
      };
      this.queue.push(job);
      const idle = this.slots.find((slot) => slot.job === null);
      if (idle) this.dispatch(idle);
    });
  }

  private dispatch(slot: Slot): void {
    const job = this.queue.shift();
    if (job) slot.run(job);
  }

  /** Stops the workers. Pending comparisons are not answered after this. */
  async close(): Promise<void> {
    await Promise.all(this.slots.map((slot) => slot.close()));
  }
}

let shared: Grader | null = null;

/**
 * Whether a prediction is equivalent to a gold answer for MATH-style grading, with the reason and
 * normalized forms. Uses a shared Grader whose worker threads do not keep the process alive.
 */
export function isEquivalent(pred: string, gold: string, options: CompareOptions = {}): Promise<Verdict> {
  shared ??= new Grader();
  return shared.grade(pred, gold, options);
}
