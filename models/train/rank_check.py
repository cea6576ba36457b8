"""How well a verifier picks a right sample among one problem's samples, per level: the PRM (final
step score) against the policy's own likelihood of each sample (sum of its token log-probabilities,
no training). Then which mistakes the PRM catches: per kind of step, the AUC of the PRM's score at
that step against the step's own label, over steps whose earlier steps are all right. Reads the 16
labelled samples per problem of the last `evaluate.py` run. Last, what a perfect checker of only
some kinds of step would give: the weighted vote with a zero score for every sample whose first
wrong step is of those kinds.

    /usr/bin/python3 models/train/rank_check.py --problems-per-level 100

Without the last evaluation's samples (a fresh checkout), `--fresh-samples` draws the policy's 16
samples (T=0.8) for the first problems of each level of the same test split and keeps them in
work/rank_samples_{POLICY}_{N}.labelled.jsonl; a PRM checkpoint trained on a verifier rendering (its `render`
field, see render.py) reads the solutions in that rendering:

    OMP_NUM_THREADS=1 /usr/bin/python3 models/train/rank_check.py --problems-per-level 30 --fresh-samples --prm prm

`--ladder 2` draws the problems from another difficulty ladder (`data synth --ladder`).
"""
import argparse
import json
import os
from collections import defaultdict

import torch
import torch.nn.functional as F

from data import DEVICE, collate, example, label, policy_prompt, read_jsonl, reuse_labelled, synth
from generate import generate
from evaluate import MODELS, N_SAMPLES, best_of_n
from prm import INTEGER_STEP, auc, batch_prm, load_prm, positions, step_scores, top_choice_accuracy
import render
from train import WORK, load_lm


# One-step problems with their right result first, then wrong ones (one an operand copied).
SPOT_CHECKS = [("Compute 17 - 10.", ["7", "17", "8", "27"]), ("Compute 45 + 38.", ["83", "73", "84", "45"]),
               ("Compute 12 * 7.", ["84", "74", "85", "12"])]


@torch.no_grad()
def rendered_scores(prm, rows, mode, batch_size=64):
    """step_scores for a PRM that reads solutions in a verifier rendering (render.py)."""
    if mode in (None, "ordinary"):
        return step_scores(prm, rows)
    prm.eval()
    out = []
    for i in range(0, len(rows), batch_size):
        exs = [render.prm_example(r["problem"], r["solution"], mode) for r in rows[i:i + batch_size]]
        ids, mask = (t.to(DEVICE) for t in batch_prm(exs))
        probs = torch.sigmoid(prm(ids, positions(mask)))
        out += [probs[b, ends].tolist() for b, (_, ends) in enumerate(exs)]
    return out


def samples_name(policy_name, per_level, ladder=None):
    """Where fresh samples are kept (ladder_check.py keeps its samples here too, for rank_check to reuse)."""
    return f"rank_samples_{policy_name}_{per_level}" + ("" if ladder == 1 else f"_ladder{ladder}")


def fresh_samples(policy, policy_name, per_level, seed=0, ladder=1):
    """16 labelled policy samples (T=0.8) for each of the first `per_level` test problems of each level."""
    path = os.path.join(WORK, samples_name(policy_name, per_level, ladder))
    test = synth("test", 500 * 5, seed + 1, os.path.join(WORK, "test_500.jsonl" if ladder == 1 else f"test_500_ladder{ladder}.jsonl"), ladder)
    chosen, count = [], defaultdict(int)
    for p in test:
        if count[p["level"]] < per_level:
            count[p["level"]] += 1
            chosen.append(p)
    rows = [dict(p, gold_solution=p["solution"]) for p in chosen for _ in range(N_SAMPLES)]
    if os.path.exists(path + ".labelled.jsonl"):  # drawn before: same problems, same policy
        return reuse_labelled(rows, os.path.basename(path), WORK)
    # or drawn for more problems per level: the test problems interleave the levels, so the first
    # per_level of each level are the first 5 * per_level problems, and their samples come first
    for more in (500, 200, 100):
        if more > per_level and os.path.exists(os.path.join(WORK, samples_name(policy_name, more, ladder) + ".labelled.jsonl")):
            return reuse_labelled(rows, samples_name(policy_name, more, ladder), WORK, first=True)
    sols = generate(policy, [policy_prompt(r["problem"]) for r in rows], temperature=0.8, seed=seed + 5)
    return label([dict(r, solution=s) for r, s in zip(rows, sols)], WORK, os.path.basename(path))


def spot_checks(prm, mode=None):
    """The PRM's final score for a right one-step solution and near misses of it."""
    rows = [{"problem": p, "solution": f"{p[len('Compute '):-1]} = {r}\n\nThe answer is \\boxed{{{r}}}"}
            for p, results in SPOT_CHECKS for r in results]
    scores = rendered_scores(prm, rows, mode)
    for r, s in zip(rows, scores):
        print(f"PRM {s[-1]:.3f}  {r['problem']}  {r['solution'].splitlines()[0]}")


def step_kind(step):
    """What a step does: integer +, -, * (`a op b = c`), fraction work, an equation in x, or the answer."""
    step = step.strip()
    m = INTEGER_STEP.fullmatch(step)
    if m:
        return "integer " + m.group(2)
    if step.startswith("The answer"):
        return "answer"
    if "x" in step:
        return "equation in x"
    return "fractions" if "/" in step else "other"


def mistakes_caught(rows, scores):
    """Per step kind, over steps whose earlier steps are all right (so the label is the step's own):
    the AUC of the PRM's score at the step against its label, pooled over problems, and within
    problems (the share of pairs of a right and a wrong k-th step of the same problem, of the same
    kind, that the PRM orders right, ties counting half), which is what choosing among samples needs."""
    pooled = defaultdict(lambda: ([], []))
    same_step = defaultdict(lambda: ([], []))  # (kind, problem, k) -> scores of right, of wrong steps
    for r, sc in zip(rows, scores):
        steps = [s for s in r["solution"].split("\n\n") if s.strip()]
        if len(steps) != len(sc):
            continue
        for k, (step, s) in enumerate(zip(steps, sc)):
            if k > 0 and not r["prefixCorrect"][k - 1]:
                break
            kind, right = step_kind(step), r["stepCorrect"][k]
            pooled[kind][0].append(s)
            pooled[kind][1].append(right)
            same_step[(kind, r["problem"], k)][0 if right else 1].append(s)
    report = {}
    for kind, (s, y) in sorted(pooled.items()):
        pairs = [(a, b) for (k, _, _), (good, bad) in same_step.items() if k == kind for a in good for b in bad]
        within = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs) if pairs else None
        report[kind] = {"steps": len(y), "wrong": len(y) - sum(y), "auc": auc(s, y), "within_auc": within, "pairs": len(pairs)}
    return report


def first_wrong_kind(row):
    """The kind of the sample's first wrong step (None when every step is right)."""
    steps = [s for s in row["solution"].split("\n\n") if s.strip()]
    k = next((k for k, right in enumerate(row["stepCorrect"]) if not right), None)
    return None if k is None or k >= len(steps) else step_kind(steps[k])


def checker_ceiling(rows, kinds):
    """Share of problems the weighted vote gets right when a checker scores 0 every sample whose
    first wrong step is one of `kinds`, and 1 the others (so among those, the majority wins)."""
    right = []
    for i in range(0, len(rows), N_SAMPLES):
        group = rows[i:i + N_SAMPLES]
        scores = [[0.0 if first_wrong_kind(r) in kinds else 1.0] for r in group]
        right.append(best_of_n(group, scores)["prm_weighted"])
    return sum(right) / len(right)


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
    ap.add_argument("--fresh-samples", action="store_true",
                    help="sample the policy on the first problems of each level instead of reading the last evaluation's samples")
    ap.add_argument("--policy", default="policy_rev", help="policy checkpoint in work/ that samples (with --fresh-samples)")
    ap.add_argument("--ladder", type=int, default=1, help="the difficulty ladder of the problems (with --fresh-samples)")
    ap.add_argument("--render", help="read the solutions in this rendering (render.py) instead of the checkpoint's own")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    policy, _ = load_lm(args.policy)
    if args.fresh_samples:
        samples = fresh_samples(policy, args.policy, args.problems_per_level, ladder=args.ladder)
        test = [samples[i] for i in range(0, len(samples), N_SAMPLES)]
    else:
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
    prm, ck = load_prm(args.prm)
    mode = args.render or ck.get("render")
    print(f"PRM work/{args.prm}.pt, rendering {mode or 'ordinary'}")
    spot_checks(prm, mode)
    report, rows_by_level, scores_by_level = {}, {}, {}
    for level in sorted(by_level):
        rows = rows_by_level[level] = [samples[i * N_SAMPLES + k] for i in by_level[level] for k in range(N_SAMPLES)]
        scores = scores_by_level[level] = rendered_scores(prm, rows, mode)
        prm_rank = top_choice_accuracy(rows, scores, N_SAMPLES)
        chosen = [best_of_n(rows[i:i + N_SAMPLES], scores[i:i + N_SAMPLES]) for i in range(0, len(rows), N_SAMPLES)]
        likelihood = [[v] for v in log_likelihoods(policy, rows)]
        report[level] = {"problems": prm_rank["problems"], "mean_right": prm_rank["mean_right"],
                         "prm_top_right": prm_rank["top_scored_right"], "prm_weighted_right": sum(c["prm_weighted"] for c in chosen) / len(chosen),
                         "majority_right": sum(c["majority"] for c in chosen) / len(chosen),
                         "likelihood_top_right": top_choice_accuracy(rows, likelihood, N_SAMPLES)["top_scored_right"]}
        print(json.dumps({"level": level, **report[level]}), flush=True)
    print("| level | problems | a random sample right | PRM's top sample right | most likely sample right | "
          "majority vote right | PRM-weighted vote right |")
    print("|---|---|---|---|---|---|---|")
    for level, r in report.items():
        print(f"| {level} | {r['problems']} | {100 * r['mean_right']:.1f} | {100 * r['prm_top_right']:.1f} | "
              f"{100 * r['likelihood_top_right']:.1f} | {100 * r['majority_right']:.1f} | {100 * r['prm_weighted_right']:.1f} |")

    def shown(x):
        return "-" if x is None else f"{x:.3f}"

    print("\n| step | steps | wrong | PRM step AUC, pooled | within problems | right/wrong pairs |\n|---|---|---|---|---|---|")
    kinds = mistakes_caught([r for rows in rows_by_level.values() for r in rows],
                            [s for scores in scores_by_level.values() for s in scores])
    for kind, r in kinds.items():
        print(f"| {kind} | {r['steps']} | {r['wrong']} | {shown(r['auc'])} | {shown(r['within_auc'])} | {r['pairs']} |")

    print("\n| a perfect checker of | weighted vote right (mean over levels) | over a random sample |\n|---|---|---|")
    random_right = sum(r["mean_right"] for r in report.values()) / len(report)
    order = ["integer +", "integer -", "integer *", "fractions", "equation in x"]
    order += sorted(set(kinds) - set(order))
    for n in range(1, len(order) + 1):
        right = sum(checker_ceiling(rows, set(order[:n])) for rows in rows_by_level.values()) / len(rows_by_level)
        print(f"| {', '.join(order[:n])} | {100 * right:.1f} | {100 * (right - random_right):+.1f} |")

if __name__ == "__main__":
    main()
