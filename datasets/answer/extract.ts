/**
 * Taking the answer out of a piece of text: a model's solution, a gold solution, or prose with math.
 * Follows the conventions of the MATH benchmark (the last `\boxed{}`) and of Math-Verify (boxed,
 * then the last inline math, then "the answer is ...", then the last expression).
 */

/** Given the index of an opening brace, the index just past its matching closing brace, or -1. */
export function matchBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const ch = text[i];
    if (ch === "\\") {
      i++; // an escaped character such as \{ never opens or closes a group
      continue;
    }
    if (ch === "{") depth++;
    else if (ch === "}") {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * The content of the last `\boxed{...}` or `\fbox{...}` (nested braces matched; `\boxed 5` without
 * braces takes the next token), or null when there is none with balanced braces.
 */
export function lastBoxed(text: string): string | null {
  const pattern = /\\(?:boxed|fbox)(?![a-zA-Z])/g;
  let found: string | null = null;
  for (const match of text.matchAll(pattern)) {
    let i = match.index + match[0].length;
    while (text[i] === " ") i++;
    if (text[i] === "{") {
      const end = matchBrace(text, i);
      if (end !== -1) found = text.slice(i + 1, end - 1);
    } else {
      const token = /^[^\s$]+/.exec(text.slice(i));
      if (token) found = token[0].replace(/[.,;]+$/, "");
    }
  }
  return found;
}

/** The last piece of inline or display math: `$...$`, `$$...$$`, `\(...\)` or `\[...\]`. */
export function lastInlineMath(text: string): string | null {
  const pattern = /\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\]|\\\(([\s\S]+?)\\\)|(?<!\\)\$((?:\\\$|[^$])+?)(?<!\\)\$/g;
  let found: string | null = null;
  for (const match of text.matchAll(pattern)) {
    const body = match[1] ?? match[2] ?? match[3] ?? match[4];
    if (body !== undefined && body.trim() !== "") found = body.trim();
  }
  return found;
}

/** What follows the last "final answer is" / "answer is" / "answer:", up to the end of the sentence. */
export function answerPhrase(text: string): string | null {
  const pattern = /(?:final answer|answer)(?:\s+is|\s*:)\s*:?\s*([^\n]+)/gi;
  let found: string | null = null;
  for (const match of text.matchAll(pattern)) found = match[1] ?? null;
  if (found === null) return null;
  const sentence = found.replace(/\.\s.*$/, "").replace(/[.\s]+$/, "").trim();
  const math = lastInlineMath(sentence);
  return (math ?? sentence) || null;
}

/** The last number in the text (integers, decimals, simple fractions, with sign). */
export function lastNumber(text: string): string | null {
  const matches = text.match(/-?\d[\d,]*(?:\.\d+)?(?:\/\d+)?/g);
  if (!matches) return null;
  const last = matches[matches.length - 1] as string;
  return last.replace(/,$/, "");
}

export type AnswerFallback = "none" | "last-math" | "last-number";

export interface ExtractOptions {
  /** What to take when there is neither a boxed answer nor an "answer is" phrase. Default "none". */
  fallback?: AnswerFallback;
}

/**
 * The answer in a solution: the last `\boxed{}`/`\fbox{}`, else "final answer is ...", else the
 * fallback (none by default). Null when there is no answer.
 */
export function extractAnswer(text: string, options: ExtractOptions = {}): string | null {
  const boxed = lastBoxed(text);
  if (boxed !== null) return boxed.trim();
  const phrase = answerPhrase(text);
  if (phrase !== null) return phrase;
  switch (options.fallback ?? "none") {
    case "none":
      return null;
    case "last-math":
      return lastInlineMath(text);
    case "last-number":
      return lastNumber(text);
  }
}

/** True when a string reads as prose (several words outside math) rather than a bare answer. */
function looksLikeProse(text: string): boolean {
  const outsideMath = text
    .replace(/\$[^$]*\$|\\\([\s\S]*?\\\)|\\\[[\s\S]*?\\\]|\\text\{[^}]*\}/g, " ")
    .replace(/\\(?:begin|end)\{[^}]*\}|\\[a-zA-Z]+/g, " ");
  const words = outsideMath.match(/[A-Za-z]{2,}/g) ?? [];
  return words.length >= 4 || text.includes("\n");
}

/**
 * The answer to compare from either a bare answer or a whole text, the way Math-Verify reads it:
 * a boxed answer first, then the last math in `$...$`, `$$...$$`, `\(...\)`, then "answer is ...",
 * then the last number. A bare answer (no math delimiters, not prose) is returned as it is.
 */
export function answerFromText(text: string): string | null {
  const boxed = lastBoxed(text);
  if (boxed !== null) return boxed.trim();
  const math = lastInlineMath(text);
  if (math === null && !looksLikeProse(text)) return text.trim() === "" ? null : text.trim();
  return math ?? answerPhrase(text) ?? lastNumber(text);
}
