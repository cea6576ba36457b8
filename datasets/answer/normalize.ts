/**
 * String normalization of an answer before comparison, after the MATH benchmark's `strip_string`
 * and Math-Verify's normalization: formatting that never changes the value is removed, so that
 * `\dfrac12`, `\frac{1}{2}` and `$\frac{1}{2}$.` all read `\frac{1}{2}`.
 */
import { matchBrace } from "./extract.js";

export interface NormalizedAnswer {
  /** The normalized LaTeX, ready to compare as a string or to parse. */
  latex: string;
  /** True when the answer carried a percent sign or word (removed from `latex`). */
  percent: boolean;
  /** Why the answer has no value (a mixed number such as `4 4/0`), if so. */
  invalid?: string;
}

export interface NormalizeOptions {
  /**
   * Read a comma between digits that is not a thousands separator as a decimal comma (`1,22` is
   * 1.22), as Math-Verify's expression target does. Otherwise `1,22` is the list 1, 22.
   */
  decimalComma?: boolean;
}

const UNICODE: [RegExp, string][] = [
  [/−|–/g, "-"],
  [/×/g, "\\times "],
  [/·/g, "\\cdot "],
  [/π/g, "\\pi "],
  [/∞/g, "\\infty "],
  [/√/g, "\\sqrt"],
  [/≤/g, "\\leq "],
  [/≥/g, "\\geq "],
  [/≠/g, "\\neq "],
  [/°/g, ""],
];

/** Commands whose argument is plain text: units, words, or a label around a value. */
const TEXT_COMMANDS = /\\(?:text|textbf|textit|textrm|textnormal|textsf|texttt|mbox|mathrm|mathbf|mathit|boldsymbol|bf|rm)\s*(?=\{)/g;

/** Replaces each `\cmd{...}` matched by `pattern` by `replace(content, before)`. */
function replaceCommandArguments(
  text: string,
  pattern: RegExp,
  replace: (content: string, before: string) => string,
): string {
  let out = "";
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index < last) continue; // nested inside an argument we already replaced
    const open = match.index + match[0].length;
    const end = matchBrace(text, open);
    if (end === -1) break;
    out += text.slice(last, match.index);
    out += replace(text.slice(open + 1, end - 1), out);
    last = end;
  }
  return out + text.slice(last);
}

/**
 * `\text{cm}` after a value is a unit and goes; `\text{Monday}` alone is the answer and stays as
 * its words; `\text{ or }` / `\text{ and }` between values are separators.
 */
function unwrapText(text: string): string {
  return replaceCommandArguments(text, TEXT_COMMANDS, (content, before) => {
    const words = content.trim();
    if (/^(?:or|and)$/i.test(words)) return ",";
    const isUnit = /^[A-Za-z][A-Za-z\s.^\d{}]*$/.test(words) && /[^\s+\-*/=(,^_{]\s*$/.test(before);
    return isUnit ? " " : content;
  });
}

/** `\frac12` → `\frac{1}{2}`, `\frac1{x}` → `\frac{1}{x}` (single-token arguments get braces). */
function braceFractions(text: string): string {
  return text
    .replace(/\\frac\s*(\d)\s*(\d)/g, "\\frac{$1}{$2}")
    .replace(/\\frac\s*(\d|[a-zA-Z])\s*\{/g, "\\frac{$1}{")
    .replace(/\\frac\s*(\{[^{}]*\})\s*(\d|[a-zA-Z])(?![a-zA-Z])/g, "\\frac$1{$2}");
}

/** `\sqrt2` → `\sqrt{2}`, `\sqrt x` → `\sqrt{x}`. */
function braceRoots(text: string): string {
  return text.replace(/\\sqrt\s*(\d|[a-zA-Z])(?![a-zA-Z])/g, "\\sqrt{$1}");
}

/** Removes one pair of braces around the whole string, if they match each other. */
function stripOuterBraces(text: string): string {
  while (text.startsWith("{") && matchBrace(text, 0) === text.length) text = text.slice(1, -1).trim();
  return text;
}

/**
 * Drops a leading `x =`, `f(x) =`, `y_1 =` when it is the only `=`: MATH answers are values. The
 * comparison applies it only when the other answer is not an equation itself.
 */
const NAME = String.raw`(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?`;
/** x, f(x), y_1, a_{37}, and a tuple of names: (p,q) = (3,2). */
const LABEL = new RegExp(String.raw`^(?:${NAME}(?:\(${NAME}\))?|\(${NAME}(?:,${NAME})+\))$`);

export function stripVariablePrefix(text: string): string {
  const equals = topLevel(text, "=");
  if (equals.length !== 1) return text;
  const at = equals[0] as number;
  return LABEL.test(text.slice(0, at).trim()) ? text.slice(at + 1).trim() : text;
}

/** Positions of `char` outside braces and brackets (`\sum_{i=1}^{3} i` has no top-level `=`). */
export function topLevel(text: string, char: string): number[] {
  const out: number[] = [];
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === "\\") i++;
    else if ("{([".includes(ch)) depth++;
    else if ("})]".includes(ch)) depth--;
    else if (ch === char && depth === 0) out.push(i);
  }
  return out;
}

const BRACED = String.raw`\{((?:[^{}]|\{[^{}]*\})*)\}`;
const BINOMIAL = new RegExp(String.raw`\\binom\s*${BRACED}\s*${BRACED}`, "g");

/** `\binom{n}{k}` as `\frac{n!}{k!(n-k)!}`, which the LaTeX parser reads. */
function expandBinomials(text: string): string {
  return text.includes("\\binom") ? text.replace(BINOMIAL, "\\frac{({$1})!}{({$2})!(({$1})-({$2}))!}") : text;
}

/** Removes whitespace, except the single space that keeps a command apart from a letter (`\pi r`). */
function squeezeSpaces(text: string): string {
  return text.replace(/(\\[a-zA-Z]+)\s+(?=[a-zA-Z])/g, "$1\uE000").replace(/\s+/g, "").replace(/\uE000/g, " ");
}

/** Commands that a doubled backslash (`\\frac`, from over-escaped JSON) still means. */
const DOUBLED = /(?<!\\)\\\\(?=(?:left|right|[dtc]?frac|sqrt|pi|cdot|times|infty|in|le|ge|leq|geq|neq|pm|text|mathrm|boxed|circ)(?![a-zA-Z]))/g;

/** `4 4/9` is 4 + 4/9 when the fraction is proper; `4 4/0` and `11 7/6` have no value. */
function mixedNumber(text: string): { latex: string } | { invalid: string } | null {
  const match = /^([-+]?)(\d{1,3}(?: \d{3})+|\d+) (\d+)\/(\d+)$/.exec(text);
  if (!match) return null;
  const [, sign, whole = "", numerator = "", denominator = ""] = match;
  if (Number(denominator) === 0 || Number(numerator) >= Number(denominator)) return { invalid: `${text} is not a mixed number` };
  return { latex: `${sign === "-" ? "-" : ""}(${whole.replace(/ /g, "")}+\\frac{${numerator}}{${denominator}})` };
}

export function normalizeAnswer(raw: string, options: NormalizeOptions = {}): NormalizedAnswer {
  let s = raw.trim().replace(DOUBLED, "\\");
  for (const [pattern, replacement] of UNICODE) s = s.replace(pattern, replacement);
  s = s
    .replace(/\n/g, " ")
    .replace(/\\(?:displaystyle|textstyle|boxed|fbox)(?![a-zA-Z])/g, "")
    .replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![a-zA-Z])\s*\.?/g, "")
    .replace(/\\[dtc]frac/g, "\\frac")
    .replace(/\\[dt]binom/g, "\\binom")
    // 12,\!345 and 14{,}916 group thousands; 0{,}5 is a decimal comma.
    .replace(/,\\!\s*/g, ",")
    .replace(/(\d)\s*\{,\s*\}\s*(?=\d{3}(?!\d))/g, "$1")
    .replace(/(\d)\s*\{,\s*\}\s*(?=\d)/g, "$1.")
    .replace(/(?<!\\)\\(?:[!,;:]|q?quad(?![a-zA-Z])| )/g, "")
    .replace(/~/g, " ")
    .replace(/\\\$|\$/g, "")
    .replace(/>=/g, "\\geq ")
    .replace(/<=/g, "\\leq ")
    // `x != 3` (spaced: `3!=6` is a factorial).
    .replace(/\s+!=|!=\s+/g, "\\neq ");

  // Degrees are a unit in MATH answers: 30^\circ and 30 are the same answer.
  s = s.replace(/\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|\bdegrees?\b/g, "");

  s = s.replace(/(\d)\s*(?:percent(?:age)?|pct)\b/g, "$1\\%");
  const percent = /\\?%/.test(s);
  s = s.replace(/\\?%|\\percent\b/g, "");

  // A unit with an exponent (\text{ cm}^2) is still a unit: move the exponent inside the text.
  s = s.replace(/(\\(?:text|mbox|mathrm)\s*\{[^{}]*)\}\s*\^\s*\{?(\d)\}?/g, "$1^$2}");
  s = unwrapText(s);
  // Plain unit words after a number: "5 cm", "12 square inches".
  s = s.replace(/^(-?[\d.,/]+)\s+(?:[a-zA-Z]{2,}\s*)+$/, "$1");
  // "19, 46, and 82", "12 and 13": a list.
  s = s.replace(/\s*,?\s*\band\b\s*/g, ",").replace(/,(?:\s*,)+/g, ",");

  s = s
    .replace(/\\(?:le|leqslant)(?![a-zA-Z])/g, "\\leq")
    .replace(/\\(?:ge|geqslant)(?![a-zA-Z])/g, "\\geq")
    .replace(/\\ne(?![a-zA-Z])/g, "\\neq")
    .replace(/\\lt(?![a-zA-Z])/g, "<")
    .replace(/\\gt(?![a-zA-Z])/g, ">")
    .replace(/\\varnothing/g, "\\emptyset")
    .replace(/\\inf(?:inity)?(?![a-zA-Z])|(?<!\\)\binf(?:inity)?\b/g, "\\infty")
    .replace(/\+\s*\\infty/g, "\\infty");

  s = s.trim().replace(/(?:\\?[.,;])+$|\\$/, "").trim();
  s = s.replace(/^[a-zA-Z]\s*\\in\s*/, "");
  s = stripOuterBraces(s);
  // A matrix inside brackets, (\begin{pmatrix}...\end{pmatrix}) or [\begin{array}...\end{array}], is the matrix.
  s = s.replace(/^[[(]\s*(\\begin\{(\w+\*?)\}[\s\S]*\\end\{\2\})\s*[\])]$/, "$1");

  const mixed = mixedNumber(s);
  if (mixed && "invalid" in mixed) return { latex: s, percent, invalid: mixed.invalid };
  if (mixed) s = mixed.latex;
  // Thousands separated by spaces or commas: 1 000 and 1,000,000 are one number, not a list.
  if (/^[-+]?\d{1,3}(?: \d{3})+(?:\.\d+)?$/.test(s)) s = s.replace(/ /g, "");
  if (options.decimalComma && /^[-+]?\d+,\d+$/.test(s) && !/^[-+]?[1-9]\d{0,2}(?:,\d{3})+$/.test(s)) s = s.replace(",", ".");
  if (/^[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$/.test(s)) s = s.replace(/,/g, "");

  s = squeezeSpaces(s);
  // F_kF_{n-k-1}: a one-character subscript in braces, so that the next factor is not read into it.
  s = s.replace(/_([a-zA-Z0-9])/g, "_{$1}");
  s = expandBinomials(braceRoots(braceFractions(s)));
  s = s.replace(/(^|[^\d])\.(\d)/g, "$10.$2");
  // (11)4/9 is a product, not the mixed number 11 4/9 the parser would read.
  s = s.replace(/\)(?=\d)/g, ")\\cdot ");
  // A plain a/b of integers is the fraction \frac{a}{b}.
  s = s.replace(/^(-?)(\d+)\/(\d+)$/, "$1\\frac{$2}{$3}");
  return { latex: stripOuterBraces(s), percent };
}
