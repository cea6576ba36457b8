/**
 * The grader: compares answers in worker threads with a hard time limit per comparison. Model
 * output is untrusted, so a comparison that runs past the limit has its worker terminated (not a
 * promise race that leaves the work running) and yields `false` with the reason "timeout" and
 * `incomplete: true`; the worker is replaced and the other comparisons go on.
 *
 * A timeout is not a judgment: on a loaded machine a worker that starts cold (loading its
 * libraries on starved cores) can run past the limit on an ordinary answer. `retries` runs a
 * comparison that did not finish again (its worker was terminated, so it runs on a fresh or another
 * worker), and callers that record results (the benchmark runner) treat a verdict that is still
 * incomplete as a grading failure, never as a wrong answer.
 */
import type { Worker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import type { CompareOptions, Verdict } from "./compare.js";
import type { GradeRequest } from "./worker.js";
import { startWorker } from "../../src/worker-threads.js";

export interface GraderOptions extends CompareOptions {
  /** Worker threads. Default: the number of cores, at most 4. */
  workers?: number;
  /**
   * Hard time limit of one comparison in milliseconds. Default 5,000. It runs from when the
   * worker is ready: a worker's start (loading and warming up its libraries) has its own limit.
   */
  timeoutMs?: number;
  /** Time limit of a grading worker's start in milliseconds. Default 120,000. */
  startupTimeoutMs?: number;
  /** Largest input (either side, before extraction) in characters. Default 100,000. */
  maxInputChars?: number;
  /**
   * Times a comparison that did not finish (timeout, worker crash) is run again, on a fresh worker,
   * before its verdict stays incomplete. Default 0.
   */
  retries?: number;
  /** Starts a grading worker (for tests of the grader's handling of workers). Default: worker.ts. */
  startWorker?: () => Worker;
}

/**
 * The grading of benchmark runs (bench, compare, sweep-verifier, calibrate) and of voting in
 * searches: a limit far above any real answer's grading (milliseconds when warm) that still bounds
 * a pathological one, and two more tries, since the usual cause of a timeout is a worker starting
 * on a loaded machine. `deliberate grade --timeout` keeps its own default (5 s, no retry).
 */
export const BENCH_GRADER_OPTIONS = { timeoutMs: 30_000, retries: 2 } as const satisfies GraderOptions;

/** A comparison whose verdict is incomplete (see `Verdict.incomplete`): the grading did not finish. */
export class GradingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GradingError";
  }
}

/** What an incomplete verdict means, for a result's error: "grading timed out after 30 s (3 tries)". */
export function gradingFailureMessage(verdict: Verdict, what = "grading"): string {
  const timeout = /^timeout after (\d+) ms(?:, (\d+) tries)?$/.exec(verdict.reason);
  if (timeout === null) return `${what} did not finish: ${verdict.reason}`;
  const tries = timeout[2] === undefined ? "" : ` (${timeout[2]} tries)`;
  return `${what} timed out after ${Number(timeout[1]) / 1000} s${tries}`;
}

interface Job {
  request: GradeRequest;
  resolve: (verdict: Verdict) => void;
}

const incomplete = (reason: string): Verdict => ({ equal: false, reason, pred: null, gold: null, incomplete: true });

/** What a grading worker posts: "ready" once it has loaded and warmed up, then one verdict per request. */
type WorkerMessage = { ready: true } | { id: number; verdict: Verdict };

class Slot {
  private worker: Worker | null = null;
  /** Whether `worker` has posted "ready": its libraries are loaded and the time limit applies. */
  private ready = false;
  private timer: NodeJS.Timeout | null = null;
  private startupTimer: NodeJS.Timeout | null = null;
  job: Job | null = null;

  constructor(
    private readonly limits: { timeoutMs: number; startupTimeoutMs: number },
    private readonly start: () => Worker,
    private readonly onIdle: (slot: Slot) => void,
  ) {}

  run(job: Job): void {
    this.job = job;
    const worker = this.ensureWorker();
    // A starting worker receives the request when it is ready; the time limit runs from then.
    worker.postMessage(job.request);
    if (this.ready) this.startTimer(worker);
  }

  /** The comparison's time limit: on expiry the worker is terminated (its work cannot be interrupted otherwise). */
  private startTimer(worker: Worker): void {
    this.timer = setTimeout(() => this.abandon(worker, `timeout after ${this.limits.timeoutMs} ms`), this.limits.timeoutMs);
  }

  /** Terminates `worker` and finishes the job with an incomplete verdict. */
  private abandon(worker: Worker, reason: string): void {
    // The worker goes first: finishing dispatches the next job (or this one's retry) to this
    // slot, which must start a fresh worker rather than post to the one being terminated.
    void worker.terminate();
    this.dropWorker(worker);
    this.finish(incomplete(reason));
  }

  private dropWorker(worker: Worker): void {
    if (this.worker !== worker) return;
    if (this.startupTimer) clearTimeout(this.startupTimer);
    this.startupTimer = null;
    this.worker = null;
    this.ready = false;
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = this.start();
    this.ready = false;
    // Starting is trusted work (loading the libraries), so it has a limit of its own, far above a
    // start on a loaded machine: a cold start must not use up a comparison's time limit.
    this.startupTimer = setTimeout(() => {
      if (this.worker === worker) this.abandon(worker, `grading worker did not start within ${this.limits.startupTimeoutMs} ms`);
    }, this.limits.startupTimeoutMs);
    worker.on("message", (message: WorkerMessage) => {
      if (this.worker !== worker) return;
      if ("ready" in message) {
        if (this.startupTimer) clearTimeout(this.startupTimer);
        this.startupTimer = null;
        this.ready = true;
        if (this.job !== null) this.startTimer(worker);
      } else if (this.job?.request.id === message.id) {
        this.finish(message.verdict);
      }
    });
    worker.on("error", (error: Error) => {
      if (this.worker !== worker) return;
      this.dropWorker(worker);
      this.finish(incomplete(`worker error: ${error.message}`));
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
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const worker = this.worker;
    if (worker === null) return;
    this.dropWorker(worker);
    await worker.terminate();
  }
}

export class Grader {
  private readonly slots: Slot[];
  private readonly queue: Job[] = [];
  private readonly compareOptions: CompareOptions;
  private readonly maxInputChars: number;
  private readonly retries: number;
  private nextId = 0;
  /** Comparisons that hit the time limit on their last try, so far. */
  timeouts = 0;
  /** Comparisons run again after a try that did not finish, so far. */
  retried = 0;

  constructor(options: GraderOptions = {}) {
    const { workers, timeoutMs = 5_000, startupTimeoutMs = 120_000, maxInputChars = 100_000, retries = 0, startWorker: start, ...compare } = options;
    this.compareOptions = compare;
    this.maxInputChars = maxInputChars;
    this.retries = retries;
    const count = workers ?? Math.min(4, availableParallelism());
    const limits = { timeoutMs, startupTimeoutMs };
    const startGradingWorker = start ?? (() => startWorker(import.meta.url, "worker"));
    this.slots = Array.from({ length: count }, () => new Slot(limits, startGradingWorker, (slot) => this.dispatch(slot)));
  }

  /**
   * Whether `pred` is equivalent to `gold`, with the normalized forms and the deciding rule.
   * `overrides` change the comparison options for this call only. A comparison that does not
   * finish is tried again (`retries`); when no try finishes, the verdict has `incomplete: true`.
   */
  grade(pred: string, gold: string, overrides: CompareOptions = {}): Promise<Verdict> {
    const compare = { ...this.compareOptions, ...overrides };
    if (pred.length > this.maxInputChars || gold.length > this.maxInputChars) {
      const reason = `input longer than ${this.maxInputChars} characters`;
      return Promise.resolve({ equal: false, reason, pred: null, gold: null });
    }
    return new Promise((resolve) => {
      let tries = 0;
      const submit = () => {
        tries++;
        this.enqueue({
          request: { id: this.nextId++, pred, gold, options: compare },
          resolve: (verdict) => {
            if (verdict.incomplete === true && tries <= this.retries) {
              this.retried++;
              submit();
              return;
            }
            if (verdict.incomplete === true) {
              if (verdict.reason.startsWith("timeout")) this.timeouts++;
              if (tries > 1) verdict = { ...verdict, reason: `${verdict.reason}, ${tries} tries` };
            }
            resolve(verdict);
          },
        });
      };
      submit();
    });
  }

  private enqueue(job: Job): void {
    this.queue.push(job);
    const idle = this.slots.find((slot) => slot.job === null);
    if (idle) this.dispatch(idle);
  }

  private dispatch(slot: Slot): void {
    // A retry submitted while a slot finishes may have taken the slot already.
    if (slot.job !== null) return;
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
 * normalized forms. Uses a shared Grader (`BENCH_GRADER_OPTIONS`) whose worker threads do not keep
 * the process alive.
 */
export function isEquivalent(pred: string, gold: string, options: CompareOptions = {}): Promise<Verdict> {
  shared ??= new Grader(BENCH_GRADER_OPTIONS);
  return shared.grade(pred, gold, options);
}
