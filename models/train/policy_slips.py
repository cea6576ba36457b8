"""What the policy's wrong steps look like (issue 15), over steps whose earlier steps are all right:
- integer steps `a op b = c`, by how the result differs from the right one: off by a power of ten (a
  carry or borrow, or a units slip), one digit different, the sign, or otherwise;
- fraction steps, by what is wrong: the step is a true equation with a number copied wrong (the
  labels' grounding rule), or it is false, and then by its shape: a conversion to a common
  denominator (`a/b + c/d = e/f + g/f`), a sum of numerators (`e/f + g/f = h/f`), a simplification
  (`h/f = i/j`), or another.
Reads the labelled samples that `rank_check.py --fresh-samples` keeps; no model, no torch.

    python3 models/train/policy_slips.py work/rank_samples_policy_rev_20.labelled.jsonl
"""
import collections
import json
import re
import sys
from fractions import Fraction

INTEGER_STEP = re.compile(r"(-?\d+) ([-+*]) (-?\d+) = (-?\d+)")


def slip(a, op, b, c):
    t = a + b if op == "+" else a - b if op == "-" else a * b
    if c == -t:
        return "sign"
    if abs(c - t) in (1, 10, 100, 1000, 10000, 100000):
        return "off by 10^k"
    sc, st = str(abs(c)), str(abs(t))
    if len(sc) == len(st) and sum(x != y for x, y in zip(sc, st)) == 1:
        return "one digit"
    return "other"


def side_value(side):
    """The value of a sum of integers and fractions, `-51/14 - 1/2`."""
    total = Fraction(0)
    for term in side.replace(" - ", " + -").split(" + "):
        num, _, den = term.strip().partition("/")
        total += Fraction(int(num), int(den or 1))
    return total


def fraction_slip(step):
    sides = step.split(" = ")
    try:
        values = {side_value(side) for side in sides}
    except ValueError:
        return "other"
    if len(values) == 1:
        return "true, a number copied wrong"
    terms = [side.count("/") for side in sides]
    if len(sides) == 2 and terms[0] == terms[1] > 1:
        return "false: conversion"
    if len(sides) == 2 and terms[0] > 1 and terms[1] <= 1:
        return "false: numerator sum"
    if len(sides) == 2 and terms[0] == 1 and terms[1] <= 1:
        return "false: simplification"
    return "other"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "models/train/work/rank_samples_policy_rev_20.labelled.jsonl"
    counts = collections.defaultdict(collections.Counter)
    fractions = collections.Counter()
    for line in open(path):
        r = json.loads(line)
        steps = [s for s in r["solution"].split("\n\n") if s.strip()]
        for k, step in enumerate(steps[:len(r["stepCorrect"])]):
            if k > 0 and not r["prefixCorrect"][k - 1]:
                break
            m = INTEGER_STEP.fullmatch(step.strip())
            if not m and "/" in step and "x" not in step and not step.strip().startswith("The answer"):
                fractions["steps"] += 1
                if not r["stepCorrect"][k]:
                    fractions[fraction_slip(step.strip())] += 1
            if m:
                counts[m.group(2)]["steps"] += 1
                if not r["stepCorrect"][k]:
                    counts[m.group(2)][slip(int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)))] += 1
    kinds = ["off by 10^k", "one digit", "sign", "other"]
    print("| step | steps | wrong | " + " | ".join(kinds) + " |\n|---|---|---|" + "---|" * len(kinds))
    for op in "+-*":
        c = counts[op]
        print(f"| integer {op} | {c['steps']} | {sum(c[k] for k in kinds)} | " + " | ".join(str(c[k]) for k in kinds) + " |")
    kinds = ["true, a number copied wrong", "false: conversion", "false: numerator sum", "false: simplification", "other"]
    print("\n| step | steps | wrong | " + " | ".join(kinds) + " |\n|---|---|---|" + "---|" * len(kinds))
    print(f"| fractions | {fractions['steps']} | {sum(fractions[k] for k in kinds)} | "
          + " | ".join(str(fractions[k]) for k in kinds) + " |")


if __name__ == "__main__":
    main()
