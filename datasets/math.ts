/**
 * Loader for MATH-style JSONL: one problem per line with `problem`, `solution`, `answer`, `subject`
 * (or the original Hendrycks `type`), `level` (an int or "Level N") and `unique_id`. Extra fields
 * are allowed and ignored.
 */
import { basename } from "node:path";
import { z } from "zod";
import { extractAnswer } from "./answer/extract.js";
import { collectProblems, type ProblemFilter } from "./filter.js";
import { readJsonl, type BadLine, type OnBadLine } from "./jsonl.js";
import type { Dataset, Problem } from "./problem.js";

const LEVEL_EXPECTED = 'expected an integer level >= 1 or a string "Level N" / "Level ?"';

const levelField = z
  .union([z.int().min(1), z.string().regex(/^Level ([1-9]\d*|\?)$/, LEVEL_EXPECTED), z.null()], {
    error: LEVEL_EXPECTED,
  })
  .optional()
  .transform((level): number | null => {
    if (level === undefined || level === null || level === "Level ?") return null;
    return typeof level === "number" ? level : Number(level.slice("Level ".length));
  });

/** One line of a MATH-style file, before the id (which needs the file name and line number). */
export const mathLineSchema = z
  .object({
    problem: z.string().refine((text) => text.trim() !== "", "expected the problem's text, got an empty one"),
    solution: z.string().optional(),
    answer: z.string().optional(),
    subject: z.string().optional(),
    type: z.string().optional(),
    level: levelField,
    unique_id: z.union([z.string(), z.int()]).nullish(),
  })
  .transform((raw, ctx) => {
    const answer = raw.answer ?? (raw.solution === undefined ? null : extractAnswer(raw.solution));
    if (answer === null) {
      ctx.issues.push({
        code: "custom",
        path: ["answer"],
        message: "expected a string, or a solution with a final \\boxed{} answer to take it from",
        input: raw.answer,
      });
      return z.NEVER;
    }
    return {
      problem: raw.problem,
      answer,
      level: raw.level,
      subject: raw.subject ?? raw.type ?? null,
      solution: raw.solution,
      uniqueId: raw.unique_id === undefined || raw.unique_id === null ? null : String(raw.unique_id),
    };
  });

export interface MathLoadOptions {
  /** "stop" (default) throws at the first bad line; "skip" records bad lines in `badLines`. */
  onBadLine?: OnBadLine;
  /** The dataset's name; defaults to the file name. */
  name?: string;
}

/** A MATH-style JSONL file as a Dataset. Each iteration re-reads the file. */
export class MathJsonlDataset implements Dataset {
  readonly name: string;
  /** The lines skipped by the latest iteration (skip mode only). */
  readonly badLines: BadLine[] = [];

  constructor(
    readonly file: string,
    private readonly options: MathLoadOptions = {},
  ) {
    this.name = options.name ?? basename(file);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Problem> {
    this.badLines.length = 0;
    const fileName = basename(this.file);
    const records = readJsonl(this.file, mathLineSchema, { onBadLine: this.options.onBadLine, badLines: this.badLines });
    for await (const { line, value } of records) {
      const problem: Problem = {
        id: value.uniqueId ?? `${fileName}:${line}`,
        problem: value.problem,
        answer: value.answer,
        level: value.level,
        subject: value.subject,
      };
      if (value.solution !== undefined) problem.solution = value.solution;
      yield problem;
    }
  }
}

/** A problem as a line of a MATH-style file, in the fields this loader reads (so it loads back the same). */
export function toMathLine(problem: Problem): Record<string, unknown> {
  const { id, level, ...rest } = problem;
  return { unique_id: id, ...rest, level: level ?? "Level ?" };
}

export interface LoadResult {
  problems: Problem[];
  /** Lines skipped in skip mode, with why; empty in stop mode. */
  badLines: BadLine[];
}

/** Reads a MATH-style JSONL file and applies the filter (levels, subjects, shuffle, limit). */
export async function loadMathFile(file: string, options: MathLoadOptions & ProblemFilter = {}): Promise<LoadResult> {
  const dataset = new MathJsonlDataset(file, options);
  const problems = await collectProblems(dataset, options);
  return { problems, badLines: [...dataset.badLines] };
}
