import type { z } from "zod";

/**
 * An error caused by the user's input (a flag, a file, a line of data). The CLI prints its message
 * alone, without a stack trace, and exits with status 2.
 */
export class InputError extends Error {
  override name = "InputError";
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
