"""Evaluate the policy, the PRM and revision on the synthetic test split; labels and grading come
from `data label`. Writes models/eval.json and the table in models/README.md.

    /usr/bin/python3 models/train/evaluate.py --per-level 250
"""
import argparse
import json
import os
import time
from collections import defaultdict

import torch

from data import label, policy_prompt, revision_prompt, synth
from generate import generate
from prm import auc_report, load_prm, step_scores
from train import WORK, load_lm, log

MODELS = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
LEVELS = [1, 2, 3, 4, 5]
N_SAMPLES = 16


def best_of_n(group, scores):
    """Chosen-answer correctness for PRM-weighted voting (sum of final scores per answer), plain
    max (highest final score) and majority voting, over one problem's samples."""
    final = [s[-1] if s else 0.0 for s in scores]
    weight, count, right = defaultdict(float), defaultdict(int), {}
    for r, f in zip(group, final):
        key = r["predicted"]
        if key is None:
            continue
        weight[key] += f
        count[key] += 1
        right[key] = r["correct"]
    if not weight:
        return {"prm_weighted": False, "prm_max": False, "majority": False}
    best = max(range(len(group)), key=lambda i: final[i])
    return {"prm_weighted": right[max(weight, key=weight.get)], "prm_max": group[best]["correct"],
            "majority": right[max(count, key=count.get)]}


def step_auc(rows, scores):
    """PRM AUC against the rule labels, on samples whose step split matches the labeller's."""
    keep = [k for k, r in enumerate(rows) if len(r["prefixCorrect"]) == len(scores[k]) > 0]
    return auc_report([rows[k] for k in keep], [scores[k] for k in keep])


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def evaluate(per_level, seed):
    torch.manual_seed(seed)
    test = synth("test", per_level * len(LEVELS), seed + 1, os.path.join(WORK, f"test_{per_level}.jsonl"))
    policy, _ = load_lm("policy_rev")
    prm, _ = load_prm()
    timing = {}

    t0 = time.time()
    greedy = label([dict(p, gold_solution=p["solution"], solution=s) for p, s in
                    zip(test, generate(policy, [policy_prompt(p["problem"]) for p in test]))], WORK, "eval_greedy")
    timing["greedy_s"] = time.time() - t0
    log(f"greedy accuracy {mean(r['correct'] for r in greedy):.3f}")

    t0 = time.time()
    prompts = [policy_prompt(p["problem"]) for p in test for _ in range(N_SAMPLES)]
    sols = generate(policy, prompts, temperature=0.8, seed=seed + 5)
    samples = label([dict(p, gold_solution=p["solution"], solution=s)
                     for p, s in zip([p for p in test for _ in range(N_SAMPLES)], sols)], WORK, "eval_samples")
    timing["sampling_s"] = time.time() - t0
    log(f"pass@1 {mean(r['correct'] for r in samples):.3f}")

    t0 = time.time()
    scores = step_scores(prm, samples)
    timing["prm_s"] = time.time() - t0

    t0 = time.time()
    revised = label([dict(r, solution=s) for r, s in zip(greedy, generate(
        policy, [revision_prompt(r["problem"], r["solution"]) for r in greedy]))], WORK, "eval_revised")
    timing["revision_s"] = time.time() - t0

    per = {}
    for lv in LEVELS:
        idx = [i for i, p in enumerate(test) if p["level"] == lv]
        groups = [(samples[i * N_SAMPLES:(i + 1) * N_SAMPLES], scores[i * N_SAMPLES:(i + 1) * N_SAMPLES]) for i in idx]
        bon = [best_of_n(g, s) for g, s in groups]
        wrong = [i for i in idx if not greedy[i]["correct"]]
        right = [i for i in idx if greedy[i]["correct"]]
        lv_rows = [r for g, _ in groups for r in g]
        lv_scores = [s for _, sc in groups for s in sc]
        per[str(lv)] = {
            "problems": len(idx),
            "greedy": mean(greedy[i]["correct"] for i in idx),
            "pass@1": mean(r["correct"] for g, _ in groups for r in g),
            "oracle_pass@16": mean(any(r["correct"] for r in g) for g, _ in groups),
            "majority@16": mean(b["majority"] for b in bon),
            "prm_weighted_best_of_16": mean(b["prm_weighted"] for b in bon),
            "prm_max_best_of_16": mean(b["prm_max"] for b in bon),
            "prm_auc": step_auc(lv_rows, lv_scores)["overall"],
            "revision_fixed": mean(revised[i]["correct"] for i in wrong),
            "revision_broken": mean(not revised[i]["correct"] for i in right),
            "revision_first_wrong": len(wrong),
            "revision_first_right": len(right),
        }
    auc = step_auc(samples, scores)
    avg = {k: mean(per[str(lv)][k] for lv in LEVELS) for k in
           ("greedy", "pass@1", "oracle_pass@16", "majority@16", "prm_weighted_best_of_16", "prm_max_best_of_16")}
    targets = {
        "oracle_pass@16 >= pass@1 + 0.25 at levels 2-4": all(
            per[str(lv)]["oracle_pass@16"] >= per[str(lv)]["pass@1"] + 0.25 for lv in (2, 3, 4)),
        "PRM step AUC >= 0.85": auc["overall"] is not None and auc["overall"] >= 0.85,
        "PRM-weighted best-of-16 >= pass@1 + 0.15 (average over levels)":
            avg["prm_weighted_best_of_16"] >= avg["pass@1"] + 0.15,
    }
    return {"test": {"split": "test", "per_level": per_level, "seed": seed + 1, "samples_per_problem": N_SAMPLES,
                     "temperature": 0.8},
            "by_level": per, "average_over_levels": avg, "prm_step_auc": auc,
            "revision": {"fixed": mean(revised[i]["correct"] for i in range(len(test)) if not greedy[i]["correct"]),
                         "broken": mean(not revised[i]["correct"] for i in range(len(test)) if greedy[i]["correct"])},
            "targets_met": targets, "timing_s": timing}


def pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}"


def fmt_auc(x):
    return "n/a" if x is None else f"{x:.3f}"


def table(ev):
    cols = [("greedy", "greedy"), ("pass@1", "pass@1 (T=0.8)"), ("oracle_pass@16", "oracle pass@16"),
            ("majority@16", "majority@16"), ("prm_weighted_best_of_16", "PRM-weighted best-of-16"),
            ("prm_max_best_of_16", "PRM max best-of-16"), ("revision_fixed", "revision: wrong fixed"),
            ("revision_broken", "revision: right broken")]
    lines = ["| level | " + " | ".join(c for _, c in cols) + " | PRM step AUC |",
             "|---" * (len(cols) + 2) + "|"]
    for lv in LEVELS:
        row = ev["by_level"][str(lv)]
        lines.append(f"| {lv} | " + " | ".join(pct(row[k]) for k, _ in cols) + f" | {fmt_auc(row['prm_auc'])} |")
    avg = dict(ev["average_over_levels"], revision_fixed=ev["revision"]["fixed"],
               revision_broken=ev["revision"]["broken"])  # revision: pooled over all problems
    lines.append("| all | " + " | ".join(pct(avg[k]) for k, _ in cols) +
                 f" | {fmt_auc(ev['prm_step_auc']['overall'])} |")
    pos = ev["prm_step_auc"]["by_position"]
    lines += ["", "PRM step AUC within step position (all levels; last bucket = that step and later):", "",
              "| step | " + " | ".join(pos) + " |", "|---" * (len(pos) + 1) + "|",
              "| AUC | " + " | ".join(fmt_auc(v["auc"]) for v in pos.values()) + " |",
              "| steps | " + " | ".join(str(v["n"]) for v in pos.values()) + " |",
              "| correct prefixes | " + " | ".join(pct(v["positive_rate"]) for v in pos.values()) + " |"]
    return "\n".join(lines)


def write_table(ev):
    path = os.path.join(MODELS, "README.md")
    begin, end = "<!-- eval-table:begin -->", "<!-- eval-table:end -->"
    text = open(path).read()
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + begin + "\n" + table(ev) + "\n" + end + rest.split(end, 1)[1]
        with open(path, "w") as f:
            f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-level", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    ev = evaluate(args.per_level, args.seed)
    with open(os.path.join(MODELS, "eval.json"), "w") as f:
        json.dump(ev, f, indent=2)
        f.write("\n")
    write_table(ev)
    print(table(ev))


if __name__ == "__main__":
    main()
