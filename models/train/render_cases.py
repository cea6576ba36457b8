"""Conformance cases for the TypeScript port of render.py (src/runtime/prm-rendering.ts): writes
test/fixtures/prm-rendering/cases.json, which test/prm-rendering.test.ts checks the port against.

    DELIBERATE_CLI=/path/to/dist/src/cli.js python3 models/train/render_cases.py

Cases: render.py's own examples, hand-picked edge cases, and the steps of gold solutions of the
synthetic train split (`data synth`, 30 problems per level) with some results corrupted (seeded), in
every mode; plus whole solutions (render_solution) with their step ends. Plain python3, no torch.
"""
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from render import render_solution, render_step  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("DELIBERATE_CLI", os.path.join(ROOT, "dist", "src", "cli.js"))
OUT = os.path.join(ROOT, "test", "fixtures", "prm-rendering", "cases.json")
MODES = ["ordinary", "columns", "overlap"]
PER_LEVEL = 30
SEED = 0

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


def synth_rows():
    out = subprocess.run(["node", CLI, "data", "synth", "--split", "train", "--per-level", str(PER_LEVEL), "--seed", str(SEED)],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def corrupt(step, rng):
    """The step with one digit of its last number changed (None when it has no digit after `=`)."""
    eq = step.rfind("=")
    digits = [i for i in range(eq + 1, len(step)) if step[i].isdigit()] if eq >= 0 else []
    if not digits:
        return None
    i = rng.choice(digits)
    return step[:i] + rng.choice([d for d in "0123456789" if d != step[i]]) + step[i + 1:]


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
    command = (f"DELIBERATE_CLI=<built cli.js> python3 models/train/render_cases.py "
               f"(data synth --split train --per-level {PER_LEVEL} --seed {SEED}; corruption seed {SEED})")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"command": command, "cases": cases, "solutions": solutions}, f, ensure_ascii=True, indent=0)
        f.write("\n")
    print(f"{len(unique)} steps, {len(cases)} cases, {len(solutions)} solutions -> {os.path.relpath(OUT, ROOT)} "
          f"({os.path.getsize(OUT) // 1024} KB)")


if __name__ == "__main__":
    main()
