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
"""
import re

INT = r"-?\d+"
# `a op b = c`, not part of a longer expression (no digit, `/`, `x` or `)` right before or after)
BINARY = re.compile(r"(?<![\d/x)(])(" + INT + r") ([-+*]) (" + INT + r") = (" + INT + r")(?![\d/x(])")
QUOTIENT = re.compile(r"(?<![\d/x)(])(" + INT + r") / \(?(" + INT + r")\)? = (" + INT + r")(?![\d/x(])")
FRACTION_SUM = re.compile(r"(" + INT + r")/(\d+) ([-+]) (\d+)/(\d+) = (" + INT + r")/(\d+)")
SEP = " | "


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


def render_step(step, mode="columns"):
    """The PRM's text for one step and the offsets of its per-column result digits (with the check
    each belongs to). mode `ordinary` keeps the step as written."""
    step = step.rstrip()
    if mode == "ordinary":
        return step, []
    text, cols = step, []
    for k, (a, op, b, c) in enumerate(checks_of(step)):
        t, ends = render_check(a, op, b, c, overlap=mode == "overlap")
        base = len(text) + len(SEP)
        text += SEP + t
        cols += [(base + e, k, i) for i, e in enumerate(ends)]
    return text, cols


def render_solution(solution, mode="columns", delimiter="\n\n"):
    """The solution with every step rendered; the same step split as `data label` (pieces that are
    blank are dropped). Returns the text and the offset of each step's last character."""
    out, ends = [], []
    pos = 0
    for piece in solution.split(delimiter):
        if not piece.strip():
            continue
        text, _ = render_step(piece, mode)
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
    text, ends = render_solution(solution, mode)
    return prefix + TOK.encode(text), [len(prefix) + e for e in ends]


if __name__ == "__main__":
    for s in ["62 + 30 = 92", "-12 + 45 = 33", "1234 * 17 = 20978", "7 * 123 = 861", "5x = 20 - 5 = 15",
              "x = -15 / (-5) = 3", "3/12 + 5/12 = 8/12", "1/4 + 1/6 = 3/12 + 2/12", "3x + 5 = 20",
              "The answer is \\boxed{92}"]:
        print(repr(s), "->", repr(render_step(s)[0]), repr(render_step(s, "overlap")[0]))
