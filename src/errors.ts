import type { z } from "zod";

/**
 * An error caused by the user's input (a flag, a file, a line of data). The CLI prints its message
 * alone, without a stack trace, and exits with status 2.
 */
export class InputError extends Error {
  override name = "InputError";
}

/**
 * A model server that stayed unreachable, or kept failing, through all its retries. A bench run
 * stops on it without recording the items in flight (they are not the items' fault), so that the
 * same command, run again once the server is back, runs them. The CLI exits with status 3.
 */
export class UnavailableError extends Error {
  override name = "UnavailableError";
}

/** Formats a zod error as "field: what was expected; field: ..." for messages that name the field. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.length > 0 ? issue.path.join(".") : "(value)";
      return `${path}: ${issue.message}`;
    })
    .join("; ");
}

/** What the file-system and network error codes that a user's input can cause mean, in words. */
const SYSTEM_ERRORS: Record<string, string> = {
  ENOENT: "no such file or directory",
  EISDIR: "is a directory, expected a file",
  ENOTDIR: "a part of the path is not a directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  EEXIST: "already exists",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EMFILE: "too many open files",
  ENAMETOOLONG: "file name too long",
  ELOOP: "too many levels of symbolic links",
  EFBIG: "file too large",
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by the server",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed (try again)",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
};

/**
 * Names of errors thrown (also across worker threads, which keep only the name) for a failure of
 * the input or the environment rather than a bug: the CLI reports them in one line.
 */
const EXPECTED_ERRORS = new Set(["InputError", "MemoryCapError", "AbortError"]);

/**
 * The one-line message of an expected failure: an InputError, a model's memory cap, or a file
 * system or network error (named by its path or address, also when it is the `cause`). Null for
 * anything else, which is a bug and deserves its stack trace.
 */
export function describeExpectedError(error: unknown): string | null {
  if (!(error instanceof Error)) return null;
  if (EXPECTED_ERRORS.has(error.name)) return error.message;
  const system = error as NodeJS.ErrnoException & { address?: string; hostname?: string; port?: number; dest?: string };
  const meaning = systemErrorMeaning(error);
  if (meaning === null) return error.cause === undefined ? null : describeExpectedError(error.cause);
  const where = system.path ?? system.hostname ?? (system.address === undefined ? undefined : `${system.address}${system.port ? `:${system.port}` : ""}`);
  const target = system.dest === undefined ? where : `${where} -> ${system.dest}`;
  return target === undefined ? meaning : `${target}: ${meaning}`;
}

/** What a file-system or network error means, in words with its code ("no such file or directory (ENOENT)"); null for other errors. */
export function systemErrorMeaning(error: unknown): string | null {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  const meaning = code === undefined ? undefined : SYSTEM_ERRORS[code];
  return meaning === undefined ? null : `${meaning} (${code})`;
}
