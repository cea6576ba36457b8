"""How well a verifier picks a right sample among one problem's samples, per level: the PRM (final
step score) against the policy's own likelihood of each sample (sum of its token log-probabilities,
no training). Reads the 16 labelled samples per problem of the last `evaluate.py` run.

    /usr/bin/python3 models/train/rank_check.py --problems-per-level 100
"""
import argparse
import json
import os
from collections import defaultdict

import torch
import torch.nn.functional as F

from data import DEVICE, collate, example, policy_prompt, read_jsonl
from evaluate import MODELS, N_SAMPLES
from prm import load_prm, step_scores, top_choice_accuracy
from train import WORK, load_lm


# One-step problems with their right result first, then wrong ones (one an operand copied).
SPOT_CHECKS = [("Compute 17 - 10.", ["7", "17", "8", "27"]), ("Compute 45 + 38.", ["83", "73", "84", "45"]),
               ("Compute 12 * 7.", ["84", "74", "85", "12"])]


def spot_checks(prm):
    """The PRM's final score for a right one-step solution and near misses of it."""
    rows = [{"problem": p, "solution": f"{p[len('Compute '):-1]} = {r}\n\nThe answer is \\boxed{{{r}}}"}
            for p, results in SPOT_CHECKS for r in results]
    scores = step_scores(prm, rows)
    for r, s in zip(rows, scores):
        print(f"PRM {s[-1]:.3f}  {r['problem']}  {r['solution'].splitlines()[0]}")


@torch.no_grad()
def log_likelihoods(policy, rows, batch_size=128):
    """Sum of the policy's log-probabilities of each solution's tokens (and its <eos>)."""
    policy.eval()
    out = []
    for i in range(0, len(rows), batch_size):
        ids, pos, tgt = (t.to(DEVICE) for t in collate(
            [example(policy_prompt(r["problem"]), r["solution"]) for r in rows[i:i + batch_size]]))
        logp = F.log_softmax(policy(ids, pos)[0], -1)
        mask = tgt != -100
        token = logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        out += (token * mask).sum(1).tolist()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems-per-level", type=int, default=100)
    ap.add_argument("--prm", default="prm", help="PRM checkpoint name in work/ (prm is the exported one)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    with open(os.path.join(MODELS, "eval.json")) as f:
        per_level = json.load(f)["test"]["per_level"]
    samples = read_jsonl(os.path.join(WORK, "eval_samples.labelled.jsonl"))
    test = read_jsonl(os.path.join(WORK, f"test_{per_level}.jsonl"))
    if len(samples) != len(test) * N_SAMPLES:
        raise SystemExit("work/eval_samples.labelled.jsonl does not match the last evaluation: run evaluate.py first")
    by_level = defaultdict(list)
    for i, p in enumerate(test):
        if len(by_level[p["level"]]) < args.problems_per_level:
            by_level[p["level"]].append(i)
    policy, _ = load_lm("policy_rev")
    prm, _ = load_prm(args.prm)
    spot_checks(prm)
    report = {}
    for level in sorted(by_level):
        rows = [samples[i * N_SAMPLES + k] for i in by_level[level] for k in range(N_SAMPLES)]
        prm_rank = top_choice_accuracy(rows, step_scores(prm, rows), N_SAMPLES)
        likelihood = [[v] for v in log_likelihoods(policy, rows)]
        report[level] = {"problems": prm_rank["problems"], "mean_right": prm_rank["mean_right"],
                         "prm_top_right": prm_rank["top_scored_right"],
                         "likelihood_top_right": top_choice_accuracy(rows, likelihood, N_SAMPLES)["top_scored_right"]}
        print(json.dumps({"level": level, **report[level]}), flush=True)
    print("| level | problems | a random sample right | PRM's top sample right | most likely sample right |")
    print("|---|---|---|---|---|")
    for level, r in report.items():
        print(f"| {level} | {r['problems']} | {100 * r['mean_right']:.1f} | {100 * r['prm_top_right']:.1f} | "
              f"{100 * r['likelihood_top_right']:.1f} |")


if __name__ == "__main__":
    main()
