"""What the policy's wrong integer steps look like (issue 15): over steps `a op b = c` whose earlier
steps are all right, the wrong ones by how the result differs from the right one: off by a power of
ten (a carry or borrow, or a units slip), one digit different, the sign, or otherwise. Reads the
labelled samples that `rank_check.py --fresh-samples` keeps; no model, no torch.

    python3 models/train/policy_slips.py work/rank_samples_policy_rev_20.labelled.jsonl
"""
import collections
import json
import re
import sys

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


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "models/train/work/rank_samples_policy_rev_20.labelled.jsonl"
    counts = collections.defaultdict(collections.Counter)
    for line in open(path):
        r = json.loads(line)
        steps = [s for s in r["solution"].split("\n\n") if s.strip()]
        for k, step in enumerate(steps[:len(r["stepCorrect"])]):
            if k > 0 and not r["prefixCorrect"][k - 1]:
                break
            m = INTEGER_STEP.fullmatch(step.strip())
            if m:
                counts[m.group(2)]["steps"] += 1
                if not r["stepCorrect"][k]:
                    counts[m.group(2)][slip(int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)))] += 1
    kinds = ["off by 10^k", "one digit", "sign", "other"]
    print("| step | steps | wrong | " + " | ".join(kinds) + " |\n|---|---|---|" + "---|" * len(kinds))
    for op in "+-*":
        c = counts[op]
        print(f"| integer {op} | {c['steps']} | {sum(c[k] for k in kinds)} | " + " | ".join(str(c[k]) for k in kinds) + " |")


if __name__ == "__main__":
    main()
