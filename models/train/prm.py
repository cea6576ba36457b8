"""Process reward model: the trained policy's backbone + a linear head, trained with class-balanced
BCE at step-boundary tokens on the policy's own samples labelled by `data label`, plus one gold
solution per training problem.

    /usr/bin/python3 models/train/prm.py --seed 0 --minutes 11
"""
import argparse
import json
import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

from data import STEP_DELIMITER, TOK, label, policy_prompt
from generate import generate
from model import LM, PRM
from train import WORK, load_lm, log, task_data


def steps_of(solution):
    """Steps as `data label` sees them (split on the delimiter, empty pieces dropped), with the
    character offset of each step's last character in `solution`."""
    ends, start = [], 0
    for piece in solution.split(STEP_DELIMITER):
        stripped = piece.rstrip()
        if stripped.strip():
            ends.append(start + len(stripped) - 1)
        start += len(piece) + len(STEP_DELIMITER)
    return ends


def prm_example(problem, solution):
    """Token ids (<bos> problem \\n\\n solution) and the token index of each step's last character."""
    prefix = [TOK.bos_id] + TOK.encode(policy_prompt(problem))
    return prefix + TOK.encode(solution), [len(prefix) + e for e in steps_of(solution)]


def batch_prm(examples):
    T = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), T), TOK.pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), T), dtype=torch.long)
    for b, (x, _) in enumerate(examples):
        ids[b, :len(x)] = torch.tensor(x)
        mask[b, :len(x)] = 1
    return ids, mask


def positions(mask):
    """Position ids from an attention mask (either padding side): padding gets -1."""
    return torch.where(mask > 0, mask.cumsum(1) - 1, torch.full_like(mask, -1))


@torch.no_grad()
def step_scores(prm, rows, batch_size=128):
    """P(all steps so far correct) at each step boundary, for rows with problem + solution."""
    prm.eval()
    out = []
    for i in range(0, len(rows), batch_size):
        exs = [prm_example(r["problem"], r["solution"]) for r in rows[i:i + batch_size]]
        ids, mask = batch_prm(exs)
        probs = torch.sigmoid(prm(ids, positions(mask)))
        out += [probs[b, ends].tolist() for b, (_, ends) in enumerate(exs)]
    return out


def auc(scores, labels):
    """ROC AUC by the rank-sum formula (ties get average ranks); None when one class is missing."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return None
    order = s.argsort()
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for v in np.unique(s):  # average ranks of ties
        tie = s == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return float((ranks[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def auc_report(rows, scores, max_position=6):
    """AUC overall and within each step position (1-based; the last bucket holds the rest)."""
    flat = [(min(k + 1, max_position), s, y) for r, sc in zip(rows, scores)
            for k, (s, y) in enumerate(zip(sc, r["prefixCorrect"]))]
    rep = {"overall": auc([f[1] for f in flat], [f[2] for f in flat]), "n_steps": len(flat), "by_position": {}}
    for k in range(1, max_position + 1):
        sel = [f for f in flat if f[0] == k]
        if sel:
            rep["by_position"][str(k)] = {"auc": auc([f[1] for f in sel], [f[2] for f in sel]), "n": len(sel),
                                          "positive_rate": sum(f[2] for f in sel) / len(sel)}
    return rep


def usable(rows):
    """Rows whose step split agrees with the labeller's."""
    return [r for r in rows if len(steps_of(r["solution"])) == len(r["prefixCorrect"]) > 0]


def sample_labelled(policy, problems, n_samples, seed, name):
    prompts = [policy_prompt(p["problem"]) for p in problems for _ in range(n_samples)]
    sols = generate(policy, prompts, temperature=0.8, seed=seed)
    rows = [dict(p, gold_solution=p["solution"], solution=s)
            for p, s in zip([p for p in problems for _ in range(n_samples)], sols)]
    return label(rows, WORK, name)


def train_prm(seed, minutes, n_problems=1500, n_samples=8, batch_size=64, lr=1e-3):
    ckpt = os.path.join(WORK, "prm.pt")
    if os.path.exists(ckpt):
        log("prm: checkpoint exists, skipped")
        return
    logfile = os.path.join(WORK, "prm.log")
    train, _ = task_data(seed)
    policy, _ = load_lm("policy_rev")
    rng = random.Random(seed + 3)
    problems = rng.sample(train, n_problems)
    t0 = time.time()
    rows = usable(sample_labelled(policy, problems, n_samples, seed + 3, "prm_samples"))
    log(f"prm: {len(rows)} labelled samples in {(time.time() - t0) / 60:.1f} min, "
        f"{sum(r['correct'] for r in rows)} right", logfile)
    n_val = len(rows) // 10  # rows are grouped by problem: the tail problems are held out
    val, tr = rows[-n_val:], rows[:-n_val]
    exs = [(prm_example(r["problem"], r["solution"]), r["prefixCorrect"]) for r in tr]
    # One gold solution per training problem: right prefixes are rare at late steps in the policy's
    # samples, and without these the PRM learns that long solutions are wrong.
    gold = {r["problem"]: r["gold_solution"] for r in tr}
    exs += [(prm_example(p, s), [True] * len(steps_of(s))) for p, s in gold.items()]
    batch_size = min(batch_size, len(exs))
    labels = [y for _, ys in exs for y in ys]
    n_pos = sum(labels)
    w_pos, w_neg = len(labels) / (2 * max(n_pos, 1)), len(labels) / (2 * max(len(labels) - n_pos, 1))
    log(f"prm: {len(labels)} step labels, {n_pos / len(labels):.3f} positive; weights {w_pos:.2f}/{w_neg:.2f}",
        logfile)

    torch.manual_seed(seed)
    prm = PRM(policy)
    torch.nn.init.zeros_(prm.head.weight)
    torch.nn.init.zeros_(prm.head.bias)
    opt = torch.optim.AdamW(prm.parameters(), lr=lr, weight_decay=0.01)
    start, step, ema = time.time(), 0, None
    order = []
    while time.time() - start < minutes * 60:
        frac = (time.time() - start) / (minutes * 60)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 50) * (1 - 0.9 * frac)
        if len(order) < batch_size:
            order = list(range(len(exs)))
            rng.shuffle(order)
        batch = [exs[order.pop()] for _ in range(batch_size)]
        ids, mask = batch_prm([e for e, _ in batch])
        bi = torch.tensor([b for b, (e, ys) in enumerate(batch) for _ in ys])
        ti = torch.tensor([t for e, ys in batch for t in e[1]])
        y = torch.tensor([float(v) for _, ys in batch for v in ys])
        prm.train()
        logit = prm(ids, positions(mask))[bi, ti]
        w = torch.where(y > 0, torch.full_like(y, w_pos), torch.full_like(y, w_neg))
        loss = F.binary_cross_entropy_with_logits(logit, y, weight=w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prm.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 50 == 0:
            log(f"prm step {step} loss {ema:.4f}", logfile)
    rep = auc_report(val, step_scores(prm, val))
    stats = dict(steps=step, minutes=(time.time() - start) / 60, samples=len(rows), train_samples=len(tr),
                 gold_examples=len(gold),
                 val_samples=len(val), positive_rate=n_pos / len(labels), validation_auc=rep)
    log(f"prm: done {json.dumps(stats)}", logfile)
    torch.save(dict(cfg=policy.cfg, state=prm.state_dict(), stats=stats), ckpt)


def load_prm():
    ck = torch.load(os.path.join(WORK, "prm.pt"))
    prm = PRM(LM(ck["cfg"]))
    prm.load_state_dict(ck["state"])
    return prm.eval(), ck


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    train_prm(args.seed, args.minutes)


if __name__ == "__main__":
    main()
