"""Conformance cases for the TypeScript port of render.py (src/runtime/prm-rendering.ts): writes
test/fixtures/prm-rendering/cases.json, which test/prm-rendering.test.ts checks the port against.

    DELIBERATE_CLI=/path/to/dist/src/cli.js python3 models/train/render_cases.py

Cases: render.py's own examples, hand-picked edge cases, and the steps of gold solutions of the
synthetic train split (`data synth`, 30 problems per level) with some results corrupted (seeded), in
every mode; plus whole solutions (render_solution) with their step ends. Plain python3, no torch.

Mode `equations` pairs a step with the line before it, so its cases also carry `previous` (null: the
step alone): the examples and edge cases alone; every step of those solutions and of the linear
equations of a second draw (120 problems per level, seed 1) after its previous line (the problem for
the first step), gold and corrupted (a digit changed anywhere or a sign flipped); hand-written
malformed pairs; and whole solutions: those above, every linear equation of the second draw gold and
with one step corrupted, and malformed ones. The cases of the other modes are the same as before.

Mode `grounded` (`grounded_cases`): every step of the `Compute` problems of a ladder-2 draw, after its
previous line and with the numbers it copies from, and the whole solutions. Mode `fractions`
(`fractions_cases`): every `grounded` case again in mode `fractions`; hand-written steps alone
(integer terms, negative first terms, same-denominator sums, mismatched operators, three terms or
three sides, malformed sums); every step of the Fractions problems of a second ladder-2 draw, gold,
with a digit changed and with a sign flipped; and whole solutions: those of that draw, gold and with
one step corrupted, and hand-written ones (those of `grounded` among them).
"""
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from render import COMPUTE, copy_sources, render_solution, render_step  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("DELIBERATE_CLI", os.path.join(ROOT, "dist", "src", "cli.js"))
OUT = os.path.join(ROOT, "test", "fixtures", "prm-rendering", "cases.json")
MODES = ["ordinary", "columns", "overlap"]
PER_LEVEL = 30
SEED = 0
EQUATION_PER_LEVEL = 120  # the second draw, of which the linear equations are kept
EQUATION_SEED = 1
GROUNDED_PER_LEVEL = 40  # a ladder-2 draw, of which the Compute problems are kept
GROUNDED_SEED = 2
FRACTIONS_PER_LEVEL = 12  # a second ladder-2 draw, of which the Fractions problems are kept
FRACTIONS_SEED = 3

EXAMPLES = ["62 + 30 = 92", "-12 + 45 = 33", "1234 * 17 = 20978", "7 * 123 = 861", "5x = 20 - 5 = 15",
            "x = -15 / (-5) = 3", "3/12 + 5/12 = 8/12", "1/4 + 1/6 = 3/12 + 2/12", "3x + 5 = 20",
            "The answer is \\boxed{92}"]
EDGE = [
    "-62 + -30 = -92", "-5 - -7 = 2", "12 - 345 = -333", "30 + 62 = 92", "62 + 62 = 124",
    "99 + 1 = 100", "999 * 999 = 998001", "3 * 4567 = 13701", "0 * 0 = 0", "-7 * -8 = 56", "12 * -3 = -36",
    "62 + 30 = 93", "1234 * 17 = 2978", "45 - 12 = 3300", "8 - 3 = -5",
    "x = 84 / 7 = 12", "x = 84 / (7) = 12", "x = -84 / (-7) = -12", "x = 84 / 7 = 13", "84 / 7 = 12",
    "5/9 - 2/9 = 3/9", "-3/8 + 5/8 = 2/8", "7/4 + 13/4 = 20/4", "1/3 + 1/4 = 7/12", "2/5 + 3/7 = 29/35",
    "3/12 + 5/12 = 8/12 + 0 = 8", "1/4 + 1/4 = 2/4 and then 2 + 3 = 5", "2/8 + 1/8 = 3/8, so 3 + 5 = 8",
    "62 + 30 = 92 and 92 - 10 = 82", "10 * 5 = 50, 50 + 3 = 53, 53 - 1 = 52", "(17 + 5) * 3 = 66",
    "17 + 5 = 22 * 3", "x + 5 = 12", "2x - 3 = 7", "3(x + 1) = 9", "1/2 + 3 = 5", "62+30=92", "62 +30 = 92",
    "5 - 3 = 2x", "4 + 4 = 8(", "a 3 + 4 = 7)", "", "   ", "62 + 30 = 92   ", "62 + 30 = 92\n", "\t7 * 8 = 56\t \n",
    "The answer is \\boxed{-18843}", "\u0666\u0662 + \u0663\u0660 = \u0669\u0662", "\uff16\uff12 + 30 = 92",
    "\U0001d7d4 + \uff16 = 12", "\uff16 + \U0001d7d4 = 12", "\U0001d7d4\U0001d7d0 * 3 = 186",
    "62 + 30 = 92\u3000", "62 + 30 = 92\x85", "62 + 30 = 92\ufeff",
]

# (previous line, step) pairs for `equations` that do not have the expected form, or only nearly
MALFORMED = [
    ("Solve for x: 3x - 37 = 17.", "3x = 17 + 37"), ("Solve for x: 3x - 37 = 17.", "3x = 54"),
    ("Solve for x: 3x - 37 = 17.", "3x = 37 + 17 = 54"), ("Solve for x: 3x - 37 = 17.", "17 + 37 = 3x"),
    ("Solve for x: 3x - 37 = 17.", "3x=17+37=54"), ("Solve for x: 3x - 37 = 17.", "3x = 17 +37 = 54"),
    ("Solve for x: 3x - 37 = 17.", "3x = 17 - -37 = 54"), ("Solve for x: 3x - 37 = 17.", "3x = 17 + 37 + 0 = 54"),
    ("Solve for x: 3x - 37 = 17.", "x = 17 + 37 = 54"), ("Solve for x: 3x - 37 = 17.", "3x - 37 + 37 = 17 + 37"),
    ("Solve for x: 3x - 37 = 17.", "3y = 17 + 37 = 54"), ("Solve for x: 3x - 37 = 17.", "3x = 17 - 37 = -20"),
    ("Solve for x: 3x - 37 = 17.", "3x = 17 + 73 = 90"), ("Solve for x: 3x - 37 = 17.", "The answer is \\boxed{18}"),
    ("Solve for x: 3x - 37 = 17", "3x = 17 + 37 = 54"), ("3x - 37 = 17", "3x = 17 + 37 = 54"),
    ("Solve for x: 3x - 37 = 17.  ", "3x = 17 + 37 = 54  "), (" Solve for x: 3x - 37 = 17.", "3x = 17 + 37 = 54"),
    ("Solve for x:  3x - 37 = 17.", "3x = 17 + 37 = 54"), ("Solve for x: 3x - 37 = 17..", "3x = 17 + 37 = 54."),
    ("Solve for x: 4x - 3 = 2x - 5.", "4x - 2x = -5 - 3"), ("Solve for x: 4x - 3 = 2x - 5.", "4x + 2x = -5 + 3"),
    ("Solve for x: 4x - 3 = 2x - 5.", "4x - 2x = 3 - 5"), ("Solve for x: 4x - 3 = 2x - 5.", "2x - 4x = -5 + 3"),
    ("Solve for x: 4x - 3 = 2x - 5.", "2x = -2"), ("Solve for x: 4x - 3 = 2x - 5.", "4x - 2x = -5 + 3 = -2"),
    ("Solve for x: 4x - 3 = 2x - 5.", "4x - 2x - 3 = -5"), ("Solve for x: 4x - 3 = 2x - 5.", "4x = 2x - 5 + 3"),
    ("Solve for x: 4x - 3 = 2x - 5.", "-3 + 5 = 2x - 4x"), ("Solve for x: 4x - 3 = 2x - 5.", "4x - x = -5 + 3"),
    ("Solve for x: x + 5 = 3x - 7.", "x - 3x = -7 - 5"), ("Solve for x: 14x + 14 = x + 1.", "14x - x = 1 - 14"),
    ("Solve for x: 14x + 14 = x + 1.", "14x - 1x = 1 - 14"), ("Solve for x: -x + 14 = x + 1.", "-x - x = 1 - 14"),
    ("4x - 2x = -5 + 3", "2x = -2"), ("4x - 2x = -5 + 3", "2x = -8"), ("4x - 2x = -5 + 3", "6x = -2"),
    ("4x - 2x = -5 + 3", "x = -2"), ("4x - 2x = -5 + 3", "2x = -5 + 3 = -2"), ("4x - 2x = -5 + 3", "2x = 2 - 4"),
    ("4x - 2x = -5 + 3", "-2 = 2x"), ("4x - 2x = -5 + 3", "2x = -2 / 1"), ("4x - 2x = -5 + 3", "2 x = -2"),
    ("4x - 2x = -5 + 3 = -2", "2x = -2"), ("4x - 2x = -5 + 3", "4x - 2x = -5 + 3"), ("2x = -2", "x = -1"),
    ("2x = -2", "x = -2 / 2 = -1"), ("x - 3x = -7 - 5", "-2x = -12"), ("5x - 6x = -44 + 29", "-x = -15"),
    ("5x - 6x = -44 + 29", "-1x = -15"), ("3x - 2x = -40 + 36", "x = -4"), ("2x - 6x = 20 - 20", "-4x = 0"),
    ("Solve for x: 7(x - 15) = 15x - 185.", "7x - 105 = 15x - 185"),
    ("Solve for x: 7(x - 15) = 15x - 185.", "7x + 105 = 15x - 185"),
    ("Solve for x: 7(x - 15) = 15x - 185.", "7x - 15 = 15x - 185"),
    ("Solve for x: 7(x - 15) = 15x - 185.", "8x - 105 = 15x - 185"),
    ("Solve for x: 7(x - 15) = 15x - 185.", "7x - 105 = 15x + 185"),
    ("Solve for x: 7(x - 15) = 15x - 185.", "7x - 105 = 15x - 185 = 0"),
    ("Solve for x: 7(x - 15) = 15x - 185.", "7x - 15x = -185 + 105"),
    ("Solve for x: 7(x - 15) = 15x - 185.", "-105 + 7x = 15x - 185"),
    ("Solve for x: 7(x - 15) = 15x - 185.", "7x - 105 - 0 = 15x - 185"),
    ("Solve for x: 7(x-15) = 15x - 185.", "7x - 105 = 15x - 185"),
    ("Solve for x: 7(x + 15) = 15x - 185.", "7x + 105 = 15x - 185"),
    ("Solve for x: 2(x + 10) = 6x + 20.", "2x + 20 = 6x + 20"),
    ("Solve for x: 7(x - 15) = 3(x + 1).", "7x - 105 = 3x + 3"),
    ("Solve for x: 7(x - 15) = 3(x + 1).", "7x - 105 = 3(x + 1)"),
    ("Solve for x: -7(x - 15) = 15x - 185.", "-7x + 105 = 15x - 185"),
    ("Solve for x: 7(2x - 15) = 15x - 185.", "14x - 105 = 15x - 185"),
    ("Solve for x: 15x - 185 = 7(x - 15).", "15x - 185 = 7x - 105"), ("Compute 62 + 30 - 7.", "62 + 30 = 92"),
    ("62 + 30 = 92", "92 - 7 = 85"), ("Compute 3/12 + 5/12.", "3/12 + 5/12 = 8/12"), ("", "3x = 17 + 37 = 54"),
    ("Solve for x: 3x - 37 = 17.", ""), ("", ""), ("=", "="), (" = ", " = "), ("x = x", "x = x"),
    ("Solve for x: .", "x = 1"), ("Solve for x: = .", " = "), ("Solve for x: 3x - 37 = 17.", "3x = 17 + 37 = 54\n"),
    ("Solve for x: \u0663x - \u0663\u0667 = 17.", "\u0663x = 17 + \u0663\u0667 = 54"),
    ("Solve for x: \U0001d7d1x - 37 = 17.", "\U0001d7d1x = 17 + 37 = 54"),
    ("\uff14x - \uff12x = -5 + 3", "\uff12x = -2"),
    ("Solve for x: \uff17(x - \U0001d7d7) = 15x - 185.", "\uff17x - 105 = 15x - 185"),
    ("Solve for x: 3x - 37 = 17.\u3000", "3x = 17 + 37 = 54\x85"),
    ("Solve for x: 3x - 37 = 17.\ufeff", "3x = 17 + 37 = 54"),
]
# whole solutions (problem, solution) that stray from the gold form
MALFORMED_SOLUTIONS = [
    ("Solve for x: 3x - 37 = 17.",
     "3x = 17 + 37\n\n3x = 54\n\nx = 18\n\nThe answer is \\boxed{18}"),
    ("Solve for x: 4x - 3 = 2x - 5.",
     "4x - 2x = -5 + 3\n\n\n\n2x = -2\n\n   \n\nx = -2 / 2 = -1\n\nThe answer is \\boxed{-1}"),
    ("Solve for x: 4x - 3 = 2x - 5.",
     "4x - 2x = 3 - 5\n\n2x = -2\n\nThe answer is \\boxed{-1}"),
    ("Solve for x: 7(x - 15) = 15x - 185.",
     "7x - 15 = 15x - 185\n\n7x - 15x = -185 + 15\n\n-8x = -170\n\nThe answer is \\boxed{21}"),
    ("Solve for x: 7(x - 15) = 15x - 185.",
     "7x - 15x = -185 + 105\n\n-8x = -80\n\nx = -80 / (-8) = 10\n\nThe answer is \\boxed{10}"),
    ("Compute 62 + 30 - 7.",
     "62 + 30 = 92\n\n92 - 7 = 85\n\nThe answer is \\boxed{85}"),
]

# whole `Compute` solutions for `grounded` that stray from the gold form
MALFORMED_GROUNDED = [
    ("Compute 861 * 8 - 681 + 406 + 401.",
     "861 * 8 = 6888\n\n6888 - 681 = 6207\n\n6207 + 406 = 6613\n\n6613 + 410 = 7023\n\nThe answer is \\boxed{7023}"),
    ("Compute 293 - 50 - 347 + 101.", "293 - 50 = 243\n\n243 - 347 = -104\n\n104 + 101 = 205\n\nThe answer is \\boxed{205}"),
    ("Compute 2 + 3 * 4.", "3 * 4 = 12\n\n2 + 12 = 14\n\n\n\n   \n\nThe answer is \\boxed{14}"),
    ("Compute 14/3 + 1/5 - 11/2.",
     "14/3 + 1/5 = 70/15 + 3/15\n\n70/15 + 3/15 = 73/15\n\n73/15 - 11/6 = 146/30 - 55/30\n\n146/30 - 55/30 = 91/30\n\n"
     "The answer is \\boxed{-\\frac{91}{30}}"),
    ("Compute 3/4 + 2.", "3/4 + 2 = 3/4 + 8/4\n\n3/4 + 8/4 = 11/4\n\nThe answer is \\boxed{\\dfrac{11}{4}}"),
    ("Compute 5 + 7.", "The answer is \\boxed{12}"), ("Compute 5 + 7.", "5 + 7 + 1 + 2 = 15\n\n15 = 15\n\nThe answer is 15"),
    ("Compute 5 + 7.", "we add them\n\n5 + 7 = 12\n\nThe answer is \\boxed{0}"), ("Compute .", "1 + 1 = 2"),
    ("Compute 0 - 0.", "0 - 0 = 0\n\n-0 + 0 = 0\n\nThe answer is \\boxed{-0}"),
    ("Compute \u0666\u0662 + 30.", "\u0666\u0662 + 30 = 92\n\nThe answer is \\boxed{92}"),
    ("Solve for x: 3x - 37 = 17.", "3x = 17 + 37 = 54\n\nx = 54 / 3 = 18\n\nThe answer is \\boxed{18}"),
]

# steps for `fractions`, rendered alone: which get ratio checks and which do not
FRACTION_EDGE = [
    "11/14 - 5/12 = 66/84 - 35/84", "11/14 = 66/84", "-122/14 = -61/7", "-61/7 = -122/14", "66/84 - 35/84 = 31/84",
    "3/12 + 5/12 = 8/12", "12/6 = 2", "2 = 12/6", "16/8 = 2", "2 + 3/4 = 8/4 + 3/4", "2 - 1/2 = 4/2 - 1/2",
    "1 + 6/5 = 5/5 + 6/5", "3/4 + 2 = 3/4 + 8/4", "-1/2 + 7/12 = -6/12 + 7/12", "-5/12 - 1/3 = -5/12 - 4/12",
    "1/2 + -1/3 = 3/6 + -2/6", "1/2 - -1/3 = 3/6 - -2/6", "1/2 + 1/3 = 3/6 - 2/6", "1/2 - 1/3 = 3/6 + 2/6",
    "1/2 + 1/3 = 5/6", "5/6 = 1/2 + 1/3", "4 = 4", "2 + 3 = 5", "6 = 6/1", "0/5 = 0", "-0/5 = 0/7", "007/10 = 7/10",
    "1/2 + 1/3 + 1/4 = 6/12 + 4/12 + 3/12", "1/2 + 1/3 - 1/4 = 6/12 + 4/12 - 3/12 = 7/12",
    "1/2 + 1/3 + 1/4 = 6/12 + 4/12 - 3/12", "1/2 + 1/3 + 1/4 = 6/12 + 7/12", "38/36 = 19/18 = 1",
    "8/12 = 2/3 = 4/6", "1/2 + 1/3 = 3/6 + 2/6 = 5/6", "3/6 + 2/6 = 5/6 = 10/12", "123456/654321 = 41152/218107",
    "999/999 = 1", "1/1000 = 1000/1000000", "1/2+1/3 = 3/6+2/6", "1/2  + 1/3 = 3/6 + 2/6", "1/2 + 1/3 = 3/6 +2/6",
    "1/2 * 1/3 = 1/6 * 1", "1/2 + 1/3 = (3/6) + 2/6", "x/2 = 3/6", "1/2 = 3/6.", "1/2/3 = 1/6", "1/2 = 2/4 + 0",
    "= 1/2", "1/2 =", "1/2 = ", " = ", "1/2", "-/2 = 1/2", "1/-2 = -1/2", "1/2 = 2/4   ", "1/2 = 2/4\n",
    "The answer is \\boxed{\\frac{3}{2}}", "\u0661/2 = 2/\U0001d7d2", "\uff11\uff12/6 = 2",
    "1/\U0001d7d0 = \u0663\u0660/\uff16\uff10",
]
# whole solutions for `fractions`, beside the `grounded` ones: same-denominator sums, integer and
# negative terms, mismatched operators, three terms, a conversion copied or converted wrong
MALFORMED_FRACTIONS = [
    ("Compute 11/14 - 5/12.", "11/14 - 5/12 = 66/84 - 35/84\n\n66/84 - 35/84 = 31/84\n\nThe answer is \\boxed{\\frac{31}{84}}"),
    ("Compute 11/14 - 5/12.", "11/14 - 5/12 = 66/84 - 36/84\n\n66/84 - 36/84 = 30/84\n\nThe answer is \\boxed{\\frac{30}{84}}"),
    ("Compute 12/6 + 3/4.", "12/6 = 2\n\n2 + 3/4 = 8/4 + 3/4\n\n8/4 + 3/4 = 11/4\n\nThe answer is \\boxed{\\frac{11}{4}}"),
    ("Compute 1/2 + 1/3.", "1/2 + 1/3 = 3/6 - 2/6\n\n3/6 - 2/6 = 1/6\n\nThe answer is \\boxed{\\frac{1}{6}}"),
    ("Compute 1/2 + 1/3 + 1/4.", "1/2 + 1/3 + 1/4 = 6/12 + 4/12 + 3/12 = 13/12\n\nThe answer is \\boxed{\\frac{13}{12}}"),
    ("Compute -122/14 + 1.",
     "-122/14 = -61/7\n\n-61/7 + 1 = -61/7 + 7/7\n\n-61/7 + 7/7 = -54/7\n\nThe answer is \\boxed{-\\frac{54}{7}}"),
    ("Compute 13/12 - 19/12 + 7/12.",
     "13/12 - 19/12 = -6/12\n\n-6/12 = -1/2\n\n-1/2 + 7/12 = -6/12 + 7/12\n\n\n\n-6/12 + 7/12 = 1/12\n\n"
     "The answer is \\boxed{\\frac{1}{12}}"),
    ("Compute 9/7 + 1/2.",
     "9/7 + 1/2 = 18/14 + 7/14\n\n18/14 + 7/14 = 25/14\n\n25/14 = 5/2\n\nThe answer is \\boxed{\\frac{5}{2}}"),
]


def synth_rows(per_level=PER_LEVEL, seed=SEED, ladder=1):
    out = subprocess.run(["node", CLI, "data", "synth", "--split", "train", "--per-level", str(per_level), "--seed", str(seed),
                          "--ladder", str(ladder)], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def corrupt(step, rng):
    """The step with one digit of its last number changed (None when it has no digit after `=`)."""
    eq = step.rfind("=")
    digits = [i for i in range(eq + 1, len(step)) if step[i].isdigit()] if eq >= 0 else []
    if not digits:
        return None
    i = rng.choice(digits)
    return step[:i] + rng.choice([d for d in "0123456789" if d != step[i]]) + step[i + 1:]


def corrupt_any(step, rng):
    """The step with one digit changed anywhere, or (one time in three) one ` + ` made ` - ` or back."""
    signs = [i for i in range(len(step) - 2) if step[i:i + 3] in (" + ", " - ")]
    if signs and rng.random() < 1 / 3:
        i = rng.choice(signs) + 1
        return step[:i] + ("-" if step[i] == "+" else "+") + step[i + 1:]
    return change_digit(step, rng)


def change_digit(step, rng):
    """The step with one digit changed anywhere (None when it has no digit)."""
    digits = [i for i, ch in enumerate(step) if ch.isdigit()]
    if not digits:
        return None
    i = rng.choice(digits)
    return step[:i] + rng.choice([d for d in "0123456789" if d != step[i]]) + step[i + 1:]


def flip_sign(step, rng):
    """The step with one ` + ` made ` - ` or back, or one number's `-` dropped (None when it has neither)."""
    ops = [i + 1 for i in range(len(step) - 2) if step[i:i + 3] in (" + ", " - ")]
    minus = [i for i in range(len(step) - 1) if step[i] == "-" and step[i + 1].isdigit() and (i == 0 or step[i - 1] == " ")]
    if not ops + minus:
        return None
    i = rng.choice(ops + minus)
    if i in ops:
        return step[:i] + ("-" if step[i] == "+" else "+") + step[i + 1:]
    return step[:i] + step[i + 1:]


def equation_cases(rows, rng):
    """The `equations` cases and whole solutions (see the module docstring)."""
    linear = [r for r in synth_rows(EQUATION_PER_LEVEL, EQUATION_SEED) if r["subject"] == "Linear Equations"]
    pairs = [(None, s) for s in EXAMPLES + EDGE]
    for row in rows + linear:
        steps = row["solution"].split("\n\n")
        for previous, step in zip([row["problem"]] + steps, steps):
            wrong = corrupt_any(step, rng)
            pairs += [(previous, step)] + ([(previous, wrong)] if wrong is not None else [])
    pairs = list(dict.fromkeys(pairs + MALFORMED))
    cases = [{"previous": p, "step": s, "mode": "equations", "text": render_step(s, "equations", p)[0]} for p, s in pairs]
    sources = [(r["problem"], r["solution"]) for r in rows[::10] + linear]
    for r in linear:
        steps = r["solution"].split("\n\n")
        k = rng.randrange(len(steps) - 1)
        wrong = corrupt_any(steps[k], rng)
        if wrong is not None:
            sources.append((r["problem"], "\n\n".join(steps[:k] + [wrong] + steps[k + 1:])))
    solutions = []
    for problem, solution in sources + MALFORMED_SOLUTIONS:
        text, ends = render_solution(solution, "equations", problem=problem)
        solutions.append({"problem": problem, "solution": solution, "mode": "equations", "text": text, "ends": ends})
    return cases, solutions


def grounded_cases(rng):
    """The `grounded` cases: every step of the `Compute` problems of a ladder-2 draw, after its
    previous line and with the numbers it copies from, gold and with one step corrupted (a digit
    changed anywhere, which in a step's first side is a number copied wrong, or a sign flipped); and
    the whole solutions, with hand-written ones that stray from the gold form."""
    rows = [r for r in synth_rows(GROUNDED_PER_LEVEL, GROUNDED_SEED, ladder=2) if r["problem"].startswith(COMPUTE)]
    sources = []
    for r in rows:
        steps = r["solution"].split("\n\n")
        sources.append((r["problem"], r["solution"]))
        k = rng.randrange(len(steps))
        wrong = corrupt_any(steps[k], rng)
        if wrong is not None:
            sources.append((r["problem"], "\n\n".join(steps[:k] + [wrong] + steps[k + 1:])))
    cases, solutions = [], []
    for problem, solution in sources + MALFORMED_GROUNDED:
        pieces = [p for p in solution.split("\n\n") if p.strip()]
        for previous, step, copied in zip([problem] + pieces, pieces, copy_sources(problem, [p.rstrip() for p in pieces])):
            cases.append({"previous": previous, "step": step, "sources": copied, "mode": "grounded",
                          "text": render_step(step, "grounded", previous, copied)[0]})
        text, ends = render_solution(solution, "grounded", problem=problem)
        solutions.append({"problem": problem, "solution": solution, "mode": "grounded", "text": text, "ends": ends})
    return cases, solutions


def fractions_cases(grounded, rng):
    """The `fractions` cases and whole solutions (see the module docstring); `grounded`: the
    `grounded` cases, each rendered again in mode `fractions`."""
    cases = [dict(c, mode="fractions", text=render_step(c["step"], "fractions", c["previous"], c["sources"])[0])
             for c in grounded]
    cases += [{"previous": None, "step": s, "mode": "fractions", "text": render_step(s, "fractions")[0]} for s in FRACTION_EDGE]
    rows = [r for r in synth_rows(FRACTIONS_PER_LEVEL, FRACTIONS_SEED, ladder=2) if r["subject"] == "Fractions"]
    seen = {(c["previous"], c["step"], tuple(c.get("sources") or ())) for c in cases}
    sources = []
    for r in rows:
        steps = r["solution"].split("\n\n")
        for previous, step, copied in zip([r["problem"]] + steps, steps, copy_sources(r["problem"], steps)):
            for s in (step, change_digit(step, rng), flip_sign(step, rng)):
                if s is not None and (previous, s, tuple(copied)) not in seen:
                    seen.add((previous, s, tuple(copied)))
                    cases.append({"previous": previous, "step": s, "sources": copied, "mode": "fractions",
                                  "text": render_step(s, "fractions", previous, copied)[0]})
        sources.append((r["problem"], r["solution"]))
        k = rng.randrange(len(steps))
        wrong = corrupt_any(steps[k], rng)
        if wrong is not None:
            sources.append((r["problem"], "\n\n".join(steps[:k] + [wrong] + steps[k + 1:])))
    solutions = []
    for problem, solution in sources + MALFORMED_GROUNDED + MALFORMED_FRACTIONS:
        text, ends = render_solution(solution, "fractions", problem=problem)
        solutions.append({"problem": problem, "solution": solution, "mode": "fractions", "text": text, "ends": ends})
    return cases, solutions


def main():
    rng = random.Random(SEED)
    rows = synth_rows()
    steps = EXAMPLES + EDGE
    for row in rows:
        for step in row["solution"].split("\n\n"):
            steps.append(step)
            wrong = corrupt(step, rng) if rng.random() < 0.3 else None
            if wrong is not None:
                steps.append(wrong)
    unique = list(dict.fromkeys(steps))
    cases = [{"step": s, "mode": mode, "text": render_step(s, mode)[0]} for s in unique for mode in MODES]
    solutions = []
    for row in rows[::10]:
        for mode in MODES:
            text, ends = render_solution(row["solution"], mode)
            solutions.append({"problem": row["problem"], "solution": row["solution"], "mode": mode, "text": text, "ends": ends})
    more_cases, more_solutions = equation_cases(rows, random.Random(EQUATION_SEED))
    grounded, grounded_solutions = grounded_cases(random.Random(GROUNDED_SEED))
    fractions, fractions_solutions = fractions_cases(grounded, random.Random(FRACTIONS_SEED))
    cases += more_cases + grounded + fractions
    solutions += more_solutions + grounded_solutions + fractions_solutions
    command = (f"DELIBERATE_CLI=<built cli.js> python3 models/train/render_cases.py "
               f"(data synth --split train --per-level {PER_LEVEL} --seed {SEED}; corruption seed {SEED}; equations: "
               f"data synth --split train --per-level {EQUATION_PER_LEVEL} --seed {EQUATION_SEED}, its linear equations; "
               f"corruption seed {EQUATION_SEED}; grounded: data synth --split train --per-level {GROUNDED_PER_LEVEL} "
               f"--seed {GROUNDED_SEED} --ladder 2, its Compute problems; corruption seed {GROUNDED_SEED}; fractions: "
               f"data synth --split train --per-level {FRACTIONS_PER_LEVEL} --seed {FRACTIONS_SEED} --ladder 2, its "
               f"Fractions problems; corruption seed {FRACTIONS_SEED})")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"command": command, "cases": cases, "solutions": solutions}, f, ensure_ascii=True, indent=0)
        f.write("\n")
    print(f"{len(unique)} steps, {len(more_cases)} (previous, step) pairs, {len(fractions)} fractions cases, {len(cases)} cases, "
          f"{len(solutions)} solutions -> {os.path.relpath(OUT, ROOT)} ({os.path.getsize(OUT) // 1024} KB)")


if __name__ == "__main__":
    main()
