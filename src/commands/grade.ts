/** `deliberate grade`: is a predicted answer equivalent to the gold one? One pair, or a JSONL file of pairs. */
import { createReadStream } from "node:fs";
import type { Writable } from "node:stream";
import { createInterface } from "node:readline";
import { once } from "node:events";
import { Command, Option } from "commander";
import { z } from "zod";
import { Grader } from "../../datasets/answer/grader.js";
import type { Verdict } from "../../datasets/answer/compare.js";
import { describeZodError, InputError } from "../errors.js";
import { readableFile, refuseOverwritingInput, writeAtomically } from "../files.js";

const caseLine = z.looseObject({ gold: z.string(), pred: z.string() });

interface GradeFlags {
  gold?: string;
  pred?: string;
  file?: string;
  out?: string;
  percent: "ignore" | "fraction" | "strict";
  timeout: number;
  json?: boolean;
}

function positiveInt(flag: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed <= 0) throw new InputError(`${flag} must be a positive integer, got "${value}"`);
    return parsed;
  };
}

export function registerGrade(program: Command): void {
  program
    .command("grade")
    .description(
      "Decide whether predicted answers are equivalent to gold answers (MATH conventions, after Math-Verify). " +
        "Either side may be a bare answer or a whole solution text (its \\boxed{} answer is taken).",
    )
    .option("--gold <answer>", "the gold answer (with --pred)")
    .option("--pred <answer>", "the predicted answer or solution text (with --gold)")
    .option("--file <cases.jsonl>", 'grade every line {"gold": ..., "pred": ...}; other fields are kept')
    .option("--out <file>", "with --file: write the graded lines here instead of standard output")
    .addOption(
      new Option("--percent <mode>", "a percent sign on one side: ignore it (10\\% matches 10 or 0.1), read it as the value only (0.1), or be strict")
        .choices(["ignore", "fraction", "strict"])
        .default("ignore"),
    )
    .option("--timeout <ms>", "hard time limit of one comparison", positiveInt("--timeout"), 5000)
    .option("--json", "with --gold/--pred: print the whole verdict as JSON")
    .addHelpText(
      "after",
      '\nExamples:\n  deliberate grade --gold "\\frac{1}{2}" --pred "0.5"\n  deliberate grade --file cases.jsonl --out graded.jsonl',
    )
    .action(async (flags: GradeFlags) => {
      if (flags.file !== undefined) {
        if (flags.gold !== undefined || flags.pred !== undefined) throw new InputError("give either --file or --gold with --pred, not both");
        await gradeFile(flags);
      } else if (flags.gold !== undefined && flags.pred !== undefined) {
        await gradePair(flags.gold, flags.pred, flags);
      } else {
        throw new InputError("give --gold and --pred, or --file (see deliberate grade --help)");
      }
    });
}

async function gradePair(gold: string, pred: string, flags: GradeFlags): Promise<void> {
  const grader = new Grader({ workers: 1, timeoutMs: flags.timeout, percent: flags.percent });
  try {
    const verdict = await grader.grade(pred, gold);
    if (flags.json) console.log(JSON.stringify(verdict));
    else console.log(`${verdict.equal}\n  pred: ${verdict.pred ?? "(none)"}\n  gold: ${verdict.gold ?? "(none)"}\n  rule: ${verdict.reason}`);
  } finally {
    await grader.close();
  }
}

/**
 * Grades the lines of a JSONL file in parallel and writes them back in their order, each with
 * `"equal"` (and `"reason"`) added, to standard output or to `--out` (atomically, never over `--file`).
 */
async function gradeFile(flags: GradeFlags): Promise<void> {
  const file = flags.file as string;
  await readableFile(file, "--file");
  if (flags.out === undefined) return gradeLines(file, flags, process.stdout);
  await refuseOverwritingInput({ path: flags.out, flag: "--out" }, [{ path: file, flag: "--file" }]);
  await writeAtomically(flags.out, "--out", (output) => gradeLines(file, flags, output));
}

/**
 * Grades the lines of `file` into `output`. A bad line stops the run with its line number; the
 * lines before it are already written (to standard output; a file output is then not written).
 */
async function gradeLines(file: string, flags: GradeFlags, output: Writable): Promise<void> {
  const grader = new Grader({ timeoutMs: flags.timeout, percent: flags.percent });
  const input = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  const pending: Promise<string>[] = [];
  const started = Date.now();
  let lineNumber = 0;
  let total = 0;
  let equal = 0;

  const write = async (text: string) => {
    if (!output.write(text)) await once(output, "drain");
  };
  const flushDone = async (keep: number) => {
    while (pending.length > keep) await write(await (pending.shift() as Promise<string>));
  };

  try {
    for await (const line of input) {
      lineNumber++;
      if (line.trim() === "") continue;
      let record: z.infer<typeof caseLine>;
      try {
        const parsed = caseLine.safeParse(JSON.parse(line));
        if (!parsed.success) throw new InputError(describeZodError(parsed.error));
        record = parsed.data;
      } catch (error) {
        const reason = error instanceof InputError ? error.message : "not valid JSON";
        throw new InputError(`${file}, line ${lineNumber}: ${reason}`);
      }
      total++;
      pending.push(
        grader.grade(record.pred, record.gold).then((verdict: Verdict) => {
          if (verdict.equal) equal++;
          return JSON.stringify({ ...record, equal: verdict.equal, reason: verdict.reason }) + "\n";
        }),
      );
      await flushDone(256);
    }
  } finally {
    await flushDone(0);
    await grader.close();
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  process.stderr.write(`${equal}/${total} equal, ${grader.timeouts} timed out, ${seconds} s\n`);
}
