"""The verifier's own rendering of a step (issue 15): the policy writes `62 + 30 = 92`; the PRM reads
the step followed by a columnar layout of each integer check it contains, least significant digit
first, so that a recurrent model meets every carry before the digit that depends on it.

    62 + 30 = 92   ->   62 + 30 = 92 | ++++n 202 639 000;

Layout of one check `a op b = c` (a, b, c integers as written, c possibly wrong):
  * a header of five characters: the operation, the signs of a, b and c (`+` or `-`), and `s` when
    the operands were swapped so that the one with the larger magnitude (+, -) or more digits (*)
    comes first, else `n`. Which sign the result must have is left to the model.
  * one column per digit position i (0 = units), separated by spaces, ending with `;`:
      +, -:  x_i y_i c_i                          (x, y the magnitudes of the operands, c of the result)
      *:     x_i y_0 x_(i-1) y_1 ... x_(i-k+1) y_(k-1) c_i   (y has k digits: every digit pair whose
                                                   product lands in column i sits in that column)
    Numbers are padded with zeros to the column count: max(digits) for +, -; digits(x) + digits(y)
    (or more when c is longer) for *.
Only layout: the renderer reorders and pads digits and never computes a sum, difference or product.
The one comparison it makes is which operand has the larger magnitude (as column subtraction on
paper does), so the result's sign and which magnitude is subtracted from which are fixed.

Checks found in a step (`checks_of`): `a op b = c` with op in + - *; a quotient `p / q = r` (also
`p / (q) = r`) is checked as the product `r * q = p` (the easy direction); a same-denominator
fraction sum `a/m op b/m = c/m` as `a op b = c`. Steps with no check keep the ordinary rendering.

Mode `equations`: `columns`, plus checks that pair a step with the line before it of a linear
equation (the previous step; for the first step, the problem `Solve for x: L = R.`), appended after
the step's own checks in the same layout (`pairing_checks`). A line's sides are split at ` = `, after
dropping `Solve for x: ` and a final `.`; the previous line's equation is its first and last side
(`3x = 17 + 37 = 54` reads as `3x = 54`), the step's its first two sides. A side is read as a sum of
terms `3x - 7`, `-x + 2` (each term its coefficient as written, with its sign; `x` and `-x` have the
coefficient 1 and -1), or as a product `k(x + m)`, `k(x - m)`. Every number in a check is copied
from the two lines; the only number the renderer writes is the 0 of a moved term. Three forms:
  * distributing: a side `k(x +/- m)`, then the same side as `kx +/- n` (k as written), the other
    side copied as written:                                                  `k * +/-m = +/-n`
      `7(x - 15) = 15x - 185`, `7x - 105 = 15x - 185`  ->  `7 * -15 = -105`
  * moving terms: a line with an x term right of `=` or a constant left of it, then the step
    `(x terms of the left) (moved x terms) = (constants of the right) (moved constants)`, the terms
    that stay as written and in their order, only x terms left and only constants right; each moved
    term b as written before and b' as written after, x terms first:              `b + b' = 0`
      `4x - 3 = 2x - 5`, `4x - 2x = -5 + 3`  ->  `2 + -2 = 0`, `-3 + 3 = 0`
      `3x - 37 = 17`, `3x = 17 + 37 = 54`    ->  `-37 + 37 = 0`
  * combining like terms: a line with only x terms left and only constants right, then the step
    with each side as before, or its two terms `a +/- b` made one term c of the same kind, left
    side first:                                                                   `a +/- b = c`
      `4x - 2x = -5 + 3`, `2x = -2`          ->  `4 - 2 = 2`, `-5 + 3 = -2`
A term that stays (a coefficient carried over, a side copied) is not checked. A step of any other
form (another subject, the quotient `x = 54 / 3 = 18`, the answer, a malformed or rearranged step)
gets no pairing check, only its own.

Mode `grounded`: `equations`, plus copy checks for `Compute` problems, where a frequent mistake of
the policy is a number copied wrong (`6613 + 410 = 7023` for the problem's `+ 401`): the step is a
true equation, and only the problem shows it wrong. Each number on a step's first side (integers
and fractions `a/b` as written, a sign attached to it included) is laid beside the number it should
have been copied from, by position only: first the numbers of the previous step's last side, in
order, then the problem's numbers not yet used, in order of appearance (a step uses as many of them
as it has numbers beyond the previous step's). The answer step's boxed value is laid beside the previous step's result. A
copy of b as b' is checked in the layout of a moved term, `b' + -b = 0` (for a fraction, its
numerators, then its denominators, an integer's denominator being 1):
      `Compute 861 * 8 - 681 + 406 + 401.`, ..., `6207 + 406 = 6613`, `6613 + 410 = 7023`
          ->  `6613 + -6613 = 0`, `410 + -401 = 0`
The renderer only aligns: whether a copy is right is for the model to read from the columns.

Mode `fractions`: `grounded`, plus a check for each fraction a step converts or simplifies. A step
whose two sides are sums of the same number of terms with the same operators, at least one of them a
fraction (`11/14 - 5/12 = 66/84 - 35/84`, `-122/14 = -61/7`; an integer is a fraction over 1), pairs
the k-th term of its first side with the k-th of its second as the check `a / b = c/d`, true when
the cross products a * d and c * b are equal. It is laid out as both products in one set of columns,
each as a product's column above (longer factor first), the two halves joined by `=`, so that column
i holds every digit pair of a * d and of c * b whose product lands in column i:
      `11/14 = 66/84`  ->  `/++ 1408=6401 1418=6461 0418=0461 0408=0401;`   (11 * 84, 66 * 14)
with the header `/` and the signs of a and c. Nothing is computed: each column holds digits of the
four numbers as written, and whether the two products agree column by column, units first, is for
the model to work out. A same-denominator sum (`66/84 - 35/84 = 31/84`: one term on the right) gets
no such check, only its numerator sum's.
"""
import re

INT = r"-?\d+"
# `a op b = c`, not part of a longer expression (no digit, `/`, `x` or `)` right before or after)
BINARY = re.compile(r"(?<![\d/x)(])(" + INT + r") ([-+*]) (" + INT + r") = (" + INT + r")(?![\d/x(])")
QUOTIENT = re.compile(r"(?<![\d/x)(])(" + INT + r") / \(?(" + INT + r")\)? = (" + INT + r")(?![\d/x(])")
FRACTION_SUM = re.compile(r"(" + INT + r")/(\d+) ([-+]) (\d+)/(\d+) = (" + INT + r")/(\d+)")
SEP = " | "
PROBLEM = "Solve for x: "
SUM = re.compile(r"-?(?:\d+x?|x)(?: [-+] (?:\d+x?|x))*")  # `3x - 7`, `-x + 2`, `-5 + 3`, `2x`
DISTRIBUTE = re.compile(r"(-?\d+)\(x ([-+]) (\d+)\)")  # `7(x - 15)`
COMPUTE = "Compute "
NUMBER = re.compile(r"(?<![\d/-])-?\d+(?:/\d+)?(?![\d/])")  # `-104`, `73/15`, not `- 347`'s `-`
TERM = re.compile(r"-?\d+(?:/\d+)?")  # `11/14`, `-61/7`, `2`
BOXED = re.compile(r"\\boxed\{(-?)(?:\\d?frac\{(\d+)\}\{(\d+)\}|(\d+))\}")


def magnitude_order(x, y, op):
    """Whether to swap the magnitudes so the first is the larger (+, -) or the longer (*)."""
    if op == "*":
        return len(x) < len(y)
    return (len(x), x) < (len(y), y)


def sign(v):
    return "-" if v.startswith("-") else "+"


def render_check(a, op, b, c, overlap=False):
    """Columnar layout of `a op b = c` (strings of integers). Returns the text and the offset in it of
    each column's result digit (for per-column labels). With `overlap`, every column is preceded by
    a copy of the previous one (zeros before the units), so that the carry into a column is a
    function of the characters next to it: for + and -, given a right previous column, the carry out
    of it is [c < x + y] and the borrow [c > x - y]."""
    if op == "/":
        return render_ratio(a, b, c)
    x, y, z = a.lstrip("-"), b.lstrip("-"), c.lstrip("-")
    swap = magnitude_order(x, y, op)
    if swap:
        x, y = y, x
    X, Y, Z = x[::-1], y[::-1], z[::-1]
    n = max(len(X) + len(Y), len(Z)) if op == "*" else max(len(X), len(Y), len(Z))
    digit = lambda s, i: s[i] if 0 <= i < len(s) else "0"
    text = op + sign(a) + sign(b) + sign(c) + ("s" if swap else "n")
    ends, prev = [], None
    for i in range(n):
        if op == "*":
            col = "".join(digit(X, i - j) + Y[j] for j in range(len(Y))) + digit(Z, i)
        else:
            col = digit(X, i) + digit(Y, i) + digit(Z, i)
        text += " " + ((prev or "0" * len(col)) + col if overlap else col)
        prev = col
        ends.append(len(text) - 1)
    return text + ";", ends


def product_columns(x, y, n):
    """Column i (0 = units) of the product of magnitudes x and y (strings), the longer first: every
    digit pair whose product lands in column i, `x_i y_0 x_(i-1) y_1 ...`, zeros beyond either number."""
    if len(x) < len(y):
        x, y = y, x
    X, Y = x[::-1], y[::-1]
    digit = lambda s, i: s[i] if 0 <= i < len(s) else "0"
    return ["".join(digit(X, i - j) + Y[j] for j in range(len(Y))) for i in range(n)]


def render_ratio(a, b, c):
    """Layout of `a / b = c` for a fraction c = `p/q` (or an integer, over 1): the cross products
    a * q and p * b in shared columns (mode `fractions`, in the module docstring)."""
    p, q = (c.split("/") + ["1"])[:2]
    x, y, z, w = a.lstrip("-"), q, p.lstrip("-"), b
    n = max(len(x) + len(y), len(z) + len(w))
    text, ends = "/" + sign(a) + sign(p), []
    for left, right in zip(product_columns(x, y, n), product_columns(z, w, n)):
        text += " " + left + "=" + right
        ends.append(len(text) - 1)
    return text + ";", ends


def ratio_checks(step):
    """The checks `(a, "/", b, "c/d")` of a step that converts or simplifies fractions (mode
    `fractions`): its first two sides' terms paired in order, when the two sides have the same
    operators and at least one fraction; [] otherwise."""
    sides = step.split(" = ")
    if len(sides) < 2:
        return []
    parsed = []
    for side in sides[:2]:
        pieces = side.split(" ")
        terms, ops = pieces[0::2], pieces[1::2]
        if len(pieces) % 2 == 0 or not all(TERM.fullmatch(t) for t in terms) or any(o not in ("+", "-") for o in ops):
            return []
        parsed.append((terms, ops))
    (left, left_ops), (right, right_ops) = parsed
    if len(left) != len(right) or left_ops != right_ops or not any("/" in t for t in left + right):
        return []
    return [((t + "/1").split("/")[0], "/", (t + "/1").split("/")[1], r) for t, r in zip(left, right)]


def checks_of(step):
    """The integer checks `(a, op, b, c)` in a step, in the order they appear."""
    found = []
    for m in FRACTION_SUM.finditer(step):
        if m.group(2) == m.group(5) == m.group(7):
            found.append((m.start(), (m.group(1), m.group(3), m.group(4), m.group(6))))
    for m in BINARY.finditer(step):
        if not any(s <= m.start() < s + 40 for s, _ in found if "/" in step[s:m.start()]):
            found.append((m.start(), m.groups()))
    for m in QUOTIENT.finditer(step):
        p, q, r = m.groups()
        found.append((m.start(), (r, "*", q, p)))
    return [c for _, c in sorted(found)]


def equation_sides(line):
    """The sides of an equation line (a step, or the problem `Solve for x: ... .`); None without `=`."""
    line = line.rstrip()
    line = line[len(PROBLEM):] if line.startswith(PROBLEM) else line
    sides = (line[:-1] if line.endswith(".") else line).split(" = ")
    return sides if len(sides) > 1 else None


def terms(side):
    """The terms of a sum `3x - 7` as (coefficient as written, with its sign; whether it is an x
    term): [("3", True), ("-7", False)]; `x` and `-x` have the coefficient 1 and -1. None when the
    side is not such a sum."""
    if not SUM.fullmatch(side):
        return None
    out = []
    for t in side.replace(" + ", " ").replace(" - ", " -").split(" "):
        is_x = t.endswith("x")
        coef = t[:-1] if is_x else t
        out.append((coef + "1" if coef in ("", "-") else coef, is_x))
    return out


def pairing_checks(previous, step):
    """The checks `(a, op, b, c)` that relate a step to the previous line of a linear equation (the
    layout rules of mode `equations`, in the module docstring); [] when the step has another form."""
    before, after = equation_sides(previous or ""), equation_sides(step)
    if not before or not after:
        return []
    before, after = [before[0], before[-1]], after[:2]
    products = [DISTRIBUTE.fullmatch(side) for side in before]
    if any(products):  # distributing: `k(x +/- m)` then `kx +/- n`, the other side copied
        checks = []
        for m, p, c in zip(products, before, after):
            if not m:
                if p != c:
                    return []
                continue
            k, sign, v = m.groups()
            t = terms(c) or []
            if len(t) != 2 or t[0] != (k, True) or t[1][1]:
                return []
            checks.append((k, "*", ("-" if sign == "-" else "") + v, t[1][0]))
        return checks
    sums = [terms(side) for side in before + after]
    if None in sums:
        return []
    left, right, new_left, new_right = sums
    kept_x, moved_c = [t for t in left if t[1]], [t for t in left if not t[1]]
    moved_x, kept_c = [t for t in right if t[1]], [t for t in right if not t[1]]
    if moved_x or moved_c:  # moving terms: `kept_x moved_x = kept_c moved_c`, moved terms as b'
        if (new_left[:len(kept_x)] != kept_x or new_right[:len(kept_c)] != kept_c
                or len(new_left) != len(kept_x + moved_x) or len(new_right) != len(kept_c + moved_c)
                or not all(t[1] for t in new_left) or any(t[1] for t in new_right)):
            return []
        moved_to = new_left[len(kept_x):] + new_right[len(kept_c):]
        return [(b, "+", b2, "0") for (b, _), (b2, _) in zip(moved_x + moved_c, moved_to)]
    checks = []  # combining like terms: each side as before, or its two terms `a +/- b` made one
    for p, c in [(left, new_left), (right, new_right)]:
        if p == c:
            continue
        if len(p) != 2 or len(c) != 1 or c[0][1] != p[0][1]:
            return []
        (a, _), (b, _) = p
        checks.append((a, "-" if b.startswith("-") else "+", b.lstrip("-"), c[0][0]))
    return checks


def negate(v):
    return v[1:] if v.startswith("-") else v if v == "0" else "-" + v


def copied_numbers(step):
    """The numbers a step copies (mode `grounded`): those on its first side, or the boxed answer."""
    boxed = BOXED.search(step)
    if boxed:
        sign, num, den, whole = boxed.groups()
        return [sign + (whole or f"{num}/{den}")]
    return NUMBER.findall(step.split(" = ")[0]) if " = " in step else []


def copy_checks(step, sources):
    """Checks `b' + -b = 0` laying each number a step copies beside its source, by position."""
    checks = []
    for copy, source in zip(copied_numbers(step), sources):
        a, b = copy.split("/"), source.split("/")
        a, b = a + ["1"] * (len(b) - len(a)), b + ["1"] * (len(a) - len(b))
        checks += [(x, "+", negate(y), "0") for x, y in zip(a, b)]
    return checks


def step_checks(step, mode="columns", previous=None, sources=None):
    """The checks laid out after a step: its own (`checks_of`; in mode `fractions` also
    `ratio_checks`), then in modes `equations`, `grounded` and `fractions` those that pair it with the
    previous line (`pairing_checks`; none when `previous` is None), then in modes `grounded` and
    `fractions` the copy checks against `sources` (`copy_checks`)."""
    step = step.rstrip()
    checks = checks_of(step)
    if mode == "fractions":
        checks += ratio_checks(step)
    if mode in ("equations", "grounded", "fractions") and previous is not None:
        checks += pairing_checks(previous, step)
    if mode in ("grounded", "fractions") and sources:
        checks += copy_checks(step, sources)
    return checks


def copy_sources(problem, steps):
    """For each step, the numbers it should copy from, in mode `grounded` (none unless the problem
    is a `Compute` one): the previous step's last side's numbers, then the problem's unused ones."""
    if not (problem or "").startswith(COMPUTE):
        return [None] * len(steps)
    unused, previous, out = NUMBER.findall(problem[len(COMPUTE):]), [], []
    for step in steps:
        out.append(previous + unused)
        if "\\boxed" not in step:
            unused = unused[max(0, len(copied_numbers(step)) - len(previous)):]
            previous = NUMBER.findall(step.split(" = ")[-1])
    return out


def render_step(step, mode="columns", previous=None, sources=None):
    """The PRM's text for one step and the offsets of its per-column result digits (with the index,
    in step_checks, of the check each belongs to). mode `ordinary` keeps the step as written; modes
    `equations` and `grounded` need the previous line (the previous step, or the problem for the
    first step), `grounded` also the numbers the step copies from (`copy_sources`)."""
    step = step.rstrip()
    if mode == "ordinary":
        return step, []
    text, cols = step, []
    for k, (a, op, b, c) in enumerate(step_checks(step, mode, previous, sources)):
        t, ends = render_check(a, op, b, c, overlap=mode == "overlap")
        base = len(text) + len(SEP)
        text += SEP + t
        cols += [(base + e, k, i) for i, e in enumerate(ends)]
    return text, cols


def render_solution(solution, mode="columns", delimiter="\n\n", problem=None):
    """The solution with every step rendered; the same step split as `data label` (pieces that are
    blank are dropped). Returns the text and the offset of each step's last character. In mode
    `equations` each step is paired with the step before it, the first with `problem`."""
    out, ends = [], []
    pos, previous = 0, problem
    pieces = [piece for piece in solution.split(delimiter) if piece.strip()]
    for piece, sources in zip(pieces, copy_sources(problem, [p.rstrip() for p in pieces])):
        text, _ = render_step(piece, mode, previous, sources)
        previous = piece
        if out:
            pos += len(delimiter)
        out.append(text)
        pos += len(text)
        ends.append(pos - 1)
    return delimiter.join(out), ends


def prm_example(problem, solution, mode="columns"):
    """Token ids (<bos> problem \\n\\n rendered solution) and the token index of each step's last
    character, as prm.prm_example for the ordinary rendering."""
    from data import TOK, policy_prompt
    prefix = [TOK.bos_id] + TOK.encode(policy_prompt(problem))
    text, ends = render_solution(solution, mode, problem=problem)
    return prefix + TOK.encode(text), [len(prefix) + e for e in ends]


if __name__ == "__main__":
    for s in ["62 + 30 = 92", "-12 + 45 = 33", "1234 * 17 = 20978", "7 * 123 = 861", "5x = 20 - 5 = 15",
              "x = -15 / (-5) = 3", "3/12 + 5/12 = 8/12", "1/4 + 1/6 = 3/12 + 2/12", "3x + 5 = 20",
              "The answer is \\boxed{92}"]:
        print(repr(s), "->", repr(render_step(s)[0]), repr(render_step(s, "overlap")[0]))
    for previous, s in [("Solve for x: 3x - 37 = 17.", "3x = 17 + 37 = 54"), ("3x = 17 + 37 = 54", "x = 54 / 3 = 18"),
                        ("Solve for x: 4x - 3 = 2x - 5.", "4x - 2x = -5 + 3"), ("4x - 2x = -5 + 3", "2x = -2"),
                        ("Solve for x: 7(x - 15) = 15x - 185.", "7x - 105 = 15x - 185"),
                        ("7x - 105 = 15x - 185", "7x - 15x = -185 + 105"), ("7x - 15x = -185 + 105", "-8x = -80"),
                        ("Solve for x: 4x - 3 = 2x - 5.", "4x - 2x = -5 - 3"), ("Solve for x: 4x - 3 = 2x - 5.", "2x = -2")]:
        print(repr(previous), "then", repr(s), "->", repr(render_step(s, "equations", previous)[0]))
    for s in ["11/14 - 5/12 = 66/84 - 35/84", "-122/14 = -61/7", "66/84 - 35/84 = 31/84", "12/6 = 2"]:
        print(repr(s), "->", repr(render_step(s, "fractions")[0]))
