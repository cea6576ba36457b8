/**
 * `deliberate data synth` (generate the synthetic MATH-shaped task) and `deliberate data label`
 * (label model samples of it with the rule step checker). Registered on the `data` group.
 */
import { createReadStream } from "node:fs";
import type { Readable, Writable } from "node:stream";
import type { Command } from "commander";
import { z } from "zod";
import { InputError } from "../errors.js";
import { readableFile, refuseOverwritingInput, writeAtomically } from "../files.js";
import { DEFAULT_LADDER, generateSynth, LADDER_IDS, LEVELS, SPLITS } from "../../datasets/synth/generate.js";
import { labelJsonl } from "../../datasets/synth/label.js";
import { loadMathFile } from "../../datasets/math.js";

const count = (flag: string) =>
  z
    .string()
    .regex(/^[1-9]\d*$/, { error: `${flag} must be a positive integer` })
    .transform(Number);

const synthFlags = z
  .object({
    split: z.enum(SPLITS, { error: `--split must be one of ${SPLITS.join(", ")}` }),
    n: count("--n").optional(),
    perLevel: count("--per-level").optional(),
    seed: z
      .string()
      .regex(/^-?\d+$/, { error: "--seed must be an integer" })
      .transform(Number)
      .refine((seed) => seed >= -(2 ** 31) && seed < 2 ** 31, { error: "--seed must fit in 32 bits" }),
    levels: z
      .string()
      .regex(/^[1-5](,[1-5])*$/, { error: "--levels must be a comma-separated list of levels 1-5, e.g. 1,2,3" })
      .transform((list) => [...new Set(list.split(",").map(Number))].sort((a, b) => a - b)),
    ladder: z.enum(LADDER_IDS.map(String) as [string, ...string[]], { error: `--ladder must be one of ${LADDER_IDS.join(", ")}` }).transform((id) => Number(id) as (typeof LADDER_IDS)[number]),
    exclude: z.string().optional(),
    out: z.string().optional(),
  })
  .refine((flags) => flags.n === undefined || flags.perLevel === undefined, {
    error: "give --n or --per-level, not both",
  });

const labelFlags = z.object({ in: z.string().optional(), out: z.string().optional() });

function parseFlags<S extends z.ZodType>(schema: S, options: unknown): z.output<S> {
  const result = schema.safeParse(options);
  if (!result.success) throw new InputError(result.error.issues.map((issue) => issue.message).join("; "));
  return result.data;
}

/** A stream of `--in`, or stdin. */
async function openInput(file: string | undefined): Promise<Readable> {
  if (file === undefined) return process.stdin;
  await readableFile(file, "--in");
  return createReadStream(file, { encoding: "utf8" });
}

/** Writes through `write` to `--out` (atomically, see writeAtomically), or to stdout. */
async function withOutput<T>(file: string | undefined, write: (output: Writable) => Promise<T>): Promise<T> {
  if (file === undefined) return write(process.stdout);
  return writeAtomically(file, "--out", write);
}

/** The problem ids (unique_id) of a MATH-style JSONL file, for --exclude. */
async function problemIds(file: string): Promise<Set<string>> {
  await readableFile(file, "--exclude");
  const { problems } = await loadMathFile(file);
  return new Set(problems.map((problem) => problem.id));
}

export function registerSynth(data: Command): void {
  data
    .command("synth")
    .description(
      "Generate the synthetic MATH-shaped task (Arithmetic, Fractions, Linear Equations; levels 1-5) as JSONL.\n" +
        "Splits are fixed by a hash of the problem text, so train, calibration and test never overlap.",
    )
    .requiredOption("--split <split>", `one of ${SPLITS.join(", ")}`)
    .option("--n <count>", "number of problems, spread evenly over the levels (default 500)")
    .option("--per-level <count>", "problems per level (instead of --n)")
    .option("--seed <integer>", "random seed", "0")
    .option("--levels <list>", "comma-separated levels", LEVELS.join(","))
    .option("--ladder <id>", `the difficulty ladder: 1 (drawn for the first-generation policy) or 2 (for the second; see the model card)`, String(DEFAULT_LADDER))
    .option(
      "--exclude <file>",
      "leave out the problems of this MATH-style JSONL file (by unique_id), e.g. the smaller set an earlier run used (with the same seed, the problems of --n 250 are among those of --n 500)",
    )
    .option("--out <file>", "write here instead of stdout")
    .action(async (options: unknown) => {
      const flags = parseFlags(synthFlags, options);
      if (flags.out !== undefined) await refuseOverwritingInput({ path: flags.out, flag: "--out" }, [{ path: flags.exclude, flag: "--exclude" }]);
      const excluded = flags.exclude === undefined ? new Set<string>() : await problemIds(flags.exclude);
      const n = flags.perLevel !== undefined ? flags.perLevel * flags.levels.length : (flags.n ?? 500);
      const problems = generateSynth({ split: flags.split, seed: flags.seed, n, levels: flags.levels, ladder: flags.ladder }).filter((problem) => !excluded.has(problem.unique_id));
      await withOutput(flags.out, async (output) => {
        output.write(problems.map((problem) => JSON.stringify(problem) + "\n").join(""));
      });
    });

  data
    .command("label")
    .description(
      "Label model samples of the synthetic task with the rule step checker. Reads JSONL lines with\n" +
        "`problem` and `solution` (optional gold `answer`) and writes each back with stepCorrect,\n" +
        "prefixCorrect (all steps so far correct), predicted (the boxed answer) and correct.",
    )
    .option("--in <file>", "read here instead of stdin")
    .option("--out <file>", "write here instead of stdout")
    .action(async (options: unknown) => {
      const flags = parseFlags(labelFlags, options);
      if (flags.out !== undefined) await refuseOverwritingInput({ path: flags.out, flag: "--out" }, [{ path: flags.in, flag: "--in" }]);
      const input = await openInput(flags.in);
      await withOutput(flags.out, (output) => labelJsonl(input, output, flags.in ?? "stdin"));
    });
}
