"""Process reward model: the trained policy's backbone + a linear head, trained with class-balanced
BCE at step-boundary tokens on the policy's own samples labelled by `data label`, plus one gold
solution per training problem. With `--single-step-share`, that share of batches are one-step
examples labelled at every character of the result (see `dense_labels`).

    /usr/bin/python3 models/train/prm.py --seed 0 --minutes 11
    /usr/bin/python3 models/train/prm.py --seed 0 --minutes 75 --reuse-samples --single-step-share 0.8 \
        --init prm_steps --lr 5e-4 --name prm_dense   # the model card's per-digit experiment
    python3 models/train/prm.py --seed 0 --minutes 5 --problems 12000 --batch-size 256   # on a GPU
"""
import argparse
import json
import os
import random
import re
import time

import numpy as np
import torch
import torch.nn.functional as F

from data import DEVICE, STEP_DELIMITER, TOK, label, policy_prompt, reuse_labelled
from generate import generate
from model import LM, PRM
from train import WORK, cpu_state, length_bucketed_batches, load_lm, log, task_data


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
        ids, mask = (t.to(DEVICE) for t in batch_prm(exs))
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


def top_choice_accuracy(rows, scores, group):
    """Over consecutive groups of `group` samples of one problem: how often the sample with the
    highest final score is right, against the mean correctness. The within-problem ranking that
    best-of-N needs, which a step AUC pooled over problems does not show."""
    top, mean = [], []
    for i in range(0, len(rows) - group + 1, group):
        g, sc = rows[i:i + group], scores[i:i + group]
        final = [s[-1] if s else 0.0 for s in sc]
        top.append(g[max(range(group), key=lambda j: final[j])]["correct"])
        mean.append(sum(r["correct"] for r in g) / group)
    return dict(top_scored_right=sum(top) / max(len(top), 1), mean_right=sum(mean) / max(len(mean), 1),
                problems=len(top))


def sample_labelled(policy, problems, n_samples, seed, name, reuse):
    """`n_samples` labelled policy samples per problem; with `reuse`, those of an earlier run read
    back from work/{name}.labelled.jsonl (same problems required; valid while the policy is unchanged)."""
    rows = [dict(p, gold_solution=p["solution"]) for p in problems for _ in range(n_samples)]
    if reuse:
        return reuse_labelled(rows, name, WORK)
    sols = generate(policy, [policy_prompt(r["problem"]) for r in rows], temperature=0.8, seed=seed)
    return label([dict(r, solution=s) for r, s in zip(rows, sols)], WORK, name)


NUMBER = re.compile(r"-?\d+")


def changed_result(step, rng):
    """The step with one number right of its last "=" changed (None when there is none): by a small
    offset, or one of its digits replaced (the policy's own mistakes are mostly in middle digits)."""
    rhs = step.rfind("=") + 1
    numbers = [m for m in NUMBER.finditer(step) if m.start() >= rhs]
    if not numbers:
        return None
    m = rng.choice(numbers)
    digits = m.group().lstrip("-")
    if rng.random() < 0.5 and len(digits) > 1:
        i = rng.randrange(1, len(digits))  # not the leading digit, so the length stays
        changed = m.group()[:len(m.group()) - len(digits) + i] + rng.choice([d for d in "0123456789" if d != digits[i]]) \
            + digits[i + 1:]
    else:
        changed = str(int(m.group()) + rng.choice([-100, -10, -2, -1, 1, 2, 10, 100, rng.randint(-99, 99) or 3]))
    return step[:m.start()] + changed + step[m.end():]


INTEGER_STEP = re.compile(r"(-?\d+) ([-+*]) (-?\d+) = (-?\d+)")


def right_result(step, gold_step):
    """The right text after the step's last "=": the gold step's when the step is a changed copy of
    it, else computed for an integer step `a op b = c`; None when unknown."""
    if gold_step is not None:
        return gold_step[gold_step.rfind("=") + 1:]
    m = INTEGER_STEP.fullmatch(step.strip())
    if not m:
        return None
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    return " " + str(a + b if op == "+" else a - b if op == "-" else a * b)


def dense_labels(problem, step, gold_step, step_label):
    """Token indices and labels for a single-step example: at every character of the result (after
    the last "="), whether the result so far is a prefix of the right one; the step's last character
    keeps the labeller's verdict. Checking digit by digit is a denser signal than one label per step."""
    ids, ends = prm_example(problem, step)
    right = right_result(step, gold_step)
    eq = step.rfind("=")
    if right is None or eq < 0:
        return (ids, ends), [step_label]
    offset = ends[0] - (len(step.rstrip()) - 1)
    written = step.rstrip()[eq + 1:]
    idx, ys = [], []
    for j in range(1, len(written) - 1):  # the last character is the step end, labelled below
        if written[j] != " ":
            idx.append(offset + eq + 1 + j)
            ys.append(written[:j + 1] == right[:j + 1])
    return (ids, idx + ends), ys + [step_label]


def single_step_rows(problems, samples, rng):
    """Short examples that teach checking one step: a problem followed by one step only, either a
    step of its gold solution (half of them with a number of the result changed) or a step of the
    policy's own samples. Labelled by `data label` like any solution; the label is that step's own.
    Gold-derived rows keep their unchanged gold step, for the per-character labels."""
    rows = []
    for p in problems:
        steps = [s for s in p["solution"].split(STEP_DELIMITER) if s.strip()]
        gold = rng.choice(steps)
        step = changed_result(gold, rng) if rng.random() < 0.5 else None
        rows.append(dict(problem=p["problem"], answer=p["answer"], solution=step or gold, gold_step=gold))
    for r in samples:
        steps = [s for s in r["solution"].split(STEP_DELIMITER) if s.strip()]
        if steps:
            rows.append(dict(problem=r["problem"], answer=r["answer"], solution=rng.choice(steps), gold_step=None))
    return usable(label(rows, WORK, "prm_single_steps"))


def class_weights(examples):
    """Class-balanced BCE weights (positive, negative) over the step labels of `examples`, and the
    share of positive labels."""
    labels = [y for _, ys in examples for y in ys]
    n_pos = sum(labels)
    return len(labels) / (2 * max(n_pos, 1)), len(labels) / (2 * max(len(labels) - n_pos, 1)), n_pos / len(labels)


def train_prm(seed, minutes, n_problems=1500, n_samples=8, batch_size=64, lr=1e-3, reuse_samples=False,
              single_step_share=0.0, name="prm", init=None):
    ckpt = os.path.join(WORK, name + ".pt")
    if os.path.exists(ckpt):
        log(f"{name}: checkpoint exists, skipped")
        return
    logfile = os.path.join(WORK, name + ".log")
    train, _ = task_data(seed)
    policy, _ = load_lm("policy_rev")
    rng = random.Random(seed + 3)
    problems = rng.sample(train, n_problems)
    t0 = time.time()
    sampled = sample_labelled(policy, problems, n_samples, seed + 3, "prm_samples", reuse_samples)
    # validation keeps every sample of its problems (for the within-problem ranking); training
    # keeps those whose step split agrees with the labeller's
    n_val_problems = max(n_problems // 10, 1)
    val_all = sampled[-n_val_problems * n_samples:]
    rows = usable(sampled[:-n_val_problems * n_samples])
    log(f"prm: {len(rows)} labelled samples in {(time.time() - t0) / 60:.1f} min, "
        f"{sum(r['correct'] for r in rows)} right", logfile)
    val, tr = usable(val_all), rows
    exs = [(prm_example(r["problem"], r["solution"]), r["prefixCorrect"]) for r in tr]
    # One gold solution per training problem: right prefixes are rare at late steps in the policy's
    # samples, and without these the PRM learns that long solutions are wrong.
    train_problems = {r["problem"]: r for r in tr}.values()
    exs += [(prm_example(r["problem"], r["gold_solution"]), [True] * len(steps_of(r["gold_solution"])))
            for r in train_problems]
    batch_size = min(batch_size, len(exs))
    # pools of examples: (examples, batch size, class weights)
    pools = {"solutions": (exs, batch_size, class_weights(exs))}
    if single_step_share > 0:
        held_out = {r["problem"] for r in val_all}
        candidates = [p for p in train if p["problem"] not in held_out]
        single = single_step_rows(rng.sample(candidates, min(len(candidates), 100000)), tr, rng)
        single_exs = [dense_labels(r["problem"], r["solution"], r["gold_step"], r["prefixCorrect"][0]) for r in single]
        pools["single steps"] = (single_exs, 4 * batch_size, class_weights(single_exs))  # about 4x shorter
    for kind, (pool, size, (w_pos, w_neg, positive)) in pools.items():
        log(f"prm: {kind}: {len(pool)} examples, {positive:.3f} of step labels positive, batches of {size}", logfile)

    torch.manual_seed(seed)
    if init:
        prm, _ = load_prm(init)
        log(f"prm: starts from work/{init}.pt", logfile)
    else:
        prm = PRM(policy).to(DEVICE)
        torch.nn.init.zeros_(prm.head.weight)
        torch.nn.init.zeros_(prm.head.bias)
    opt = torch.optim.AdamW(prm.parameters(), lr=lr, weight_decay=0.01)
    start, step, ema, saved = time.time(), 0, None, time.time()
    orders = {kind: [] for kind in pools}
    while time.time() - start < minutes * 60:
        frac = (time.time() - start) / (minutes * 60)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 50) * (1 - 0.9 * frac)
        kind = "single steps" if rng.random() < single_step_share else "solutions"
        pool, size, (w_pos, w_neg, _) = pools[kind]
        if not orders[kind]:
            orders[kind] = length_bucketed_batches(pool, size, rng, length=lambda e: len(e[0][0]))
        batch = [pool[i] for i in orders[kind].pop()]
        ids, mask = (t.to(DEVICE) for t in batch_prm([e for e, _ in batch]))
        bi = torch.tensor([b for b, (e, ys) in enumerate(batch) for _ in ys], device=DEVICE)
        ti = torch.tensor([t for e, ys in batch for t in e[1]], device=DEVICE)
        y = torch.tensor([float(v) for _, ys in batch for v in ys], device=DEVICE)
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
        if time.time() - saved > 600:  # a stopped run keeps its progress
            torch.save(dict(cfg=policy.cfg, state=cpu_state(prm), steps=step), os.path.join(WORK, name + ".partial.pt"))
            saved = time.time()
    rep = auc_report(val, step_scores(prm, val))
    ranking = top_choice_accuracy(val_all, step_scores(prm, val_all), n_samples)
    stats = dict(steps=step, minutes=(time.time() - start) / 60, batch_size=batch_size, device=str(DEVICE),
                 samples=len(sampled), train_samples=len(tr), gold_examples=len(train_problems),
                 single_step_share=single_step_share, init=init, lr=lr,
                 examples={kind: len(pool) for kind, (pool, _, _) in pools.items()},
                 val_samples=len(val), positive_rate=pools["solutions"][2][2],
                 validation_auc=rep, validation_ranking=ranking)
    log(f"{name}: done {json.dumps(stats)}", logfile)
    torch.save(dict(cfg=policy.cfg, state=cpu_state(prm), stats=stats), ckpt)
    if os.path.exists(os.path.join(WORK, name + ".partial.pt")):
        os.remove(os.path.join(WORK, name + ".partial.pt"))


def load_prm(name="prm"):
    ck = torch.load(os.path.join(WORK, name + ".pt"), map_location="cpu")
    prm = PRM(LM(ck["cfg"]))
    prm.load_state_dict(ck["state"])
    return prm.to(DEVICE).eval(), ck


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--problems", type=int, default=1500, help="training problems sampled (10%% held out)")
    ap.add_argument("--samples", type=int, default=8, help="policy samples per problem")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--reuse-samples", action="store_true",
                    help="train on the policy samples of the last run again (after changing only the PRM recipe)")
    ap.add_argument("--single-step-share", type=float, default=0.0,
                    help="share of batches made of single-step examples (problem + one step)")
    ap.add_argument("--name", default="prm", help="checkpoint and log name in work/ (prm is the one exported)")
    ap.add_argument("--init", help="start from this PRM checkpoint in work/ instead of the policy (continued training)")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    args = ap.parse_args()
    torch.set_num_threads(2)
    log(f"device {DEVICE}")
    train_prm(args.seed, args.minutes, n_problems=args.problems, n_samples=args.samples,
              batch_size=args.batch_size, lr=args.lr, reuse_samples=args.reuse_samples,
              single_step_share=args.single_step_share, name=args.name, init=args.init)


if __name__ == "__main__":
    main()
