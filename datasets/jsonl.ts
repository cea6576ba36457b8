/** Streaming JSONL reading with per-line validation: one bad line names its file, line and field. */
import { createInterface } from "node:readline";
import { open } from "node:fs/promises";
import type { z } from "zod";
import { describeZodError, InputError, systemErrorMeaning } from "../src/errors.js";

/** What to do with a line that is not valid JSON or fails the schema. */
export type OnBadLine = "stop" | "skip";

export interface BadLine {
  /** 1-based line number. */
  line: number;
  reason: string;
}

export interface JsonlOptions {
  /** "stop" (default) throws an InputError at the first bad line; "skip" records it and goes on. */
  onBadLine?: OnBadLine;
  /** In skip mode, bad lines are appended here so the caller can report them. */
  badLines?: BadLine[];
  /** Read only up to this byte offset (inclusive), e.g. to leave out a torn last line. */
  end?: number;
}

export interface JsonlRecord<T> {
  /** 1-based line number in the file. */
  line: number;
  value: T;
}

/**
 * Reads `file` line by line (so large files stream), parses each non-blank line as JSON and
 * validates it with `schema`. Yields the parsed values with their line numbers.
 */
export async function* readJsonl<S extends z.ZodType>(
  file: string,
  schema: S,
  options: JsonlOptions = {},
): AsyncGenerator<JsonlRecord<z.output<S>>> {
  const onBadLine = options.onBadLine ?? "stop";
  const handle = await open(file).catch((error: NodeJS.ErrnoException) => {
    throw new InputError(`cannot read ${file}: ${systemErrorMeaning(error) ?? error.message}`);
  });
  if ((await handle.stat()).isDirectory()) {
    await handle.close();
    throw new InputError(`cannot read ${file}: it is a directory, expected a JSONL file`);
  }
  const input = handle.createReadStream({ encoding: "utf8", ...(options.end === undefined ? {} : { end: options.end }) });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const raw of lines) {
      line++;
      const text = line === 1 ? raw.replace(/^\uFEFF/, "") : raw;
      if (text.trim() === "") continue;
      const result = parseLine(text, schema);
      if (result.ok) {
        yield { line, value: result.value };
      } else if (onBadLine === "skip") {
        options.badLines?.push({ line, reason: result.reason });
      } else {
        throw new InputError(`${file}, line ${line}: ${result.reason}`);
      }
    }
  } finally {
    lines.close();
    input.destroy();
  }
}

type LineResult<T> = { ok: true; value: T } | { ok: false; reason: string };

function parseLine<S extends z.ZodType>(text: string, schema: S): LineResult<z.output<S>> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, reason: `invalid JSON, expected one JSON object per line (${(error as Error).message})` };
  }
  const parsed = schema.safeParse(json);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, reason: describeZodError(parsed.error) };
}
