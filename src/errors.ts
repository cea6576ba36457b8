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
