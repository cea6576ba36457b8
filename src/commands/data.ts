/** `deliberate data`: download the named MATH sources and show problems as JSONL. */
import { Argument, Command, InvalidArgumentError } from "commander";
import { z } from "zod";
import { InputError } from "../errors.js";
import type { ProblemFilter } from "../../datasets/filter.js";
import { loadMathFile, toMathLine, type LoadResult } from "../../datasets/math.js";
import { describeSource, fetchDataset, loadNamedDataset, SOURCE_NAMES } from "../../datasets/sources.js";
import { registerSynth } from "./data-synth.js";

const nameHelp =
  "named dataset, downloaded once into the cache: " +
  SOURCE_NAMES.map((name) => `${name} (${describeSource(name)})`).join("; ");

export function registerData(program: Command): void {
  const data = program
    .command("data")
    .description("Datasets: download MATH-500 and MATH into the cache, show problems as JSONL, make the synthetic task");

  data
    .command("fetch")
    .description("Download a named dataset into the cache (once) and print its path and problem count")
    .addArgument(new Argument("<name>", nameHelp).choices(SOURCE_NAMES))
    .option("--cache-dir <dir>", "cache directory (default $DELIBERATE_CACHE, else ~/.cache/deliberate)")
    .action(async (name: string, options: { cacheDir?: string }) => {
      const result = await fetchDataset(name, { cacheDir: options.cacheDir });
      const how = result.downloaded ? "downloaded" : "already cached";
      process.stdout.write(`${name}: ${result.problems} problems, ${how}, in ${result.file}\n`);
    });

  data
    .command("show")
    .description("Print the problems of a named dataset or of a JSONL file as MATH-style JSONL (unique_id, problem, answer, level, subject), filtered")
    .addArgument(new Argument("[name]", nameHelp).choices(SOURCE_NAMES))
    .option("--data-file <path>", "read this MATH-style JSONL file instead of a named dataset")
    .option("--level <levels>", "keep these levels, comma-separated (e.g. 4,5); repeatable", collect(parseLevel))
    .option("--subject <subjects>", "keep these subjects, case-insensitive, comma-separated; repeatable", collect(parseSubject))
    .option("--limit <n>", "print at most n problems", parsePositiveInt)
    .option("--shuffle-seed <seed>", "shuffle with this integer seed before the limit", parseSeed)
    .option("--skip-bad-lines", "skip (and report on stderr) lines that fail validation instead of stopping")
    .option("--cache-dir <dir>", "cache directory (default $DELIBERATE_CACHE, else ~/.cache/deliberate)")
    .action(async (name: string | undefined, options: ShowOptions) => {
      const filter: ProblemFilter = {
        levels: options.level,
        subjects: options.subject,
        limit: options.limit,
        shuffleSeed: options.shuffleSeed,
      };
      const loadOptions = { ...filter, onBadLine: options.skipBadLines ? "skip" : "stop", cacheDir: options.cacheDir } as const;
      let result: LoadResult;
      if (name !== undefined && options.dataFile === undefined) result = await loadNamedDataset(name, loadOptions);
      else if (name === undefined && options.dataFile !== undefined) result = await loadMathFile(options.dataFile, loadOptions);
      else throw new InputError(`data show takes a dataset name (${SOURCE_NAMES.join(", ")}) or --data-file PATH, one of the two`);
      for (const bad of result.badLines) process.stderr.write(`skipped line ${bad.line}: ${bad.reason}\n`);
      if (result.badLines.length > 0) process.stderr.write(`skipped ${result.badLines.length} bad lines\n`);
      process.stdout.write(result.problems.map((problem) => `${JSON.stringify(toMathLine(problem))}\n`).join(""));
    });

  registerSynth(data);
}

interface ShowOptions {
  dataFile?: string;
  level?: number[];
  subject?: string[];
  limit?: number;
  shuffleSeed?: number;
  skipBadLines?: boolean;
  cacheDir?: string;
}

const integerText = z.string().trim().regex(/^[+-]?\d+$/, "expected an integer").transform(Number);
const levelValue = integerText.pipe(z.int().min(1, "expected a level >= 1"));
const positiveInt = integerText.pipe(z.int().min(1, "expected a positive integer"));
const seedValue = integerText.pipe(
  z.int().min(-(2 ** 31), "expected a 32-bit integer").max(2 ** 31 - 1, "expected a 32-bit integer"),
);

/** A commander argParser from a zod schema; commander adds the flag name to the message. */
function parser<T>(schema: z.ZodType<T, string>): (value: string) => T {
  return (value) => {
    const result = schema.safeParse(value);
    if (!result.success) throw new InvalidArgumentError(result.error.issues.map((issue) => issue.message).join("; "));
    return result.data;
  };
}

const parseLevel = parser(levelValue);
const parsePositiveInt = parser(positiveInt);
const parseSeed = parser(seedValue);
const parseSubject = parser(z.string().trim().min(1, "expected a subject name"));

/** For repeatable, comma-separated flags: parses each item and adds it to the earlier values. */
function collect<T>(parseItem: (value: string) => T): (value: string, previous: T[] | undefined) => T[] {
  return (value, previous) => [...(previous ?? []), ...value.split(",").map(parseItem)];
}
