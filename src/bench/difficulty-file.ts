/**
 * The difficulty file, `difficulty.jsonl`: one record per problem with its predicted difficulty
 * (the mean final verifier score of a few samples) and its oracle pass rate, written by
 * calibration's difficulty pass (src/calibration/difficulty.ts) and read by the bench for the
 * strategies that need each problem's known difficulty.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { InputError } from "../errors.js";
import { computeSchema, resultSchema } from "./results.js";

export const DIFFICULTY_FILE = "difficulty.jsonl";

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

/** One line of difficulty.jsonl; `where` (file:line) names it in errors. */
export function parseDifficultyRecord(line: string, where: string): DifficultyRecord {
  let parsed;
  try {
    parsed = difficultyRecordSchema.safeParse(JSON.parse(line));
  } catch {
    throw new InputError(`${where}: not valid JSON; fix or delete that line`);
  }
  if (!parsed.success) throw new InputError(`${where}: not a difficulty record (${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message})`);
  return parsed.data;
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
    const record = parseDifficultyRecord(line, `${file}:${index + 1}`);
    if (!passRates.has(record.problemId)) passRates.set(record.problemId, record.oracle.passRate);
  }
  if (passRates.size === 0) throw new InputError(`${file}: no difficulty records (write them with deliberate calibrate --difficulty-only)`);
  return passRates;
}
