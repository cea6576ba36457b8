"""How well a PRM checks the policy's own products (issue 15): over the product steps `a * b = c`
of the labelled samples that `rank_check.py --fresh-samples` keeps (ladder 2, steps whose earlier
steps are all right),
- each distinct step alone, in the single-step form prm_steps.py trains on: AUC of right against
  wrong, overall and by the multiplier's size (one digit, or 10-25);
- in context, as rank_check.py measures it: on `--problems` problems that have a wrong product step,
  every sample's whole solution scored, and the within-problem AUC of a right against a wrong k-th
  product step (wrong ones split by whether the arithmetic is false or the step copied a number wrong).

    OMP_NUM_THREADS=1 /usr/bin/python3 models/train/product_check.py --prm prm_grounded2
"""
import argparse
import json
import os
import random
from collections import defaultdict

import torch

from data import TOK
from prm import INTEGER_STEP, auc, load_prm
from prm_steps import batch_solutions
from rank_check import rendered_scores, step_kind
from render import render_step
from train import WORK

SAMPLES = "rank_samples_rev_gpu_s25_500_ladder2_first16000.labelled.jsonl"


def product_steps(row):
    """The sample's steps, and the indices of its product steps up to its first wrong step."""
    steps = [s.strip() for s in row["solution"].split("\n\n") if s.strip()]
    found = []
    for k, step in enumerate(steps):
        if k > 0 and not row["prefixCorrect"][k - 1]:
            break
        if step_kind(step) == "integer *":
            found.append(k)
    return steps, found


def arithmetic_true(step):
    m = INTEGER_STEP.fullmatch(step)
    return int(m.group(1)) * int(m.group(3)) == int(m.group(4))


@torch.no_grad()
def single_step_scores(prm, steps, mode, batch_size=128):
    """The PRM's logit at the last token of each step rendered alone (bos + rendering), as
    prm_steps.py trains and evaluates single steps."""
    out = []
    for i in range(0, len(steps), batch_size):
        exs = [[TOK.bos_id] + TOK.encode(render_step(s, mode)[0]) for s in steps[i:i + batch_size]]
        ids, pos, bi, ti, _ = batch_solutions([(e, [], [], [len(e) - 1], [True]) for e in exs], dense=False)
        out += prm(ids, pos)[bi, ti].tolist()
    return out


def single_steps(prm, mode, rows, n):
    truth = {}
    for r in rows:
        steps, ks = product_steps(r)
        for k in ks:
            truth[steps[k]] = arithmetic_true(steps[k])
    items = sorted(truth.items())
    random.Random(0).shuffle(items)
    items = items[:n]
    scores = single_step_scores(prm, [s for s, _ in items], mode)
    y = [t for _, t in items]
    print(f"single steps: {len(items)} distinct product steps, {len(y) - sum(y)} wrong, AUC {auc(scores, y):.3f}")
    for name, lo, hi in [("one-digit multiplier", 2, 9), ("multiplier 10-25", 10, 25)]:
        sel = [(s, t) for s, (step, t) in zip(scores, items) if lo <= int(INTEGER_STEP.fullmatch(step).group(3)) <= hi]
        print(f"  {name}: {len(sel)} steps, {sum(1 for _, t in sel if not t)} wrong, "
              f"AUC {auc([s for s, _ in sel], [t for _, t in sel]):.3f}")


def within_problems(prm, mode, rows, n_problems):
    by_problem = defaultdict(list)
    for r in rows:
        by_problem[r["problem"]].append(r)

    def has_wrong_product(r):
        steps, ks = product_steps(r)
        return any(not r["stepCorrect"][k] for k in ks)
    problems = sorted(p for p, rs in by_problem.items() if any(has_wrong_product(r) for r in rs))
    random.Random(0).shuffle(problems)
    chosen = [r for p in problems[:n_problems] for r in by_problem[p] if product_steps(r)[1]]
    scores = rendered_scores(prm, chosen, mode)
    pairs = defaultdict(lambda: ([], []))  # (problem, k) -> right scores, (wrong score, arithmetic true)
    for r, sc in zip(chosen, scores):
        steps, ks = product_steps(r)
        if len(sc) != len(steps):
            continue
        for k in ks:
            if r["stepCorrect"][k]:
                pairs[(r["problem"], k)][0].append(sc[k])
            else:
                pairs[(r["problem"], k)][1].append((sc[k], arithmetic_true(steps[k])))

    def within(keep):
        won = [1.0 if a > b else 0.5 if a == b else 0.0
               for good, bad in pairs.values() for a in good for b, true in bad if keep(true)]
        return (sum(won) / len(won) if won else float("nan")), len(won)
    print(f"in context: {min(n_problems, len(problems))} problems with a wrong product step, {len(chosen)} samples")
    for name, keep in [("every wrong product step", lambda t: True), ("arithmetic false", lambda t: not t),
                       ("arithmetic true, a number copied wrong", lambda t: t)]:
        value, n = within(keep)
        print(f"  within-problem AUC, {name}: {value:.3f} ({n} pairs)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prm", required=True, help="the PRM checkpoint in work/")
    ap.add_argument("--samples", default=SAMPLES, help="labelled samples in work/ (rank_check.py's)")
    ap.add_argument("--steps", type=int, default=2000, help="distinct product steps scored alone")
    ap.add_argument("--problems", type=int, default=150, help="problems scored in context")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [json.loads(line) for line in open(os.path.join(WORK, args.samples))]
    prm, ck = load_prm(args.prm)
    mode = ck.get("render", "grounded")
    print(f"{args.prm} (rendering {mode}) on {args.samples}")
    single_steps(prm, mode, rows, args.steps)
    within_problems(prm, mode, rows, args.problems)


if __name__ == "__main__":
    main()
