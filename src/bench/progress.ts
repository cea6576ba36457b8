/**
 * Progress of a benchmark run: a bar with rate and ETA on a terminal (cli-progress), plain periodic
 * lines elsewhere (CI logs). The ETA weighs each work item by its budget, since an item at budget 64
 * costs about 64 times one at budget 1.
 */
import { Presets, SingleBar } from "cli-progress";
import type { ProgressMode } from "./config.js";
import { isGradingFailure, type BenchResult } from "./results.js";

export interface BenchProgress {
  /** Before the first item: the run's work items, their total budget, and the results already there (resume). */
  start(total: number, totalBudget: number, previous: readonly BenchResult[]): void;
  /** After each finished item. */
  update(result: BenchResult): void;
  stop(): void;
}

/** The line that tells a reader of a summary about grading failures (only shown when there are some). */
export function gradingFailuresNote(count: number): string {
  return (
    `${count} ${count === 1 ? "item's grading" : "items' grading"} did not finish (time limit on every try; their errors say so): ` +
    "left out of accuracy, not counted wrong; the same command grades them again (--grade-timeout raises the limit)"
  );
}

/** "1h 05m", "3m 20s", "45s". */
export function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, "0")}m`;
}

/**
 * Resident memory of the process, model workers included (they are threads): a long run's lines
 * show whether it stays flat, i.e. whether searches free the branches they no longer need.
 */
function residentMiB(): string {
  return `rss ${Math.round(process.memoryUsage.rss() / 2 ** 20)} MiB`;
}

/** Counts and rates; the rate and ETA come from the items finished since start (not those resumed). */
class Tracker {
  total = 0;
  done = 0;
  errors = 0;
  /** Items whose grading did not finish (also counted in errors). */
  gradingFailures = 0;
  private totalBudget = 0;
  private doneBudget = 0;
  private sessionItems = 0;
  private sessionBudget = 0;
  private started = performance.now();

  start(total: number, totalBudget: number, previous: readonly BenchResult[]): void {
    this.total = total;
    this.totalBudget = totalBudget;
    this.done = previous.length;
    this.errors = previous.filter((result) => result.error !== null).length;
    this.gradingFailures = previous.filter(isGradingFailure).length;
    this.doneBudget = previous.reduce((sum, result) => sum + result.budget, 0);
    this.started = performance.now();
  }

  add(result: BenchResult): void {
    this.done++;
    this.sessionItems++;
    if (result.error !== null) this.errors++;
    if (isGradingFailure(result)) this.gradingFailures++;
    this.doneBudget += result.budget;
    this.sessionBudget += result.budget;
  }

  speed(): string {
    if (this.sessionItems === 0) return "-- items/min";
    const perSecond = this.sessionItems / ((performance.now() - this.started) / 1000);
    return perSecond >= 1 ? `${perSecond.toFixed(1)} items/s` : `${(perSecond * 60).toFixed(1)} items/min`;
  }

  eta(): string {
    if (this.sessionBudget === 0) return "--";
    const msPerBudget = (performance.now() - this.started) / this.sessionBudget;
    return formatDuration((this.totalBudget - this.doneBudget) * msPerBudget);
  }

  /** "3 errors", or "3 errors (2 grading)" when some are grading failures. */
  errorText(): string {
    return `${this.errors} errors${this.gradingFailures > 0 ? ` (${this.gradingFailures} grading)` : ""}`;
  }

  line(): string {
    const percent = this.total === 0 ? 100 : (100 * this.done) / this.total;
    return `${this.done}/${this.total} items (${percent.toFixed(1)}%) | ${this.speed()} | ETA ${this.eta()} | ${this.errorText()} | ${residentMiB()}`;
  }
}

/** A cli-progress bar, refreshed every second so that the ETA keeps moving. */
export function barProgress(stream: NodeJS.WriteStream = process.stderr): BenchProgress {
  const tracker = new Tracker();
  const bar = new SingleBar(
    { format: "bench [{bar}] {value}/{total} items | {speed} | ETA {remaining} | {errors} | {memory}", stream, hideCursor: true },
    Presets.shades_classic,
  );
  let timer: NodeJS.Timeout | undefined;
  const payload = () => ({ speed: tracker.speed(), remaining: tracker.eta(), errors: tracker.errorText(), memory: residentMiB() });
  return {
    start(total, totalBudget, previous) {
      tracker.start(total, totalBudget, previous);
      bar.start(total, tracker.done, payload());
      timer = setInterval(() => bar.update(tracker.done, payload()), 1000).unref();
    },
    update(result) {
      tracker.add(result);
      bar.update(tracker.done, payload());
    },
    stop() {
      clearInterval(timer);
      bar.stop();
    },
  };
}

/** A line every `intervalS` seconds (and at the start and the end), for logs. */
export function lineProgress(intervalS: number, stream: NodeJS.WritableStream = process.stderr): BenchProgress {
  const tracker = new Tracker();
  let timer: NodeJS.Timeout | undefined;
  const print = () => stream.write(`[bench] ${tracker.line()}\n`);
  return {
    start(total, totalBudget, previous) {
      tracker.start(total, totalBudget, previous);
      print();
      timer = setInterval(print, intervalS * 1000).unref();
    },
    update(result) {
      tracker.add(result);
    },
    stop() {
      clearInterval(timer);
      print();
    },
  };
}

/** The progress display for a mode: `auto` is a bar when stderr is a terminal, else lines; `none` is null. */
export function createProgress(mode: ProgressMode, intervalS: number): BenchProgress | null {
  if (mode === "none") return null;
  if (mode === "bar" || (mode === "auto" && process.stderr.isTTY)) return barProgress();
  return lineProgress(intervalS);
}
