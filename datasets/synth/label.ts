/**
 * Labels model samples with the rule checker, streaming JSONL in and out: each line keeps its
 * fields and gains `stepCorrect`, `prefixCorrect`, `predicted` and `correct`.
 */
import { once } from "node:events";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { z } from "zod";
import { describeZodError, InputError } from "../../src/errors.js";
import { checkSolution } from "./check.js";

const sampleSchema = z.looseObject({
  problem: z.string(),
  solution: z.string(),
  /** The gold answer, when the sample carries one. */
  answer: z.union([z.string(), z.number()]).nullish(),
});

export interface LabelledSample {
  [field: string]: unknown;
  stepCorrect: boolean[];
  prefixCorrect: boolean[];
  predicted: string | null;
  correct: boolean;
}

/** Labels one sample (already parsed). */
export function labelSample(sample: z.output<typeof sampleSchema>): LabelledSample {
  const gold = sample.answer === undefined || sample.answer === null ? undefined : String(sample.answer);
  const check = checkSolution(sample.problem, sample.solution, gold);
  return {
    ...sample,
    stepCorrect: check.steps.map((step) => step.correct),
    prefixCorrect: check.prefixCorrect,
    predicted: check.answer,
    correct: check.answerCorrect === true,
  };
}

/**
 * Reads JSONL samples from `input` and writes the labelled lines to `output` as it goes. `source`
 * names the input in errors (a file name or "stdin"). Returns the number of lines labelled.
 */
export async function labelJsonl(input: Readable, output: Writable, source: string): Promise<number> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNumber = 0;
  let count = 0;
  let buffer = "";
  for await (const line of lines) {
    lineNumber++;
    if (line.trim() === "") continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new InputError(`${source}:${lineNumber}: not valid JSON`);
    }
    const parsed = sampleSchema.safeParse(json);
    if (!parsed.success) throw new InputError(`${source}:${lineNumber}: ${describeZodError(parsed.error)}`);
    buffer += JSON.stringify(labelSample(parsed.data)) + "\n";
    count++;
    // Write in chunks, and wait when the output is slower than we are.
    if (buffer.length >= 1 << 16) {
      if (!output.write(buffer)) await once(output, "drain");
      buffer = "";
    }
  }
  if (buffer !== "" && !output.write(buffer)) await once(output, "drain");
  return count;
}
