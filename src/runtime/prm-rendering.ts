/**
 * A process reward model's own rendering of a step, mirroring models/train/render.py character for
 * character (test/prm-rendering.test.ts checks it against cases that script wrote). The policy
 * writes `62 + 30 = 92`; a PRM trained on the rendering reads the step followed by a columnar layout
 * of each integer check in it, least significant digit first, so that a recurrent verifier meets
 * every carry before the digit that depends on it:
 *
 *     62 + 30 = 92   ->   62 + 30 = 92 | ++++n 202 639;
 *
 * In the `equations` rendering a step of a linear equation also gets the checks that pair it with
 * the line before it (the previous step, or the problem for the first): a moved term must reappear
 * with its sign flipped (`3x - 37 = 17` then `3x = 17 + 37 = 54`: `-37 + 37 = 0`), combined terms
 * must add up (`4x - 2x = -5 + 3` then `2x = -2`: `4 - 2 = 2`, `-5 + 3 = -2`), a distributed factor
 * must multiply out (`7(x - 15)` then `7x - 105`: `7 * -15 = -105`).
 *
 * The `grounded` rendering is `equations` plus copy checks for `Compute` problems: each number on a
 * step's first side is laid beside the number it should have been copied from, by position (the
 * previous step's result first, then the problem's numbers not yet used), in the layout of a moved
 * term: `6613 + 410 = 7023` where the problem has `+ 401` gets `410 + -401 = 0`.
 *
 * The `fractions` rendering is `grounded` plus a ratio check for each fraction a step converts or
 * simplifies: a step whose first two sides are sums with the same operators, at least one term a
 * fraction, pairs their terms in order (`11/14 = 66/84`), laid out as the cross products 11 * 84 and
 * 66 * 14 in shared columns: `/++ 1408=6401 1418=6461 0418=0461 0408=0401;`.
 *
 * render.py documents the layout. The renderer only reorders and pads the digits as written; it
 * never computes a sum, difference or product (the one comparison, which operand's magnitude is
 * larger, fixes which is written first).
 *
 * Python's semantics are kept where JavaScript's differ: `\d` is any Unicode decimal digit (`\p{Nd}`),
 * lengths, slices and string order count code points, and `rstrip()` strips Python's whitespace.
 */

/**
 * `ordinary`: the step as written; `columns`: with the layout of its checks; `overlap`: each column
 * preceded by the previous one; `equations`: `columns` plus the checks that pair an equation's step with the line before it;
 * `grounded`: `equations` plus the copy checks of a `Compute` problem's steps; `fractions`: `grounded`
 * plus the ratio checks of a step that converts or simplifies fractions.
 */
export type PrmRendering = "ordinary" | "columns" | "overlap" | "equations" | "grounded" | "fractions";
export const PRM_RENDERINGS = ["ordinary", "columns", "overlap", "equations", "grounded", "fractions"] as const satisfies readonly PrmRendering[];

const INT = String.raw`-?\p{Nd}+`;
// `a op b = c`, not part of a longer expression (no digit, `/`, `x` or `)` right before or after)
const BINARY = new RegExp(String.raw`(?<![\p{Nd}/x)(])(${INT}) ([-+*]) (${INT}) = (${INT})(?![\p{Nd}/x(])`, "gu");
const QUOTIENT = new RegExp(String.raw`(?<![\p{Nd}/x)(])(${INT}) / \(?(${INT})\)? = (${INT})(?![\p{Nd}/x(])`, "gu");
const FRACTION_SUM = new RegExp(String.raw`(${INT})/(\p{Nd}+) ([-+]) (\p{Nd}+)/(\p{Nd}+) = (${INT})/(\p{Nd}+)`, "gu");
const SEP = " | ";
const PROBLEM = "Solve for x: ";
// `3x - 7`, `-x + 2`, `-5 + 3`, `2x` (a whole side)
const SUM = new RegExp(String.raw`^-?(?:\p{Nd}+x?|x)(?: [-+] (?:\p{Nd}+x?|x))*$`, "u");
// `7(x - 15)` (a whole side)
const DISTRIBUTE = new RegExp(String.raw`^(-?\p{Nd}+)\(x ([-+]) (\p{Nd}+)\)$`, "u");
const COMPUTE = "Compute ";
// a number as written: `-104`, `73/15`; not the operator of `5 - 3`
const NUMBER = new RegExp(String.raw`(?<![\p{Nd}/-])-?\p{Nd}+(?:/\p{Nd}+)?(?![\p{Nd}/])`, "gu");
// a term of a sum of fractions: `11/14`, `-61/7`, `2` (a whole term)
const TERM = new RegExp(String.raw`^-?\p{Nd}+(?:/\p{Nd}+)?$`, "u");
const BOXED = new RegExp(String.raw`\\boxed\{(-?)(?:\\d?frac\{(\p{Nd}+)\}\{(\p{Nd}+)\}|(\p{Nd}+))\}`, "u");
/** Python's whitespace (str.isspace()): JavaScript's `\s` less \ufeff, with \x1c-\x1f and \x85. */
const PYTHON_SPACE = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

/** A check `a op b = c`, each number as written: integers, or for a ratio check (op `/`) c a fraction `p/q` or an integer. */
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
function renderCheck(check: Check, overlap = false): string {
  const [a, op, b, c] = check;
  if (op === "/") return renderRatio(check);
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

/**
 * Column i (0 = units) of the product of magnitudes x and y, the longer first: every digit pair whose
 * product lands in column i, zeros beyond either number (render.py's product_columns).
 */
function productColumns(x: string[], y: string[], n: number): string[] {
  const [X, Y] = (x.length < y.length ? [y, x] : [x, y]).map((s) => [...s].reverse()) as [string[], string[]];
  return Array.from({ length: n }, (_, i) => Y.map((yj, j) => (X[i - j] ?? "0") + yj).join(""));
}

/** The layout of `a / b = p/q` (an integer c is over 1): the cross products a * q and p * b in shared columns (render.py's render_ratio). */
function renderRatio([a, , b, c]: Check): string {
  const [p, q] = [...c.split("/"), "1"] as [string, string];
  const [x, y, z, w] = [magnitude(a), Array.from(q), magnitude(p), Array.from(b)];
  const n = Math.max(x.length + y.length, z.length + w.length);
  const right = productColumns(z, w, n);
  return "/" + sign(a) + sign(p) + productColumns(x, y, n).map((col, i) => " " + col + "=" + (right[i] as string)).join("") + ";";
}

/** A side `11/14 - 5/12` split on single spaces into its terms and operators; undefined when it is not such a sum. */
function fractionSum(side: string): { terms: string[]; ops: string[] } | undefined {
  const pieces = side.split(" ");
  const terms = pieces.filter((_, i) => i % 2 === 0);
  const ops = pieces.filter((_, i) => i % 2 === 1);
  if (pieces.length % 2 === 0 || !terms.every((t) => TERM.test(t)) || ops.some((o) => o !== "+" && o !== "-")) return undefined;
  return { terms, ops };
}

/**
 * The checks `a / b = p/q` of a step that converts or simplifies fractions (render.py's
 * ratio_checks): its first two sides' terms paired in order, when the two sides have the same
 * operators and at least one fraction (an integer term is over 1).
 */
function ratioChecks(step: string): Check[] {
  const sides = step.split(" = ");
  if (sides.length < 2) return [];
  const [left, right] = sides.slice(0, 2).map(fractionSum);
  if (!left || !right || left.terms.length !== right.terms.length || left.ops.some((o, i) => o !== right.ops[i])) return [];
  if (![...left.terms, ...right.terms].some((t) => t.includes("/"))) return [];
  return left.terms.map((t, i) => {
    const [num, den] = (t + "/1").split("/") as [string, string];
    return [num, "/", den, right.terms[i] as string];
  });
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

/** The sides of an equation line (a step, or the problem `Solve for x: ... .`); undefined without `=` (render.py's equation_sides). */
function equationSides(line: string): string[] | undefined {
  let text = rstrip(line);
  if (text.startsWith(PROBLEM)) text = text.slice(PROBLEM.length);
  const sides = (text.endsWith(".") ? text.slice(0, -1) : text).split(" = ");
  return sides.length > 1 ? sides : undefined;
}

/** A term of a sum: its coefficient as written, with its sign (`x`: 1, `-x`: -1), and whether it is an x term. */
type Term = [coef: string, isX: boolean];

/** The terms of a sum `3x - 7`; undefined when the side is not such a sum (render.py's terms). */
function terms(side: string): Term[] | undefined {
  if (!SUM.test(side)) return undefined;
  return side
    .replaceAll(" + ", " ")
    .replaceAll(" - ", " -")
    .split(" ")
    .map((t) => {
      const isX = t.endsWith("x");
      const coef = isX ? t.slice(0, -1) : t;
      return [coef === "" || coef === "-" ? coef + "1" : coef, isX];
    });
}

const sameTerms = (p: readonly Term[], q: readonly Term[]) => p.length === q.length && p.every(([coef, isX], i) => q[i]?.[0] === coef && q[i]?.[1] === isX);

/**
 * The checks that relate a step to the previous line of a linear equation (render.py's
 * pairing_checks, which documents the rules): a distributed factor, moved terms, combined terms;
 * none when the step has another form.
 */
function pairingChecks(previous: string, step: string): Check[] {
  const prev = equationSides(previous);
  const cur = equationSides(step);
  if (!prev || !cur) return [];
  const before = [prev[0] as string, prev[prev.length - 1] as string];
  const after = [cur[0] as string, cur[1] as string];
  const products = before.map((side) => DISTRIBUTE.exec(side));
  if (products.some((m) => m)) {
    // Distributing: `k(x +/- m)` then `kx +/- n`, the other side copied.
    const checks: Check[] = [];
    for (const [i, m] of products.entries()) {
      if (!m) {
        if (before[i] !== after[i]) return [];
        continue;
      }
      const [k, sign, v] = groups<[string, string, string]>(m);
      const [kx, n, ...more] = terms(after[i] as string) ?? [];
      if (!kx || !n || more.length > 0 || kx[0] !== k || !kx[1] || n[1]) return [];
      checks.push([k, "*", (sign === "-" ? "-" : "") + v, n[0]]);
    }
    return checks;
  }
  const sums = [...before, ...after].map(terms);
  const [left, right, newLeft, newRight] = sums;
  if (!left || !right || !newLeft || !newRight) return [];
  const keptX = left.filter((t) => t[1]);
  const movedC = left.filter((t) => !t[1]);
  const movedX = right.filter((t) => t[1]);
  const keptC = right.filter((t) => !t[1]);
  if (movedX.length > 0 || movedC.length > 0) {
    // Moving terms: `keptX movedX = keptC movedC`, each moved term b then b' checked as `b + b' = 0`.
    if (
      !sameTerms(newLeft.slice(0, keptX.length), keptX) ||
      !sameTerms(newRight.slice(0, keptC.length), keptC) ||
      newLeft.length !== keptX.length + movedX.length ||
      newRight.length !== keptC.length + movedC.length ||
      !newLeft.every((t) => t[1]) ||
      newRight.some((t) => t[1])
    ) {
      return [];
    }
    const movedTo = [...newLeft.slice(keptX.length), ...newRight.slice(keptC.length)];
    return [...movedX, ...movedC].map(([b], i) => [b, "+", movedTo[i]?.[0] as string, "0"]);
  }
  // Combining like terms: each side as before, or its two terms `a +/- b` made one.
  const checks: Check[] = [];
  for (const [p, c] of [
    [left, newLeft],
    [right, newRight],
  ] as const) {
    if (sameTerms(p, c)) continue;
    const [first, second] = p;
    if (p.length !== 2 || c.length !== 1 || !first || !second || c[0]?.[1] !== first[1]) return [];
    checks.push([first[0], second[0].startsWith("-") ? "-" : "+", second[0].replace(/^-+/, ""), c[0][0]]);
  }
  return checks;
}

function numbersOf(text: string): string[] {
  return [...text.matchAll(NUMBER)].map((match) => match[0]);
}

function negate(value: string): string {
  return value.startsWith("-") ? value.slice(1) : value === "0" ? value : "-" + value;
}

/** The numbers a step copies (render.py's copied_numbers): those on its first side, or the boxed answer. */
function copiedNumbers(step: string): string[] {
  const boxed = BOXED.exec(step);
  if (boxed) {
    const [, sign = "", num, den, whole] = boxed;
    return [sign + (whole ?? `${num}/${den}`)];
  }
  const at = step.indexOf(" = ");
  return at < 0 ? [] : numbersOf(step.slice(0, at));
}

/** Checks `b' + -b = 0` laying each number a step copies beside its source, by position (copy_checks). */
function copyChecks(step: string, sources: readonly string[]): Check[] {
  const checks: Check[] = [];
  copiedNumbers(step).forEach((copy, i) => {
    const source = sources[i];
    if (source === undefined) return;
    const [a, b] = [copy.split("/"), source.split("/")];
    while (a.length < b.length) a.push("1");
    while (b.length < a.length) b.push("1");
    a.forEach((x, k) => checks.push([x, "+", negate(b[k] as string), "0"]));
  });
  return checks;
}

/**
 * The PRM's text for one step (render.py's render_step): `ordinary` keeps the step as written, less
 * trailing whitespace; `fractions` adds the step's ratio checks to its own; `equations`, `grounded`
 * and `fractions` also pair the step with `previous`, the line before it (the previous step, or the
 * problem for the first step; none when undefined); `grounded` and `fractions` lay the numbers the
 * step copies beside `sources` (see renderSteps).
 */
export function renderStep(step: string, mode: PrmRendering, previous?: string, sources?: readonly string[]): string {
  const text = rstrip(step);
  if (mode === "ordinary") return text;
  const checks = checksOf(text);
  if (mode === "fractions") checks.push(...ratioChecks(text));
  if ((mode === "equations" || mode === "grounded" || mode === "fractions") && previous !== undefined) checks.push(...pairingChecks(previous, text));
  if ((mode === "grounded" || mode === "fractions") && sources !== undefined && sources.length > 0) checks.push(...copyChecks(text, sources));
  return text + checks.map((check) => SEP + renderCheck(check, mode === "overlap")).join("");
}

/**
 * The steps of one solution, each rendered as render.py's render_solution renders it: in modes
 * `equations`, `grounded` and `fractions` each step is paired with the step before it that is not
 * blank (render_solution drops blank steps), the first with the problem. In modes `grounded` and
 * `fractions` a `Compute` problem's step copies from the numbers of the previous step's last side,
 * then from the problem's numbers that no earlier step used (render.py's copy_sources).
 */
export function renderSteps(problem: string, steps: readonly string[], mode: PrmRendering): string[] {
  const compute = problem.startsWith(COMPUTE);
  let previous = problem;
  let unused = compute ? numbersOf(problem.slice(COMPUTE.length)) : [];
  let previousResult: string[] = [];
  return steps.map((step) => {
    const stripped = rstrip(step);
    if (stripped === "") return renderStep(step, mode, previous);
    const text = renderStep(step, mode, previous, compute ? [...previousResult, ...unused] : undefined);
    previous = step;
    if (compute && !stripped.includes("\\boxed")) {
      unused = unused.slice(Math.max(0, copiedNumbers(stripped).length - previousResult.length));
      const at = stripped.lastIndexOf(" = ");
      previousResult = numbersOf(at < 0 ? stripped : stripped.slice(at + 3));
    }
    return text;
  });
}
