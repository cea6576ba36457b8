/**
 * The benchmark runner: every work item (problem, strategy configuration, budget, seed) through
 * `solve`, several at once (p-queue) so that concurrent searches fill the model's batches, each
 * result graded and appended to the run directory's results file as soon as it is known. A run that
 * is stopped (abort signal, Ctrl-C, kill -9) resumes from that file: finished items are skipped.
 *
 * Grading is not allowed to depend on the machine's load: a grading that does not finish (time
 * limit on every try, see BENCH_GRADER_OPTIONS) is recorded as a grading failure with the model's
 * answer kept, left out of accuracy and counted apart, and graded again when the run resumes.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BENCH_GRADER_OPTIONS, Grader, GradingError, gradingFailureMessage } from "../../datasets/answer/grader.js";
import { applyFilter, type ProblemFilter } from "../../datasets/filter.js";
import { loadMathFile } from "../../datasets/math.js";
import type { Problem } from "../../datasets/problem.js";
import { loadNamedDataset } from "../../datasets/sources.js";
import { generateSynth } from "../../datasets/synth/generate.js";
import { InputError, UnavailableError } from "../errors.js";
import { ComputeMeter } from "../meter.js";
import type { Policy, StepVerifier } from "../policy.js";
import { packageRoot } from "../runtime/load.js";
import { solve } from "../solve.js";
import { getStrategy } from "../../strategies/registry.js";
import { needsKnownDifficulty, type BenchConfig, type Experiment, type StrategyConfig } from "./config.js";
import type { BenchProgress } from "./progress.js";
import { runQueue } from "./queue.js";
import { isGradingFailure, workItemKey, type BenchResult } from "./results.js";
import { prepareRunDirectory, readRunResults, ResultsWriter } from "./store.js";

export interface WorkItem {
  key: string;
  problem: Problem;
  strategy: StrategyConfig;
  budget: number;
  seed: number;
}

/** The problems of the config's dataset, filtered. Problem ids must be unique (they key the results). */
export async function loadBenchProblems(config: BenchConfig): Promise<Problem[]> {
  const { dataset, filter } = config.experiment;
  const problemFilter: ProblemFilter = {
    levels: filter.levels ?? undefined,
    subjects: filter.subjects ?? undefined,
    limit: filter.limit ?? undefined,
    shuffleSeed: filter.shuffleSeed ?? undefined,
  };
  let problems: Problem[];
  if (dataset.name === "synth") {
    const generated = generateSynth({ split: dataset.split, seed: dataset.seed, n: dataset.n, levels: filter.levels ?? undefined, ladder: dataset.ladder });
    problems = applyFilter(
      generated.map(({ unique_id, problem, answer, level, subject, solution }) => ({ id: unique_id, problem, answer, level, subject, solution })),
      problemFilter,
    );
  } else if (dataset.name === "file") {
    problems = (await loadMathFile(dataset.file, problemFilter)).problems;
  } else {
    problems = (await loadNamedDataset(dataset.name, { ...problemFilter, cacheDir: config.run.cacheDir ?? undefined })).problems;
  }
  if (problems.length === 0) throw new InputError(`no problems in ${dataset.name} pass the filters`);
  const ids = new Set<string>();
  for (const problem of problems) {
    if (ids.has(problem.id)) throw new InputError(`problem id ${problem.id} appears twice in ${dataset.name}; results are keyed by problem id`);
    ids.add(problem.id);
  }
  return problems;
}

/**
 * Fails before any work when a strategy bins by the oracle difficulty and a problem of the run has
 * no pass rate in the difficulty file.
 */
export function checkKnownDifficulty(config: BenchConfig, problems: readonly Problem[]): void {
  const oracle = config.experiment.strategies.find((strategy) => needsKnownDifficulty(strategy) !== null);
  if (oracle === undefined) return;
  const known = config.experiment.knownDifficulty ?? {};
  const missing = problems.filter((problem) => !Object.hasOwn(known, problem.id)).map((problem) => problem.id);
  if (missing.length === 0) return;
  const listed = missing.length > 5 ? `${missing.slice(0, 5).join(", ")}, ...` : missing.join(", ");
  throw new InputError(
    `${oracle.label} (${needsKnownDifficulty(oracle)}) needs every problem's oracle pass rate, and ` +
      `${config.run.difficultyFile ?? "the difficulty file"} has none for ${missing.length} of the ${problems.length} problems (${listed}): ` +
      "run deliberate calibrate --difficulty-only on the same problems",
  );
}

/**
 * What a run would do, for --dry-run: its work items (after the shard), the configurations, the
 * budgets, the skipped pairs and the directory. Nothing is loaded or written.
 */
export function describePlan(config: BenchConfig, problems: readonly Problem[]): string {
  const { experiment, shard } = config;
  const items = workItems(problems, experiment).filter((item) => shard === null || shardOf(item.key, shard.count) === shard.index);
  return [
    `${config.out}: ${items.length} work items: ${problems.length} problems x ${experiment.strategies.map((s) => s.label).join(", ")} ` +
      `x budgets ${experiment.budgets.join(", ")} x ${experiment.seeds} seeds${shard === null ? "" : `, shard ${shard.index}/${shard.count}`}`,
    ...experiment.skipped.map((skip) => `  skipped: ${skip.label} at N=${skip.budget}: ${skip.reason}`),
  ].join("\n");
}

/** Whether a configuration does not run at a budget (see `Experiment.skipped`). */
export function isSkipped(experiment: Experiment, label: string, budget: number): boolean {
  return experiment.skipped.some((skip) => skip.label === label && skip.budget === budget);
}

/** Every work item, seed by seed (so a stopped run has whole seeds done first), then problem, strategy, budget. */
export function workItems(problems: readonly Problem[], experiment: Experiment): WorkItem[] {
  const items: WorkItem[] = [];
  for (let seed = 0; seed < experiment.seeds; seed++) {
    for (const problem of problems) {
      for (const strategy of experiment.strategies) {
        for (const budget of experiment.budgets) {
          if (isSkipped(experiment, strategy.label, budget)) continue;
          items.push({ key: workItemKey({ problemId: problem.id, strategy: strategy.label, budget, seed }), problem, strategy, budget, seed });
        }
      }
    }
  }
  return items;
}

/** The shard (1 to `count`) a work item belongs to: a hash of its key, so the split is stable and even. */
export function shardOf(key: string, count: number): number {
  return (createHash("sha256").update(key).digest().readUInt32BE(0) % count) + 1;
}

/** A SHA-256 over the problems' ids, texts and gold answers, in order. */
function fingerprintProblems(problems: readonly Problem[]): string {
  const hash = createHash("sha256");
  for (const { id, problem, answer } of problems) hash.update(`${JSON.stringify([id, problem, answer])}\n`);
  return `sha256:${hash.digest("hex")}`;
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version: string }).version;
}

export interface RunBenchOptions {
  policy: Policy;
  verifier?: StepVerifier | null;
  /** Stops the run: no new item starts, running ones are aborted and not recorded. */
  signal?: AbortSignal;
  /** Called with each result once it is written. */
  onResult?: (result: BenchResult) => void;
  progress?: BenchProgress | null;
  /** The problems, when already loaded with `loadBenchProblems`. */
  problems?: Problem[];
  /**
   * Grades answers (and answer equivalence for voting). Default: a Grader of its own with
   * BENCH_GRADER_OPTIONS and the run's grading time limit, closed at the end.
   */
  grader?: Grader;
}

export interface AccuracyCell {
  strategy: string;
  budget: number;
  items: number;
  correct: number;
  /** Failed items, grading failures included. */
  errors: number;
  /** Items whose grading did not finish: left out of accuracy, which is correct / (items - gradingFailures). */
  gradingFailures: number;
}

/** A cell's accuracy over its graded items (grading failures left out); null when none is graded. */
export function cellAccuracy(cell: AccuracyCell): number | null {
  const graded = cell.items - cell.gradingFailures;
  return graded === 0 ? null : cell.correct / graded;
}

export interface BenchSummary {
  dir: string;
  /** This process's results file. */
  resultsFile: string;
  /** Work items of this run (of this shard). */
  items: number;
  /** Items with a result, from earlier runs included. */
  done: number;
  /** Items run by this call. */
  ranNow: number;
  /** Failed items among those done, grading failures included. */
  errors: number;
  /** Items done whose grading did not finish (left out of accuracy; graded again on resume). */
  gradingFailures: number;
  /** Grading failures of earlier runs graded again by this call (without running their search). */
  regraded: number;
  /** True when the signal stopped the run before every item was done. */
  interrupted: boolean;
  /** Bytes of a torn last line cut off the results file before appending. */
  repairedBytes: number;
  elapsedMs: number;
  /** Per strategy configuration and budget, in the config's order, over the items done. */
  accuracy: AccuracyCell[];
}

interface ItemContext {
  policy: Policy;
  verifier: StepVerifier | null;
  grader: Grader;
  experiment: Experiment;
  itemTimeoutS: number | null;
  /** Aborted when the run stops. */
  stop: AbortSignal;
}

/** Runs and grades one item. A failure is a result with its error; null when the run was stopped. */
async function runItem(item: WorkItem, context: ItemContext): Promise<BenchResult | null> {
  const started = performance.now();
  const timeout = context.itemTimeoutS === null ? null : AbortSignal.timeout(context.itemTimeoutS * 1000);
  const meter = new ComputeMeter();
  const { problem, strategy, budget, seed } = item;
  const known = context.experiment.knownDifficulty;
  const passRate = known !== null && Object.hasOwn(known, problem.id) ? known[problem.id] : undefined;
  const base = {
    problemId: problem.id,
    strategy: strategy.label,
    strategyName: strategy.strategy,
    budget,
    seed,
    level: problem.level,
    subject: problem.subject,
    gold: problem.answer,
  };
  try {
    const solved = await solve(problem.problem, {
      strategy: getStrategy(strategy.strategy),
      budget,
      params: strategy.params,
      policy: context.policy,
      verifier: context.verifier,
      seed,
      limits: context.experiment.limits,
      sampling: context.experiment.sampling,
      signal: timeout === null ? context.stop : AbortSignal.any([context.stop, timeout]),
      grader: context.grader,
      meter,
      knownDifficulty: passRate === undefined ? undefined : { passRate },
    });
    const result: BenchResult = {
      ...base,
      answer: solved.answer,
      correct: false,
      compute: solved.compute,
      ms: Math.round(performance.now() - started),
      error: null,
      // A strategy that goes by difficulty (compute-optimal) reports its bin.
      difficultyBin: solved.difficulty?.bin ?? null,
    };
    return await gradeResult(result, context.grader);
  } catch (error) {
    if (context.stop.aborted) return null;
    if (error instanceof GradingError) {
      // The vote's comparison did not finish: there is no answer to keep, so the item runs again on resume.
      return { ...base, answer: null, correct: false, compute: meter.report(), ms: Math.round(performance.now() - started), error: error.message, gradingFailed: true, difficultyBin: null };
    }
    // A server that cannot be reached stops the run; its items run again on resume.
    if (error instanceof UnavailableError) throw error;
    // A configuration problem (a strategy that needs a verifier, without one) would fail every item.
    if (error instanceof InputError) throw new InputError(`${strategy.label} at budget ${budget}: ${error.message}`);
    const message = timeout?.aborted ? `timeout: the item ran longer than ${context.itemTimeoutS} s` : error instanceof Error ? error.message : String(error);
    return { ...base, answer: null, correct: false, compute: meter.report(), ms: Math.round(performance.now() - started), error: message, difficultyBin: null };
  }
}

/**
 * A result with its answer graded: `correct` set, or a grading failure (error, `gradingFailed`)
 * when the grading did not finish on any try. A result without an answer is wrong.
 */
export async function gradeResult(result: BenchResult, grader: Grader): Promise<BenchResult> {
  const rest: BenchResult = { ...result };
  delete rest.gradingFailed;
  if (result.answer === null) return { ...rest, correct: false, error: null };
  const verdict = await grader.grade(result.answer, result.gold);
  if (verdict.incomplete === true) return { ...rest, correct: false, error: gradingFailureMessage(verdict), gradingFailed: true };
  return { ...rest, correct: verdict.equal, error: null };
}

function accuracyTable(experiment: Experiment, results: Iterable<BenchResult>): AccuracyCell[] {
  const cells = new Map<string, AccuracyCell>();
  for (const { label } of experiment.strategies) {
    for (const budget of experiment.budgets) if (!isSkipped(experiment, label, budget)) cells.set(JSON.stringify([label, budget]), { strategy: label, budget, items: 0, correct: 0, errors: 0, gradingFailures: 0 });
  }
  for (const result of results) {
    const cell = cells.get(JSON.stringify([result.strategy, result.budget])) as AccuracyCell;
    cell.items++;
    if (result.correct) cell.correct++;
    if (result.error !== null) cell.errors++;
    if (isGradingFailure(result)) cell.gradingFailures++;
  }
  return [...cells.values()];
}

/**
 * Grades again the grading failures of this process's results file that belong to this run: with
 * the answer kept, only the grading runs (not the search); without one, the item is dropped to run
 * again. The file is rewritten once, with each new result in its failure's place, so that it keeps
 * one line per work item; `finished` is updated. Returns how many were graded again (a grading that
 * fails again stays a failure, with its new error).
 */
async function regradeFailures(
  writer: ResultsWriter,
  keys: ReadonlySet<string>,
  finished: Map<string, BenchResult>,
  grader: Grader,
  stop: AbortSignal,
): Promise<number> {
  const failures = (await writer.read()).filter((result) => isGradingFailure(result) && keys.has(workItemKey(result)));
  if (failures.length === 0) return 0;
  const changed = new Map<string, BenchResult | null>();
  await Promise.all(
    failures.map(async (failure) => {
      const key = workItemKey(failure);
      changed.set(key, failure.answer === null ? null : await gradeResult(failure, grader));
    }),
  );
  if (stop.aborted) return 0;
  await writer.rewrite((result) => {
    const key = workItemKey(result);
    return changed.has(key) ? (changed.get(key) as BenchResult | null) : result;
  });
  for (const [key, result] of changed) {
    if (result === null) finished.delete(key);
    else finished.set(key, result);
  }
  return failures.filter((failure) => failure.answer !== null).length;
}

/**
 * Runs the config's work items (this shard's, when sharded) that the run directory has no result
 * for yet, with the given models; writes config.json and appends results as they finish.
 * An item that fails is recorded with its error and the run goes on; a configuration error
 * (InputError) stops it. The config's `policy`/`verifier` labels default to the models' names.
 */
export async function runBench(config: BenchConfig, options: RunBenchOptions): Promise<BenchSummary> {
  const started = performance.now();
  const verifier = options.verifier ?? null;
  const problems = options.problems ?? (await loadBenchProblems(config));
  const experiment: Experiment = {
    ...config.experiment,
    policy: config.experiment.policy ?? options.policy.name,
    verifier: config.experiment.verifier ?? verifier?.name ?? "none",
    fingerprints: { policy: options.policy.fingerprint ?? null, verifier: verifier?.fingerprint ?? null, problems: fingerprintProblems(problems) },
  };
  checkKnownDifficulty(config, problems);
  const { shard } = config;
  const items = workItems(problems, experiment).filter((item) => shard === null || shardOf(item.key, shard.count) === shard.index);
  await prepareRunDirectory({ ...config, experiment }, packageVersion());
  const writer = await ResultsWriter.open(config.out, shard);
  const grader = options.grader ?? new Grader({ ...BENCH_GRADER_OPTIONS, timeoutMs: config.run.gradeTimeoutS * 1000 });
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();
  try {
    const keys = new Set(items.map((item) => item.key));
    const finished = new Map<string, BenchResult>();
    for (const result of await readRunResults(config.out)) {
      const key = workItemKey(result);
      if (keys.has(key)) finished.set(key, result);
    }
    const regraded = await regradeFailures(writer, keys, finished, grader, stop.signal);
    const pending = items.filter((item) => !finished.has(item.key));
    options.progress?.start(
      items.length,
      items.reduce((sum, item) => sum + item.budget, 0),
      [...finished.values()],
    );

    const context: ItemContext = { policy: options.policy, verifier, grader, experiment, itemTimeoutS: config.run.itemTimeoutS, stop: stop.signal };
    let ranNow = 0;
    await runQueue(
      pending,
      { concurrency: config.run.concurrency, stop },
      (item) => runItem(item, context),
      (item, result) => {
        writer.append(result);
        finished.set(item.key, result);
        ranNow++;
        options.progress?.update(result);
        options.onResult?.(result);
      },
    );

    const done = [...finished.values()];
    return {
      dir: config.out,
      resultsFile: writer.file,
      items: items.length,
      done: done.length,
      ranNow,
      errors: done.filter((result) => result.error !== null).length,
      gradingFailures: done.filter(isGradingFailure).length,
      regraded,
      interrupted: done.length < items.length,
      repairedBytes: writer.repairedBytes,
      elapsedMs: Math.round(performance.now() - started),
      accuracy: accuracyTable(experiment, done),
    };
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    options.progress?.stop();
    await writer.close();
    if (options.grader === undefined) await grader.close();
  }
}
