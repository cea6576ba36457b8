/**
 * Named datasets, downloaded once from public Hugging Face dataset files into a cache directory
 * (`~/.cache/deliberate`, or $DELIBERATE_CACHE, or the `cacheDir` option) and read from there after.
 */
import { randomUUID } from "node:crypto";
import { mkdir, open, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { InputError } from "../src/errors.js";
import type { ProblemFilter } from "./filter.js";
import { loadMathFile, MathJsonlDataset, type LoadResult, type MathLoadOptions } from "./math.js";
import type { BadLine } from "./jsonl.js";

export const SOURCE_NAMES = ["math500", "math"] as const;
export type SourceName = (typeof SOURCE_NAMES)[number];

interface NamedSource {
  description: string;
  /** Where the files live; overridable per source (option, or $DELIBERATE_DATA_URL_<NAME>). */
  baseUrl: string;
  /** Paths under the base URL, concatenated in this order into one cached JSONL file. */
  files: readonly string[];
  /** How many problems a complete download has; anything else is treated as a broken download. */
  problems: number;
}

const MATH_SUBJECT_FILES = [
  "algebra",
  "counting_and_probability",
  "geometry",
  "intermediate_algebra",
  "number_theory",
  "prealgebra",
  "precalculus",
].map((subject) => `data/${subject}_test.jsonl`);

const SOURCES: Record<SourceName, NamedSource> = {
  // MATH-500, the 500-problem test subset of PRM800K (Lightman et al. 2023), served by Hugging Face
  // H4 as one JSONL file with our field names: problem, solution, answer, subject, level (int),
  // unique_id. Byte-identical to openai/prm800k prm800k/math_splits/test.jsonl.
  math500: {
    description: "MATH-500: the 500-problem test subset of MATH used by PRM800K",
    baseUrl: "https://huggingface.co/datasets/HuggingFaceH4/MATH-500/resolve/main",
    files: ["test.jsonl"],
    problems: 500,
  },
  // The full MATH test split (Hendrycks et al. 2021). No well-kept Hugging Face repository serves
  // it as a single JSONL file (EleutherAI/hendrycks_math and most copies are parquet), so this takes
  // the seven per-subject JSONL files of HuggingFaceTB/MATH (commit 140a673f at the time of writing)
  // and concatenates them. Their fields are the original Hendrycks ones: problem, level ("Level N"),
  // type (the subject), solution. The loader maps type -> subject, "Level N" -> N, and takes the
  // missing answer from the last \boxed{} of the solution; ids are `math.jsonl:<line>`.
  math: {
    description: "MATH: the 5,000-problem MATH test split",
    baseUrl: "https://huggingface.co/datasets/HuggingFaceTB/MATH/resolve/main",
    files: MATH_SUBJECT_FILES,
    problems: 5000,
  },
};

const DEFAULT_TIMEOUT_MS = 120_000;

export interface SourceOptions {
  /** Cache directory; default $DELIBERATE_CACHE, else ~/.cache/deliberate. */
  cacheDir?: string;
  /** Base URL of the source's files; default $DELIBERATE_DATA_URL_<NAME>, else Hugging Face. */
  baseUrl?: string;
  /** Time limit for each HTTP request, body included. Default 120 s. */
  timeoutMs?: number;
}

/** A download that failed or gave incomplete data. An InputError, so the CLI prints it plainly. */
export class DownloadError extends InputError {
  override name = "DownloadError";
}

export function isSourceName(name: string): name is SourceName {
  return (SOURCE_NAMES as readonly string[]).includes(name);
}

export function describeSource(name: SourceName): string {
  return SOURCES[name].description;
}

export function cacheDirectory(options: SourceOptions = {}): string {
  return options.cacheDir ?? (process.env.DELIBERATE_CACHE || join(homedir(), ".cache", "deliberate"));
}

/** Where the named source is (or will be) cached. */
export function cachedFilePath(name: string, options: SourceOptions = {}): string {
  return join(cacheDirectory(options), `${checkName(name)}.jsonl`);
}

/** The URLs the named source is downloaded from, after the base-URL overrides. */
export function sourceUrls(name: string, options: SourceOptions = {}): string[] {
  const source = SOURCES[checkName(name)];
  const base = options.baseUrl ?? (process.env[`DELIBERATE_DATA_URL_${name.toUpperCase()}`] || source.baseUrl);
  return source.files.map((file) => `${base.replace(/\/+$/, "")}/${file}`);
}

/** The cached file of a named source, downloading it first when it is not cached yet. */
export async function resolveDatasetFile(name: string, options: SourceOptions = {}): Promise<string> {
  const file = cachedFilePath(name, options);
  if (!(await isFile(file))) await download(checkName(name), file, options);
  return file;
}

export interface FetchResult {
  file: string;
  problems: number;
  /** False when the file was already in the cache. */
  downloaded: boolean;
}

/** Makes sure the named source is cached and says where, with its problem count. */
export async function fetchDataset(name: string, options: SourceOptions = {}): Promise<FetchResult> {
  const file = cachedFilePath(name, options);
  if (await isFile(file)) return { file, problems: (await countProblems(file)).problems, downloaded: false };
  return { file, problems: await download(checkName(name), file, options), downloaded: true };
}

/** The named source as a streaming Dataset (downloaded first if needed). */
export async function openNamedDataset(
  name: string,
  options: SourceOptions & MathLoadOptions = {},
): Promise<MathJsonlDataset> {
  return new MathJsonlDataset(await resolveDatasetFile(name, options), { name, ...options });
}

/** Loads the named source (downloaded first if needed) and applies the filter. */
export async function loadNamedDataset(
  name: string,
  options: SourceOptions & MathLoadOptions & ProblemFilter = {},
): Promise<LoadResult> {
  return loadMathFile(await resolveDatasetFile(name, options), { name, ...options });
}

function checkName(name: string): SourceName {
  if (!isSourceName(name)) throw new InputError(`unknown dataset "${name}"; known: ${SOURCE_NAMES.join(", ")}`);
  return name;
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (info) => info.isFile(),
    () => false,
  );
}

/**
 * Downloads into a temporary file beside the target, checks every line, then renames it into
 * place, so an interrupted or broken download never looks like a cached dataset.
 * Returns the number of problems.
 */
async function download(name: SourceName, target: string, options: SourceOptions): Promise<number> {
  const urls = sourceUrls(name, options);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  await mkdir(cacheDirectory(options), { recursive: true });
  const partial = `${target}.${process.pid}.${randomUUID()}.part`;
  try {
    const handle = await open(partial, "w");
    try {
      for (const url of urls) await downloadInto(handle, url, timeoutMs);
    } finally {
      await handle.close();
    }
    const { problems, badLines } = await countProblems(partial);
    const from = urls.length === 1 ? urls[0] : `${urls[0]} and ${urls.length - 1} more files`;
    const first = badLines[0];
    if (first !== undefined) {
      throw new DownloadError(
        `the download of ${name} from ${from} is not valid MATH JSONL (line ${first.line}: ${first.reason})`,
      );
    }
    if (problems !== SOURCES[name].problems) {
      throw new DownloadError(
        `the download of ${name} from ${from} has ${problems} problems, expected ${SOURCES[name].problems} (incomplete download?)`,
      );
    }
    await rename(partial, target);
    return problems;
  } finally {
    await rm(partial, { force: true });
  }
}

/** Appends one URL's body to the open file, ending it with a newline so the next part starts a line. */
async function downloadInto(handle: FileHandle, url: string, timeoutMs: number): Promise<void> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok || response.body === null) throw new Error(`HTTP ${response.status} ${response.statusText}`);
    let lastByte = 0x0a;
    for await (const chunk of response.body) {
      await handle.write(chunk);
      lastByte = chunk.at(-1) ?? lastByte;
    }
    if (lastByte !== 0x0a) await handle.write("\n");
  } catch (error) {
    throw new DownloadError(
      `could not download ${url}: ${failureReason(error, timeoutMs)}. ` +
        "If you are offline, get the JSONL file another way and pass --data-file PATH.",
    );
  }
}

function failureReason(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && error.name === "TimeoutError") return `no complete answer within ${timeoutMs / 1000} s`;
  if (!(error instanceof Error)) return String(error);
  // fetch reports network failures as "fetch failed" with the real reason in `cause`.
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${error.message}${cause}`;
}

async function countProblems(file: string): Promise<{ problems: number; badLines: BadLine[] }> {
  const { problems, badLines } = await loadMathFile(file, { onBadLine: "skip" });
  return { problems: problems.length, badLines };
}
