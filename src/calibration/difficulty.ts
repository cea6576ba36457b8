/**
 * The difficulty pass of calibration. For each calibration problem:
 *
 * - the predicted difficulty that compute-optimal uses at test time, by its own `estimateDifficulty`:
 *   the mean final verifier score of `samples` samples;
 * - for analysis only, the oracle difficulty: the share of `oracleSamples` samples whose answer
 *   grades equal to the gold answer (no verifier involved).
 *
 * Each problem's record is appended to `difficulty.jsonl` in the run directory as soon as it is
 * known, so a stopped pass resumes where it stopped. A record is the bench result of the estimate
 * (seed 0; its answer the highest-scored sample's, as best-of-n with naive selection would choose)
 * with the scores and the oracle added;
 * the estimate and the oracle each have their own meter, so neither is counted in the other.
 * `difficulty.json` holds the pass's settings: a resume with other ones is refused. The file's format
 * is src/bench/difficulty-file.ts, which the bench reads for oracle difficulties.
 */
import { appendFileSync } from "node:fs";
import { mkdir, readFile, truncate } from "node:fs/promises";
import { join } from "node:path";
import { GradingError, gradingFailureMessage, type Grader } from "../../datasets/answer/grader.js";
import type { Problem } from "../../datasets/problem.js";
import type { Experiment } from "../bench/config.js";
import type { BenchProgress } from "../bench/progress.js";
import { DIFFICULTY_FILE, parseDifficultyRecord, type DifficultyRecord } from "../bench/difficulty-file.js";
import { runQueue } from "../bench/queue.js";
import { InputError } from "../errors.js";
import { writeFileAtomically } from "../files.js";
import type { Policy, StepVerifier } from "../policy.js";
import { solve, strategyContext } from "../solve.js";
import { estimateDifficulty } from "../../strategies/compute-optimal.js";
import { selectCandidate } from "../../verifiers/select.js";

export const DIFFICULTY_SETTINGS_FILE = "difficulty.json";
/** The oracle's seed differs from the estimate's (0), so that its samples are not the estimate's again. */
const ORACLE_SEED = 1;

/** What decides the pass's records; a resume must have the same. */
export interface DifficultySettings extends Pick<Experiment, "dataset" | "filter" | "limits" | "sampling"> {
  samples: number;
  oracleSamples: number;
  policy: string;
  verifier: string;
}

export interface DifficultyPassOptions {
  policy: Policy;
  verifier: StepVerifier;
  grader: Grader;
  /** Problems worked on at once (their model calls share batches). */
  concurrency: number;
  /** Stops the pass: running problems are aborted and not recorded. */
  signal?: AbortSignal;
  progress?: BenchProgress | null;
}

/** Records the settings in a new run directory; fails naming the differences when it holds other ones. */
async function prepareSettings(dir: string, settings: DifficultySettings): Promise<void> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, DIFFICULTY_SETTINGS_FILE);
  const source = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return null;
    throw error;
  });
  if (source === null) {
    await writeFileAtomically(file, "--out", `${JSON.stringify(settings, null, 2)}\n`);
    return;
  }
  const stored = JSON.parse(source) as Record<string, unknown>;
  const differences = Object.entries(settings)
    .filter(([key, value]) => JSON.stringify(stored[key]) !== JSON.stringify(value))
    .map(([key, value]) => `${key}: ${JSON.stringify(stored[key]) ?? "(none)"} there, ${JSON.stringify(value)} now`);
  if (differences.length > 0) {
    throw new InputError(`${dir} holds a difficulty pass with other settings (${file}):\n  ${differences.join("\n  ")}\nUse the same settings, or another --out directory.`);
  }
}

/** The records in the file by problem id (the first of duplicates); a torn last line, left by a kill, is cut off. */
async function readRecords(file: string): Promise<Map<string, DifficultyRecord>> {
  const text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return "";
    throw error;
  });
  const complete = text.slice(0, text.lastIndexOf("\n") + 1);
  if (complete.length < text.length) await truncate(file, Buffer.byteLength(complete));
  const records = new Map<string, DifficultyRecord>();
  for (const [index, line] of complete.split("\n").entries()) {
    if (line.trim() === "") continue;
    const record = parseDifficultyRecord(line, `${file}:${index + 1}`);
    if (!records.has(record.problemId)) records.set(record.problemId, record);
  }
  return records;
}

async function estimate(problem: Problem, settings: DifficultySettings, options: DifficultyPassOptions): Promise<DifficultyRecord> {
  const started = performance.now();
  const { policy, verifier, grader, signal } = options;
  const common = { policy, limits: settings.limits, sampling: settings.sampling, signal, grader };
  // compute-optimal's own estimate, so that the table's bins are the bins it will see.
  const context = strategyContext({ ...common, verifier, seed: 0 });
  const predicted = await estimateDifficulty(problem.problem, context, settings.samples);
  const answer = (await selectCandidate(predicted.candidates, "naive", context.equivalent))?.answer ?? null;
  // Majority selection needs no verifier, so the oracle's samples are never scored.
  const oracle = await solve(problem.problem, { ...common, strategy: "best-of-n", budget: settings.oracleSamples, verifier: null, seed: ORACLE_SEED, params: { select: "majority" } });
  // A grading that did not finish is no judgment: it fails the problem (the pass stops; a rerun resumes it).
  const grade = async (answer: string | null) => {
    if (answer === null) return false;
    const verdict = await grader.grade(answer, problem.answer);
    if (verdict.incomplete === true) throw new GradingError(`${problem.id}: ${gradingFailureMessage(verdict)}`);
    return verdict.equal;
  };
  const oracleCorrect = (await Promise.all(oracle.candidates.map((candidate) => grade(candidate.answer)))).filter(Boolean).length;
  return {
    problemId: problem.id,
    strategy: "estimate",
    strategyName: "best-of-n",
    budget: settings.samples,
    seed: 0,
    level: problem.level,
    subject: problem.subject,
    answer,
    gold: problem.answer,
    correct: await grade(answer),
    compute: context.meter.report(),
    ms: Math.round(performance.now() - started),
    error: null,
    score: predicted.score,
    scores: predicted.candidates.map((candidate) => candidate.score ?? 0),
    oracle: { samples: settings.oracleSamples, correct: oracleCorrect, passRate: oracleCorrect / settings.oracleSamples, compute: oracle.compute },
  };
}

/**
 * Estimates the difficulty of every problem that `dir`'s difficulty.jsonl has no record of, and
 * returns the records of all `problems` (fewer when the signal stopped the pass). A failure stops
 * the pass; the records written so far are kept.
 */
export async function runDifficultyPass(
  dir: string,
  problems: readonly Problem[],
  settings: DifficultySettings,
  options: DifficultyPassOptions,
): Promise<DifficultyRecord[]> {
  await prepareSettings(dir, settings);
  const file = join(dir, DIFFICULTY_FILE);
  const records = await readRecords(file);
  const previous = problems.flatMap((problem) => records.get(problem.id) ?? []);
  const { progress, signal } = options;
  progress?.start(problems.length, problems.length * settings.samples, previous);
  // A failure stops the running estimates too; the caller's signal stops the pass.
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  try {
    await runQueue(
      problems.filter((candidate) => !records.has(candidate.id)),
      { concurrency: options.concurrency, stop },
      async (problem) => {
        try {
          return await estimate(problem, settings, { ...options, signal: stop.signal });
        } catch (error) {
          if (stop.signal.aborted) return null;
          throw error;
        }
      },
      (problem, record) => {
        appendFileSync(file, `${JSON.stringify(record)}\n`);
        records.set(problem.id, record);
        progress?.update(record);
      },
    );
  } finally {
    signal?.removeEventListener("abort", onAbort);
    progress?.stop();
  }
  return problems.flatMap((problem) => records.get(problem.id) ?? []);
}
