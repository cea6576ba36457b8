/**
 * Reads the results of one or more benchmark run directories for `deliberate report`: every
 * `results.jsonl` and `results.shard-I-of-N.jsonl` in each directory, merged into one list, and each
 * directory's `config.json` (display only).
 *
 * A work item (problem, strategy, budget, seed) must appear once across everything merged: a
 * duplicate is an error that names both files and lines, because it means overlapping shards or a
 * run given twice, and silently keeping one of them would mix two runs in one number.
 *
 * Grading failures (items whose search ran but whose grading did not finish) are no judgment: they
 * are kept apart from `results`, so that no number of a report counts them, and a warning says how
 * many there are.
 */
import { createReadStream } from "node:fs";
import { open, readFile, realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { z } from "zod";
import { isGradingFailure, resultSchema, workItemKey, type BenchResult } from "../bench/results.js";
import { resultsFiles } from "../bench/store.js";
import { describeZodError, InputError } from "../errors.js";

export interface RunInfo {
  dir: string;
  /** The run's config.json as written by `deliberate bench`, or null when there is none. */
  config: Record<string, unknown> | null;
  files: { file: string; results: number }[];
}

export interface LoadedResults {
  runs: RunInfo[];
  /** The graded results (grading failures left out). */
  results: BenchResult[];
  /** Items whose grading did not finish: in no number of the report; resuming their run grades them. */
  gradingFailures: BenchResult[];
  /** Things the reader should know that did not stop the report (a half-written last line). */
  warnings: string[];
}

export async function loadRuns(dirs: readonly string[]): Promise<LoadedResults> {
  if (dirs.length === 0) throw new InputError("give at least one run directory");
  const runs: RunInfo[] = [];
  const results: BenchResult[] = [];
  const gradingFailures: BenchResult[] = [];
  const warnings: string[] = [];
  const seen = new Map<string, string>(); // work item key -> "file:line"
  const seenDirs = new Set<string>();

  for (const dir of dirs) {
    const real = await realpath(dir).catch(() => {
      throw new InputError(`${dir}: no such run directory`);
    });
    if (!(await stat(real)).isDirectory()) throw new InputError(`${dir}: not a directory`);
    if (seenDirs.has(real)) throw new InputError(`${dir}: run directory given twice`);
    seenDirs.add(real);

    const run: RunInfo = { dir, config: await readConfig(join(dir, "config.json"), warnings), files: [] };
    for (const file of await resultsFiles(dir)) {
      let count = 0;
      for await (const { result, line } of readResultLines(file, warnings)) {
        const key = workItemKey(result);
        const where = `${file}:${line}`;
        const earlier = seen.get(key);
        if (earlier !== undefined) {
          throw new InputError(
            `${where}: duplicate work item (problem ${result.problemId}, strategy ${result.strategy}, budget ${result.budget}, ` +
              `seed ${result.seed}), already in ${earlier}; overlapping shards or the same run given twice?`,
          );
        }
        seen.set(key, where);
        (isGradingFailure(result) ? gradingFailures : results).push(result);
        count++;
      }
      run.files.push({ file, results: count });
    }
    if (run.files.every((entry) => entry.results === 0)) {
      throw new InputError(`${dir}: nothing to report (no results.jsonl or results.shard-I-of-N.jsonl with results in it)`);
    }
    runs.push(run);
  }
  if (gradingFailures.length > 0) warnings.push(gradingFailuresWarning(gradingFailures));
  return { runs, results, gradingFailures, warnings };
}

/** "3 items are left out of every number: their grading did not finish in time on any try (beam N=16: 2, majority N=4: 1); ..." */
function gradingFailuresWarning(failures: readonly BenchResult[]): string {
  const sorted = [...failures].sort((a, b) => a.strategy.localeCompare(b.strategy) || a.budget - b.budget);
  const cells = new Map<string, number>();
  for (const { strategy, budget } of sorted) cells.set(`${strategy} N=${budget}`, (cells.get(`${strategy} N=${budget}`) ?? 0) + 1);
  const where = [...cells].map(([cell, count]) => `${cell}: ${count}`).join(", ");
  return (
    `${failures.length} ${failures.length === 1 ? "item is" : "items are"} left out of every number: ${failures.length === 1 ? "its" : "their"} grading did not finish ` +
    `in time on any try (${where}); they are not counted wrong, and resuming the run (the same command) grades them again`
  );
}

/** config.json is for display only: a missing or unreadable one is a warning, not an error. */
async function readConfig(file: string, warnings: string[]): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return null;
  }
  try {
    return z.record(z.string(), z.unknown()).parse(JSON.parse(text));
  } catch {
    warnings.push(`${file}: not a JSON object, ignored`);
    return null;
  }
}

/**
 * The results of one JSONL file with their line numbers. A bad line is an error naming the file and
 * line, except a last line that is not JSON and has no newline after it: the bench may be writing
 * it right now (or was killed while writing it), so it is skipped with a warning.
 */
async function* readResultLines(file: string, warnings: string[]): AsyncGenerator<{ result: BenchResult; line: number }> {
  const lines = createInterface({ input: createReadStream(file, { encoding: "utf8" }), crlfDelay: Infinity });
  let line = 0;
  let unparsed: { line: number; message: string } | null = null;
  for await (const text of lines) {
    line++;
    if (unparsed !== null) throw new InputError(`${file}:${unparsed.line}: ${unparsed.message}`);
    if (text.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      unparsed = { line, message: `not valid JSON (${(error as Error).message})` };
      continue;
    }
    const parsed = resultSchema.safeParse(value);
    if (!parsed.success) throw new InputError(`${file}:${line}: ${describeZodError(parsed.error)}`);
    yield { result: parsed.data, line };
  }
  if (unparsed !== null) {
    if (await endsWithNewline(file)) throw new InputError(`${file}:${unparsed.line}: ${unparsed.message}`);
    warnings.push(`${file}:${unparsed.line}: incomplete last line skipped (is the run still writing?)`);
  }
}

async function endsWithNewline(file: string): Promise<boolean> {
  const handle = await open(file);
  try {
    const { size } = await handle.stat();
    const { buffer } = await handle.read(Buffer.alloc(1), 0, 1, size - 1);
    return buffer[0] === 0x0a;
  } finally {
    await handle.close();
  }
}
