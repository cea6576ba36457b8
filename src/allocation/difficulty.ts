/**
 * The difficulty pass of calibration. For each calibration problem:
 *
 * - the predicted difficulty that compute-optimal uses at test time: the mean final verifier score
 *   of `samples` samples, drawn and scored as its estimate draws them (best-of-n, aggregate `last`);
 * - for analysis only, the oracle difficulty: the share of `oracleSamples` samples whose answer
 *   grades equal to the gold answer (no verifier involved).
 *
 * Each problem's record is appended to `difficulty.jsonl` in the run directory as soon as it is
 * known, so a stopped pass resumes where it stopped. A record is the bench result of the estimate
 * (best-of-n with naive selection at budget `samples`, seed 0) with the scores and the oracle added;
 * the estimate and the oracle each have their own meter, so neither is counted in the other.
 * `difficulty.json` holds the pass's settings: a resume with other ones is refused.
 */
import { appendFileSync, readFileSync } from "node:fs";
import { mkdir, readFile, truncate } from "node:fs/promises";
import { join } from "node:path";
import PQueue from "p-queue";
import { z } from "zod";
import type { Grader } from "../../datasets/answer/grader.js";
import type { Problem } from "../../datasets/problem.js";
import type { Experiment } from "../bench/config.js";
import type { BenchProgress } from "../bench/progress.js";
import { computeSchema, resultSchema } from "../bench/results.js";
import { InputError } from "../errors.js";
import { writeFileAtomically } from "../files.js";
import type { Policy, StepVerifier } from "../policy.js";
import { solve } from "../solve.js";

export const DIFFICULTY_FILE = "difficulty.jsonl";
export const DIFFICULTY_SETTINGS_FILE = "difficulty.json";
/** The oracle's seed differs from the estimate's (0), so that its samples are not the estimate's again. */
const ORACLE_SEED = 1;

export const difficultyRecordSchema = resultSchema.extend({
  /** The predicted difficulty: the mean final verifier score of the samples (higher is easier). */
  score: z.number(),
  /** Each sample's final score. */
  scores: z.array(z.number()),
  oracle: z.object({
    samples: z.int(),
    /** Samples whose answer grades equal to the gold answer. */
    correct: z.int(),
    passRate: z.number().min(0).max(1),
    compute: computeSchema,
  }),
});
export type DifficultyRecord = z.infer<typeof difficultyRecordSchema>;

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

/** One line of difficulty.jsonl; `where` (file:line) names it in errors. */
function parseRecord(line: string, where: string): DifficultyRecord {
  let parsed;
  try {
    parsed = difficultyRecordSchema.safeParse(JSON.parse(line));
  } catch {
    throw new InputError(`${where}: not valid JSON; fix or delete that line`);
  }
  if (!parsed.success) throw new InputError(`${where}: not a difficulty record (${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message})`);
  return parsed.data;
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
    const record = parseRecord(line, `${file}:${index + 1}`);
    if (!records.has(record.problemId)) records.set(record.problemId, record);
  }
  return records;
}

/**
 * The oracle pass rate of each problem of a difficulty.jsonl (the first record of a problem, as
 * on resume), for compute-optimal with the oracle difficulty. Read synchronously, as bench
 * configs are validated; every line must be a whole record, and an error names the file and line.
 */
export function readOraclePassRates(file: string): Map<string, number> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    throw new InputError(`cannot read ${file}: ${code === "ENOENT" ? "no such file" : message}`);
  }
  const passRates = new Map<string, number>();
  for (const [index, line] of text.split("\n").entries()) {
    if (line.trim() === "") continue;
    const record = parseRecord(line, `${file}:${index + 1}`);
    if (!passRates.has(record.problemId)) passRates.set(record.problemId, record.oracle.passRate);
  }
  if (passRates.size === 0) throw new InputError(`${file}: no difficulty records (write them with deliberate calibrate --difficulty-only)`);
  return passRates;
}

async function estimate(problem: Problem, settings: DifficultySettings, options: DifficultyPassOptions): Promise<DifficultyRecord> {
  const started = performance.now();
  const { policy, verifier, grader, signal } = options;
  const common = { strategy: "best-of-n" as const, policy, limits: settings.limits, sampling: settings.sampling, signal, grader };
  const predicted = await solve(problem.problem, { ...common, budget: settings.samples, verifier, seed: 0, params: { select: "naive", aggregate: "last" } });
  // Majority selection needs no verifier, so the oracle's samples are never scored.
  const oracle = await solve(problem.problem, { ...common, budget: settings.oracleSamples, verifier: null, seed: ORACLE_SEED, params: { select: "majority" } });
  const grade = async (answer: string | null) => answer !== null && (await grader.grade(answer, problem.answer)).equal;
  const oracleCorrect = (await Promise.all(oracle.candidates.map((candidate) => grade(candidate.answer)))).filter(Boolean).length;
  const scores = predicted.candidates.map((candidate) => candidate.score ?? 0);
  return {
    problemId: problem.id,
    strategy: "estimate",
    strategyName: "best-of-n",
    budget: settings.samples,
    seed: 0,
    level: problem.level,
    subject: problem.subject,
    answer: predicted.answer,
    gold: problem.answer,
    correct: await grade(predicted.answer),
    compute: predicted.compute,
    ms: Math.round(performance.now() - started),
    error: null,
    score: scores.reduce((sum, score) => sum + score, 0) / scores.length,
    scores,
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
  const queue = new PQueue({ concurrency: options.concurrency });
  const failures: unknown[] = [];
  const onAbort = () => queue.clear();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (const problem of problems.filter((candidate) => !records.has(candidate.id))) {
      queue
        .add(async () => {
          if (signal?.aborted || failures.length > 0) return;
          let record: DifficultyRecord;
          try {
            record = await estimate(problem, settings, options);
          } catch (error) {
            if (signal?.aborted) return;
            throw error;
          }
          appendFileSync(file, `${JSON.stringify(record)}\n`);
          records.set(problem.id, record);
          progress?.update(record);
        })
        .catch((error: unknown) => {
          failures.push(error);
          queue.clear();
        });
    }
    await queue.onIdle();
  } finally {
    signal?.removeEventListener("abort", onAbort);
    progress?.stop();
  }
  if (failures.length > 0) throw failures[0];
  return problems.flatMap((problem) => records.get(problem.id) ?? []);
}
