/**
 * Files the CLI and the library read and write: inputs are read with a size bound, and every output
 * is written to a temporary file in its directory and renamed into place once complete, so that a
 * command that fails leaves the previous output whole and no reader ever sees half a file. An
 * output is never written over one of the command's inputs.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream, type Stats } from "node:fs";
import { readFile, realpath, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { finished } from "node:stream/promises";
import type { Writable } from "node:stream";
import { InputError, systemErrorMeaning } from "./errors.js";

/** The largest text input file read whole (a problem, a config): 16 MiB. */
export const MAX_TEXT_FILE_BYTES = 16 * 2 ** 20;

/** Reads a text file whole, refusing a directory or a file above `maxBytes`; `what` names the flag. */
export async function readTextFile(file: string, what: string, maxBytes = MAX_TEXT_FILE_BYTES): Promise<string> {
  const stats = await readableFile(file, what);
  if (stats.size > maxBytes) throw new InputError(`${what}: ${file} is ${stats.size} bytes, above the limit of ${maxBytes} bytes`);
  return readFile(file, "utf8");
}

/** Fails before any work unless `file` exists and is a file (not a directory); `what` names the flag. */
export async function readableFile(file: string, what: string): Promise<Stats> {
  const stats = await stat(file).catch((error: NodeJS.ErrnoException) => {
    throw new InputError(`${what}: cannot read ${file}: ${systemErrorMeaning(error) ?? error.message}`);
  });
  if (stats.isDirectory()) throw new InputError(`${what}: ${file} is a directory, expected a file`);
  return stats;
}

/** A path with symbolic links resolved, for a file that may not exist yet (its directory's links are). */
async function canonical(path: string): Promise<string> {
  const absolute = resolve(path);
  const real = await realpath(absolute).catch(() => null);
  if (real !== null) return real;
  const directory = await realpath(dirname(absolute)).catch(() => dirname(absolute));
  return join(directory, basename(absolute));
}

/** The same file: one canonical path, or one inode (a hard link). */
async function sameFile(a: string, b: string): Promise<boolean> {
  if ((await canonical(a)) === (await canonical(b))) return true;
  const [statA, statB] = await Promise.all([stat(a).catch(() => null), stat(b).catch(() => null)]);
  return statA !== null && statB !== null && statA.dev === statB.dev && statA.ino === statB.ino;
}

/** Fails with an InputError naming both flags when the output is one of the inputs (also through a link). */
export async function refuseOverwritingInput(output: { path: string; flag: string }, inputs: readonly { path: string | undefined; flag: string }[]): Promise<void> {
  for (const input of inputs) {
    if (input.path !== undefined && (await sameFile(output.path, input.path))) {
      throw new InputError(`${output.flag} ${output.path} is the same file as ${input.flag} ${input.path}: write the output to another file`);
    }
  }
}

/**
 * Writes `path` through `write`, which gets a stream on a temporary file beside it; the file is
 * renamed into place when `write` resolves and the stream is flushed. When anything fails the
 * temporary file is removed and `path` is left as it was. `flag` names the output in errors.
 */
export async function writeAtomically<T>(path: string, flag: string, write: (stream: Writable) => Promise<T> | T): Promise<T> {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const directory = await stat(dirname(path)).catch(() => null);
  if (directory === null) throw new InputError(`${flag}: cannot write ${path}: no such directory ${dirname(path)}`);
  if (!directory.isDirectory()) throw new InputError(`${flag}: cannot write ${path}: ${dirname(path)} is not a directory`);
  if ((await stat(path).catch(() => null))?.isDirectory()) throw new InputError(`${flag}: ${path} is a directory, expected a file`);
  const stream = createWriteStream(temporary, { flags: "wx" });
  await new Promise<void>((ready, fail) => stream.once("open", () => ready()).once("error", fail)).catch((error: NodeJS.ErrnoException) => {
    throw new InputError(`${flag}: cannot write ${path}: ${systemErrorMeaning(error) ?? error.message}`);
  });
  try {
    const result = await write(stream);
    stream.end();
    await finished(stream);
    await rename(temporary, path);
    return result;
  } catch (error) {
    stream.destroy();
    await rm(temporary, { force: true });
    throw error;
  }
}

/** Writes a whole file atomically (see writeAtomically). */
export async function writeFileAtomically(path: string, flag: string, data: string | Uint8Array): Promise<void> {
  await writeAtomically(path, flag, (stream) => {
    stream.write(data);
  });
}
