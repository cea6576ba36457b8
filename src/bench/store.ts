/**
 * The run directory: `config.json` (the run's configuration, to reproduce it and to refuse a resume
 * with another one), and the results files (`results.jsonl`, or `results.shard-I-of-N.jsonl` for a
 * shard), one JSON line per finished work item.
 *
 * Each result is written with one append, so a killed run leaves at most a torn last line; opening
 * the file for writing cuts it off. A lock file beside the results file keeps a second process from
 * writing the same file (and duplicating results).
 */
import { appendFileSync, closeSync, ftruncateSync, openSync } from "node:fs";
import { mkdir, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { InputError } from "../errors.js";
import { writeFileAtomically } from "../files.js";
import type { BenchConfig, Experiment, RunSettings, Shard } from "./config.js";
import { readJsonl } from "../../datasets/jsonl.js";
import type { LadderId } from "../../datasets/synth/generate.js";
import { resultSchema, type BenchResult } from "./results.js";

export const CONFIG_FILE = "config.json";

/** What config.json holds. */
export interface RunRecord {
  /** The deliberate version that started the run. */
  deliberate: string;
  created: string;
  experiment: Experiment;
  /** The settings of the run that started the directory (a resume may change them). */
  run: RunSettings;
}

export function resultsFileName(shard: Shard | null): string {
  return shard === null ? "results.jsonl" : `results.shard-${shard.index}-of-${shard.count}.jsonl`;
}

const RESULTS_FILE = /^results(\.shard-\d+-of-\d+)?\.jsonl$/;

/** JSON with object keys sorted, so that equal values compare equal whatever their key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) =>
    inner !== null && typeof inner === "object" && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : inner,
  );
}

function shorten(text: string): string {
  return text.length > 160 ? `${text.slice(0, 157)}...` : text;
}

async function readRecord(dir: string): Promise<RunRecord | null> {
  const file = join(dir, CONFIG_FILE);
  const source = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return null;
    throw error;
  });
  if (source === null) return null;
  try {
    return JSON.parse(source) as RunRecord;
  } catch (error) {
    throw new InputError(`${file} is not valid JSON (${(error as Error).message}); restore it or use another --out directory`);
  }
}

/**
 * Fails with an InputError when `dir` holds a run whose experiment differs from this one (the
 * settings that decide results); the run settings may differ. A directory without config.json passes.
 */
export async function checkRunDirectory(dir: string, experiment: Experiment): Promise<void> {
  const record = await readRecord(dir);
  if (record === null) return;
  // Runs started before difficulty files (skipped configurations) existed have none: the same as none.
  const stored: Partial<Experiment> = { knownDifficulty: null, skipped: [], ...(record.experiment as Partial<Experiment> | undefined) };
  // Synth runs started before there were two ladders drew from ladder 1.
  if (stored.dataset?.name === "synth") stored.dataset = { ...stored.dataset, ladder: (stored.dataset as { ladder?: LadderId }).ladder ?? 1 };
  // A fingerprint is compared only where both are known: a check before the models and problems are
  // loaded has none yet, and runs started before fingerprints were recorded are let through.
  const fingerprint = (key: keyof Experiment["fingerprints"]) =>
    experiment.fingerprints[key] === null ? null : (stored.fingerprints?.[key] ?? experiment.fingerprints[key]);
  stored.fingerprints = { policy: fingerprint("policy"), verifier: fingerprint("verifier"), problems: fingerprint("problems") };
  if (canonical(stored) === canonical(experiment)) return;
  const keys = [...new Set([...Object.keys(experiment), ...Object.keys(stored)])] as (keyof Experiment)[];
  const differences = keys
    .filter((key) => canonical(stored[key]) !== canonical(experiment[key]))
    .map((key) => `${key}: ${shorten(canonical(stored[key]) ?? "(none)")} there, ${shorten(canonical(experiment[key]) ?? "(none)")} now`);
  const changed = (["policy", "verifier", "problems"] as const).filter((key) => stored.fingerprints?.[key] !== experiment.fingerprints[key]);
  const retrained = changed.length > 0 ? `The ${changed.join(" and ")} changed since that run started (a retrain, another model, or a changed dataset?). ` : "";
  throw new InputError(
    `${dir} holds a run with another configuration (${join(dir, CONFIG_FILE)}):\n  ${differences.join("\n  ")}\n` +
      retrained +
      "A run resumes only with the same configuration (concurrency, device, threads, progress and the time limit may change). " +
      "Use the same settings, or another --out directory.",
  );
}

/** Creates the run directory and its config.json, or checks that the one there matches. */
export async function prepareRunDirectory(config: BenchConfig, version: string): Promise<void> {
  await mkdir(config.out, { recursive: true });
  await checkRunDirectory(config.out, config.experiment);
  const file = join(config.out, CONFIG_FILE);
  if ((await readRecord(config.out)) !== null) return;
  const record: RunRecord = { deliberate: version, created: new Date().toISOString(), experiment: config.experiment, run: config.run };
  await writeFileAtomically(file, "--out", `${JSON.stringify(record, null, 2)}\n`);
}

/** The offset just after the file's last newline (0 when it has none), and its size. */
async function completeLength(file: string): Promise<{ complete: number; size: number }> {
  const handle = await open(file, "r");
  try {
    const { size } = await handle.stat();
    const chunk = Buffer.alloc(64 * 1024);
    for (let end = size; end > 0; end -= chunk.length) {
      const start = Math.max(0, end - chunk.length);
      const { bytesRead } = await handle.read(chunk, 0, end - start, start);
      const newline = chunk.subarray(0, bytesRead).lastIndexOf(0x0a);
      if (newline >= 0) return { complete: start + newline + 1, size };
    }
    return { complete: 0, size };
  } finally {
    await handle.close();
  }
}

/**
 * Reads the results in one file, up to its last newline (a torn last line is not a result).
 * A complete line that is not a valid result is an error naming the file and line.
 */
async function readResultsFile(file: string, complete: number): Promise<BenchResult[]> {
  if (complete === 0) return [];
  const results: BenchResult[] = [];
  for await (const { value } of readJsonl(file, resultSchema, { end: complete - 1 })) results.push(value);
  return results;
}

/** The results files in a run directory (results.jsonl and shard files), sorted by name. */
export async function resultsFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [];
    throw error;
  });
  return names.filter((name) => RESULTS_FILE.test(name)).sort().map((name) => join(dir, name));
}

/**
 * Every result in a run directory, over all its results files (shards included), without
 * changing them: a torn last line is skipped. Read on resume (reports read with line numbers, in src/report/load.ts).
 */
export async function readRunResults(dir: string): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const file of await resultsFiles(dir)) results.push(...(await readResultsFile(file, (await completeLength(file)).complete)));
  return results;
}

interface LockOwner {
  pid: number;
  host: string;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Lock files held by this process. */
const heldLocks = new Set<string>();

/**
 * Takes the lock file of a results file. A lock left by a process that is gone (killed, or an
 * earlier process with this pid) is taken over; one held by a live process, or by another host,
 * is an error.
 */
async function acquireLock(lock: string, resultsFile: string): Promise<void> {
  const owner: LockOwner = { pid: process.pid, host: hostname() };
  for (;;) {
    try {
      await writeFile(lock, JSON.stringify(owner), { flag: "wx" });
      heldLocks.add(lock);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = JSON.parse(await readFile(lock, "utf8").catch(() => "null")) as LockOwner | null;
    const ours = holder?.pid === process.pid && holder.host === owner.host;
    const stale = holder === null || (ours ? !heldLocks.has(lock) : holder.host === owner.host && !isAlive(holder.pid));
    if (!stale) {
      throw new InputError(
        `another deliberate bench (pid ${holder.pid} on ${holder.host}) is writing ${resultsFile}. ` +
          `Wait for it or stop it; if it is not running, delete ${lock}.`,
      );
    }
    await rm(lock, { force: true });
  }
}

async function releaseLock(lock: string): Promise<void> {
  heldLocks.delete(lock);
  await rm(lock, { force: true });
}

/** The results file of this process: locked, its torn last line cut off, open for appending. */
export class ResultsWriter {
  private constructor(
    readonly file: string,
    private readonly lock: string,
    private fd: number | null,
    /** Bytes of a torn last line that were cut off on opening (0 when the file was whole). */
    readonly repairedBytes: number,
  ) {}

  static async open(dir: string, shard: Shard | null): Promise<ResultsWriter> {
    const file = join(dir, resultsFileName(shard));
    const lock = resolve(`${file}.lock`);
    await acquireLock(lock, file);
    try {
      const fd = openSync(file, "a");
      const { complete, size } = await completeLength(file);
      if (complete < size) ftruncateSync(fd, complete);
      return new ResultsWriter(file, lock, fd, size - complete);
    } catch (error) {
      await releaseLock(lock);
      throw error;
    }
  }

  /** The results in this file (up to its last newline). */
  async read(): Promise<BenchResult[]> {
    return readResultsFile(this.file, (await completeLength(this.file)).complete);
  }

  /**
   * Rewrites this file with `change` applied to each of its results (null drops one): to put a
   * re-graded result in the place of its grading failure, so that the file keeps one line per
   * work item. The new file is written beside and renamed into place, so a reader or a kill sees
   * the old file or the new one, never a mix.
   */
  async rewrite(change: (result: BenchResult) => BenchResult | null): Promise<void> {
    if (this.fd === null) throw new Error(`${this.file} is closed`);
    const lines = (await this.read()).flatMap((result) => {
      const changed = change(result);
      return changed === null ? [] : [`${JSON.stringify(changed)}\n`];
    });
    closeSync(this.fd);
    this.fd = null;
    try {
      await writeFileAtomically(this.file, "--out", lines.join(""));
    } finally {
      this.fd = openSync(this.file, "a");
    }
  }

  /** Appends one result as one line, in one write (synchronous, so lines never interleave). */
  append(result: BenchResult): void {
    if (this.fd === null) throw new Error(`${this.file} is closed`);
    appendFileSync(this.fd, `${JSON.stringify(result)}\n`);
  }

  async close(): Promise<void> {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
    await releaseLock(this.lock);
  }
}
