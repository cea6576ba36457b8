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
  return words.length >= 4 || text.includes("\n") || /answer\s*(?:is|:)/i.test(text);
}

export type ExtractionTarget = "latex" | "expr";

/**
 * What lies between two boxes that belong to one answer: `\boxed{1}, \boxed{2}`,
 * `\boxed{3} \text{ and } \boxed{5}`. Boxes joined by "or" are alternative forms of one answer
 * (`\boxed{x+11}` or `\boxed{11+x}`): the last one is taken.
 */
const BOX_GLUE = /^(?:\s|\$|\\[,;!:]|\\q?quad(?![a-zA-Z])|\\\[|\\\]|\\\(|\\\)|[,;]|\\text\{\s*(?:and|,)\s*\}|\band\b)*$/;

/** Every `\boxed{}` / `\fbox{}` with its position; neighbouring boxes joined only by glue form one answer. */
function boxedGroups(text: string): { answer: string; start: number; end: number }[] {
  const boxes: { start: number; end: number; content: string }[] = [];
  for (const match of text.matchAll(/\\(?:boxed|fbox)(?![a-zA-Z])\s*/g)) {
    const open = match.index + match[0].length;
    if (boxes.length > 0 && match.index < (boxes.at(-1) as { end: number }).end) continue; // nested box
    if (text[open] === "{") {
      const end = matchBrace(text, open);
      if (end !== -1) boxes.push({ start: match.index, end, content: text.slice(open + 1, end - 1).trim() });
    } else {
      const token = /^[^\s$]+/.exec(text.slice(open));
      if (token) boxes.push({ start: match.index, end: open + token[0].length, content: token[0].replace(/[.,;]+$/, "") });
    }
  }
  const groups: { answer: string; start: number; end: number }[] = [];
  let current: string[] = [];
  let start = 0;
  boxes.forEach((box, i) => {
    const previous = boxes[i - 1];
    if (previous && !BOX_GLUE.test(text.slice(previous.end, box.start))) {
      groups.push({ answer: current.join(", "), start, end: previous.end });
      current = [];
    }
    if (current.length === 0) start = box.start;
    current.push(box.content);
  });
  const last = boxes.at(-1);
  if (last) groups.push({ answer: current.join(", "), start, end: last.end });
  return groups;
}

/** Math in `$$...$$`, `\[...\]` (may span lines), `$...$` or `\(...\)` (one line), as Math-Verify reads it. */
const LATEX_SPAN = String.raw`\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\]|\\\(([^\n]+?)\\\)|(?<![\\$])\$((?:\\\$|[^$\n])+?)(?<!\\)\$`;

/**
 * A number as prose writes it: sign, thousands separated by commas or spaces, decimals, a fraction
 * a/b or a mixed number `4 4/9`, a percent sign or word. Not part of a word (`AZYUK2A` has none).
 */
const NUMBER = String.raw`(?<![A-Za-z\d.])(?:[-+](?=[\d.]))?(?=\.?\d)(?:\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?: \d{3})+(?![\d/])|\d+)?(?:[.,]\d+)?(?:(?<=\d) \d+\/\d+|\/\d+)?(?:\s?(?:%|\\%|percent(?:age)?\b|pct\b))?`;

interface Candidate {
  text: string;
  /** Where the candidate starts in the text. */
  start: number;
  /** Lower is preferred, as Math-Verify's extraction priorities. */
  priority: number;
  /** Where the candidate ends in the text: among equal priorities, the last one is preferred. */
  end: number;
}

function boxCandidates(text: string): Candidate[] {
  return boxedGroups(text).map((group) => ({ ...group, text: group.answer, priority: 0 }));
}

/** "final answer is $...$. I hope": as strong as a box. */
function finalAnswerCandidates(text: string): Candidate[] {
  const out: Candidate[] = [];
  const span = new RegExp(LATEX_SPAN, "y");
  for (const phrase of text.matchAll(/final answer is\s*:?\s*/gi)) {
    span.lastIndex = phrase.index + phrase[0].length;
    const match = span.exec(text);
    const body = (match?.[1] ?? match?.[2] ?? match?.[3] ?? match?.[4] ?? "").trim();
    if (match && body !== "" && /^\s*\.?\s*I hope/i.test(text.slice(span.lastIndex, span.lastIndex + 12))) {
      out.push({ text: body, priority: 0, start: match.index, end: span.lastIndex });
    }
  }
  return out;
}

/** How strongly the text before a piece of math marks it as the answer: "final answer is" (50), "answer is" (100), else 200. */
function phrasePriority(text: string, index: number): number {
  const before = text.slice(Math.max(0, index - 40), index);
  if (/final answer is\s*:?\s*$/i.test(before)) return 50;
  if (/answer(?: is|:)\s*:?\s*$/i.test(before)) return 100;
  return 200;
}

/** Every piece of math, ranked by the phrase before it. */
function mathCandidates(text: string): Candidate[] {
  const out: Candidate[] = [];
  for (const match of text.matchAll(new RegExp(LATEX_SPAN, "g"))) {
    const body = (match[1] ?? match[2] ?? match[3] ?? match[4] ?? "").trim();
    if (body === "") continue;
    out.push({ text: body, priority: phrasePriority(text, match.index), start: match.index, end: match.index + match[0].length });
  }
  return out;
}

/**
 * `\(...\)` spread over lines. Math-Verify's LaTeX target does not read it (nor `$...$` over lines,
 * where a `$` may be a currency sign), but these delimiters are unambiguous: the expression target
 * reads its content whole, as the answer, rather than a number out of it (`\frac{10}{9}`, not 9).
 */
function multilineParenCandidates(text: string): Candidate[] {
  return [...text.matchAll(/\\\(([\s\S]*?)\\\)/g)]
    .filter((match) => (match[1] as string).includes("\n") && (match[1] as string).trim() !== "")
    .map((match) => ({ text: (match[1] as string).trim(), priority: phrasePriority(text, match.index), start: match.index, end: match.index + match[0].length }));
}

function numbersIn(text: string, offset: number): { text: string; start: number; end: number }[] {
  return [...text.matchAll(new RegExp(NUMBER, "g"))].map((match) => ({ text: match[0].trim(), start: offset + match.index, end: offset + match.index + match[0].length }));
}

function exprCandidates(text: string): Candidate[] {
  const out: Candidate[] = [];
  // "Final answer: the largest $n$ is 34." / "the answer is 4 4/9.": the number after the last "is".
  for (const match of text.matchAll(/(?:final answer|answer)\s*(?:is|:)\s*:?/gi)) {
    const from = match.index + match[0].length;
    const sentence = /^[\s\S]*?(?=\.(?:\s|$)|\n|<\||$)/.exec(text.slice(from))?.[0] ?? "";
    const is = sentence.lastIndexOf(" is ");
    const tail = is === -1 ? 0 : is + 4;
    const number = numbersIn(sentence.slice(tail), from + tail)[0];
    if (number) out.push({ ...number, priority: /final/i.test(match[0]) ? 50 : 100 });
  }
  const last = numbersIn(text, 0).at(-1);
  if (last) out.push({ ...last, priority: 200 });
  return out;
}

/**
 * The answers to try from either a bare answer or a whole text, best first, the way Math-Verify
 * reads them: with the "latex" target, boxed answers (neighbouring boxes form one answer) and
 * "final answer is $...$. I hope" first, then "final answer is $...$", "answer is $...$", then the
 * last math; with the "expr" target, the number after "final answer ... is", then the last number.
 * Equal priorities prefer the later one in the text. A bare answer (no math delimiters, not prose)
 * is returned as it is; with the expression target alone, space-separated numbers give the last one.
 */
export function answerCandidates(text: string, targets: readonly ExtractionTarget[] = ["latex", "expr"]): string[] {
  const latex = targets.includes("latex");
  const expr = targets.includes("expr");
  const delimited = /(?<!\\)\$|\\\(|\\\[|\\boxed|\\fbox/.test(text);
  const ranked = (candidates: Candidate[]) =>
    [...new Set(candidates.sort((a, b) => a.priority - b.priority || b.end - a.end).map((c) => c.text))].slice(0, 4);
  if (!delimited && !looksLikeProse(text)) {
    const bare = text.trim();
    if (bare === "") return [];
    if (latex) return [bare];
    // Space-separated numbers only (`4 4/9 2`, `11.0 4/9`): the expression target takes the last.
    const numbers = numbersIn(bare, 0);
    if (numbers.length > 0 && bare.replace(new RegExp(NUMBER, "g"), "").trim() === "") return [(numbers.at(-1) as { text: string }).text];
    if (/^[\s\d.,+\-*/^()%]+$/.test(bare)) return [bare];
    return exprCandidates(bare).map((c) => c.text);
  }
  if (latex) {
    // Boxes and "final answer is $...$. I hope" outrank everything else: when there are some, the
    // rest of the text need not be read.
    const strongest = [...boxCandidates(text), ...finalAnswerCandidates(text)];
    if (strongest.length > 0) return ranked(strongest);
  }
  const spans = [...(latex ? mathCandidates(text) : []), ...(expr ? multilineParenCandidates(text) : [])];
  // A number inside math is that math's business: `$\sum_{k=0}^n k$` does not supply a 0.
  const inside = (c: Candidate) => spans.some((span) => c.start >= span.start && c.end <= span.end);
  const candidates = [...spans, ...(expr ? exprCandidates(text).filter((c) => !inside(c)) : [])];
  return ranked(candidates);
}

/** The answer to compare from a bare answer or a whole text: the first of `answerCandidates`. */
export function answerFromText(text: string): string | null {
  return answerCandidates(text)[0] ?? null;
}
