/**
 * A process reward model's own rendering of a step, mirroring models/train/render.py character for
 * character (test/prm-rendering.test.ts checks it against cases that script wrote). The policy
 * writes `62 + 30 = 92`; a PRM trained on the rendering reads the step followed by a columnar layout
 * of each integer check in it, least significant digit first, so that a recurrent verifier meets
 * every carry before the digit that depends on it:
 *
 *     62 + 30 = 92   ->   62 + 30 = 92 | ++++n 202 639;
 *
 * render.py documents the layout. The renderer only reorders and pads the digits as written; it
 * never computes a sum, difference or product (the one comparison, which operand's magnitude is
 * larger, fixes which is written first).
 *
 * Python's semantics are kept where JavaScript's differ: `\d` is any Unicode decimal digit (`\p{Nd}`),
 * lengths, slices and string order count code points, and `rstrip()` strips Python's whitespace.
 */

/** `ordinary`: the step as written; `columns`: with the layout of its checks; `overlap`: each column preceded by the previous one. */
export type PrmRendering = "ordinary" | "columns" | "overlap";
export const PRM_RENDERINGS = ["ordinary", "columns", "overlap"] as const satisfies readonly PrmRendering[];

const INT = String.raw`-?\p{Nd}+`;
// `a op b = c`, not part of a longer expression (no digit, `/`, `x` or `)` right before or after)
const BINARY = new RegExp(String.raw`(?<![\p{Nd}/x)(])(${INT}) ([-+*]) (${INT}) = (${INT})(?![\p{Nd}/x(])`, "gu");
const QUOTIENT = new RegExp(String.raw`(?<![\p{Nd}/x)(])(${INT}) / \(?(${INT})\)? = (${INT})(?![\p{Nd}/x(])`, "gu");
const FRACTION_SUM = new RegExp(String.raw`(${INT})/(\p{Nd}+) ([-+]) (\p{Nd}+)/(\p{Nd}+) = (${INT})/(\p{Nd}+)`, "gu");
const SEP = " | ";
/** Python's whitespace (str.isspace()): JavaScript's `\s` less \ufeff, with \x1c-\x1f and \x85. */
const PYTHON_SPACE = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

/** An integer check `a op b = c`, each number as written. */
type Check = [a: string, op: string, b: string, c: string];

/** Python's string order (by code point; JavaScript's `<` compares UTF-16 code units). */
function codePointsBefore(x: string[], y: string[]): boolean {
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const [p, q] = [x[i]?.codePointAt(0) ?? 0, y[i]?.codePointAt(0) ?? 0];
    if (p !== q) return p < q;
  }
  return x.length < y.length;
}

/** Whether to swap the magnitudes so the first is the larger (+, -) or the longer (*). */
function magnitudeOrder(x: string[], y: string[], op: string): boolean {
  if (op === "*") return x.length < y.length;
  return x.length !== y.length ? x.length < y.length : codePointsBefore(x, y);
}

/** Python's `text.rstrip()`. */
function rstrip(text: string): string {
  let end = text.length;
  while (end > 0 && PYTHON_SPACE.includes(text.charAt(end - 1))) end--;
  return text.slice(0, end);
}

const sign = (v: string) => (v.startsWith("-") ? "-" : "+");

const magnitude = (v: string) => Array.from(v.replace(/^-+/, ""));

/** The columnar layout of `a op b = c` (render.py's render_check, without the column offsets). */
function renderCheck([a, op, b, c]: Check, overlap = false): string {
  let x = magnitude(a);
  let y = magnitude(b);
  const swap = magnitudeOrder(x, y, op);
  if (swap) [x, y] = [y, x];
  // Least significant digit first.
  const [X, Y, Z] = [x.reverse(), y.reverse(), magnitude(c).reverse()];
  const n = op === "*" ? Math.max(X.length + Y.length, Z.length) : Math.max(X.length, Y.length, Z.length);
  const digit = (s: string[], i: number) => s[i] ?? "0";
  let text = op + sign(a) + sign(b) + sign(c) + (swap ? "s" : "n");
  let prev: string | null = null;
  for (let i = 0; i < n; i++) {
    const col = op === "*" ? Y.map((yj, j) => digit(X, i - j) + yj).join("") + digit(Z, i) : digit(X, i) + digit(Y, i) + digit(Z, i);
    text += " " + (overlap ? (prev ?? "0".repeat(Array.from(col).length)) + col : col);
    prev = col;
  }
  return text + ";";
}

/** The capture groups of a match (every group of these patterns takes part in a match). */
const groups = <T extends string[]>(m: RegExpExecArray) => m.slice(1) as T;

/** The integer checks in a step, in the order they appear (render.py's checks_of). */
function checksOf(step: string): Check[] {
  const found: [start: number, check: Check][] = [];
  for (const m of step.matchAll(FRACTION_SUM)) {
    const [a, m1, op, b, m2, c, m3] = groups<[string, string, string, string, string, string, string]>(m);
    if (m1 === m2 && m2 === m3) found.push([m.index, [a, op, b, c]]);
  }
  for (const m of step.matchAll(BINARY)) {
    // render.py's rule, kept exactly: no check starting within 40 characters after an earlier one with a `/` between (the integers of a fraction sum).
    const between = (s: number) => step.slice(s, m.index);
    if (!found.some(([s]) => s <= m.index && Array.from(between(s)).length < 40 && between(s).includes("/"))) found.push([m.index, groups<Check>(m)]);
  }
  for (const m of step.matchAll(QUOTIENT)) {
    const [p, q, r] = groups<[string, string, string]>(m);
    found.push([m.index, [r, "*", q, p]]);
  }
  // Starts are distinct (no two patterns match at one place), so the start alone orders them.
  return found.sort((u, v) => u[0] - v[0]).map(([, check]) => check);
}

/** The PRM's text for one step (render.py's render_step): `ordinary` keeps the step as written, less trailing whitespace. */
export function renderStep(step: string, mode: PrmRendering): string {
  const text = rstrip(step);
  if (mode === "ordinary") return text;
  return text + checksOf(text).map((check) => SEP + renderCheck(check, mode === "overlap")).join("");
}
