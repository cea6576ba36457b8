"""Next-token training of the policy (phase 1: gold solutions; phase 2: more gold solutions mixed with
revision examples) and the baseline.

    /usr/bin/python3 models/train/train.py policy   --seed 0 --minutes 22
    /usr/bin/python3 models/train/train.py revision --seed 0 --minutes 32
    /usr/bin/python3 models/train/train.py revision-interleaved --seed 0 --minutes 32 --init policy_rev
    /usr/bin/python3 models/train/train.py baseline --seed 0 --minutes 5
On a CUDA GPU the same commands train there; pass a larger --batch-size to use it.
Checkpoints go to models/train/work/ (git-ignored); a stage whose checkpoint exists is skipped.
"""
import argparse
import json
import math
import os
import random
import time

import torch
import torch.nn.functional as F

from data import (DEVICE, TOK, can_label, collate, example, interleaved_revision_example, label, policy_prompt,
                  reuse_labelled, revision_prompt, synth)
from generate import generate
from model import BASELINE_ARCH, LM, POLICY_ARCH, n_params

WORK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "work")


def log(msg, path=None):
    line = time.strftime("%H:%M:%S ") + msg
    print(line, flush=True)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def task_data(seed):
    """The ladder-1 train and calibration problems drawn with `seed` (seed 0's are the policy's own)."""
    os.makedirs(WORK, exist_ok=True)
    suffix = f"_s{seed}" if seed else ""
    train = synth("train", 120000, seed + 1, os.path.join(WORK, f"train{suffix}.jsonl"))
    calib = synth("calibration", 2000, seed + 1, os.path.join(WORK, f"calibration{suffix}.jsonl"))
    return train, calib


def new_lm(arch):
    return LM(dict(arch, vocab_size=len(TOK))).to(DEVICE)


def load_lm(name):
    ck = torch.load(os.path.join(WORK, name + ".pt"), map_location="cpu")
    m = LM(ck["cfg"])
    m.load_state_dict(ck["state"])
    return m.to(DEVICE), ck


def cpu_state(module):
    """State dict on the CPU, so that a checkpoint trained on a GPU loads anywhere."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def save_lm(model, name, **meta):
    torch.save(dict(cfg=model.cfg, state=cpu_state(model), **meta), os.path.join(WORK, name + ".pt"))


def greedy_accuracy(model, problems, name):
    """Greedy accuracy on `problems`, or None where `data label` cannot run (no node on a GPU machine)."""
    if not can_label():
        return None
    sols = generate(model, [policy_prompt(p["problem"]) for p in problems], temperature=0.0)
    rows = label([dict(p, solution=s) for p, s in zip(problems, sols)], WORK, name)
    return sum(r["correct"] for r in rows) / len(rows)


def length_bucketed_batches(examples, batch_size, rng, pool=50, length=lambda e: len(e[0])):
    """Shuffled batches of similar lengths (less padding): sort pools of `pool` batches by length."""
    idx = list(range(len(examples)))
    rng.shuffle(idx)
    batches = []
    for i in range(0, len(idx) - batch_size + 1, batch_size * pool):
        chunk = sorted(idx[i:i + batch_size * pool], key=lambda j: length(examples[j]))
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk) - batch_size + 1, batch_size)]
    rng.shuffle(batches)
    return batches


def adamw(model, lr, decayed=lambda name, p: p.dim() >= 2):
    """AdamW (betas 0.9/0.95) with weight decay 0.1 on the parameters `decayed` picks (matrices)."""
    decay = [p for n, p in model.named_parameters() if decayed(n, p)]
    other = [p for n, p in model.named_parameters() if not decayed(n, p)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95))


def warmup_cosine(lr, step, warmup, frac):
    """Linear warm-up over `warmup` steps, then cosine decay to 10% at `frac` = 1."""
    return lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def train_lm(model, examples, minutes, lr, seed, logfile, batch_size=32, calib=None, eval_every=300.0,
             warmup=100, steps=None):
    """AdamW with warm-up and a cosine decay over the wall-clock budget, or over `steps` steps when
    given (then the run does not depend on the machine's speed)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = adamw(model, lr)
    start, budget = time.time(), (minutes or 0) * 60.0
    step, seen, ema, next_eval = 0, 0, None, eval_every
    order = []
    while True:
        elapsed = time.time() - start
        if (step >= steps) if steps else (elapsed >= budget):
            break
        frac = step / steps if steps else elapsed / budget
        cur = warmup_cosine(lr, step, warmup, frac)
        for g in opt.param_groups:
            g["lr"] = cur
        if not order:
            order = length_bucketed_batches(examples, batch_size, rng)
        batch = [examples[i] for i in order.pop()]
        ids, pos, tgt = (t.to(DEVICE) for t in collate(batch))
        model.train()
        logits, _ = model(ids, pos)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += batch_size
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 50 == 0:
            log(f"step {step} seen {seen} loss {ema:.4f} lr {cur:.2e} {elapsed / 60:.1f} min", logfile)
        if calib is not None and elapsed >= next_eval:
            next_eval += eval_every
            accuracy = greedy_accuracy(model, calib, "calib")
            if accuracy is not None:
                log(f"step {step} greedy accuracy on {len(calib)} calibration problems: {accuracy:.3f}", logfile)
    return dict(steps=step, sequences=seen, minutes=(time.time() - start) / 60, final_loss=ema,
                batch_size=batch_size, device=str(DEVICE))


def gold_examples(problems):
    return [example(policy_prompt(p["problem"]), p["solution"]) for p in problems]


def stage_lm(which, seed, minutes, batch_size):
    name = which
    if os.path.exists(os.path.join(WORK, name + ".pt")):
        log(f"{name}: checkpoint exists, skipped")
        return
    train, calib = task_data(seed)
    logfile = os.path.join(WORK, name + ".log")
    torch.manual_seed(seed)
    model = new_lm(POLICY_ARCH if which == "policy" else BASELINE_ARCH)
    log(f"{name}: {n_params(model)} parameters, {len(train)} training problems", logfile)
    stats = train_lm(model, gold_examples(train), minutes, 2e-3, seed, logfile, batch_size=batch_size,
                     calib=calib[:200])
    stats["calibration_greedy_accuracy"] = greedy_accuracy(model, calib[:200], "calib")
    log(f"{name}: done {json.dumps(stats)}", logfile)
    save_lm(model, name, stats=stats)


def own_attempts(model, train, rng, seed, n_problems, sample_name, name, logfile):
    """The model's attempts at T=0.8 on `n_problems` train problems drawn by `rng`, labelled; read
    back when an earlier run (or `--sample-only`) left them for the same problems."""
    problems = [dict(p, gold_solution=p["solution"]) for p in rng.sample(train, n_problems)]
    t0 = time.time()
    if os.path.exists(os.path.join(WORK, sample_name + ".labelled.jsonl")):
        rows = reuse_labelled(problems, sample_name, WORK)
        how = "read back"
    else:
        sols = generate(model, [policy_prompt(p["problem"]) for p in problems], temperature=0.8, seed=seed)
        rows = label([dict(p, solution=s) for p, s in zip(problems, sols)], WORK, sample_name)
        how = "sampled"
    log(f"{name}: {how} {len(rows)} attempts in {(time.time() - t0) / 60:.1f} min, "
        f"{sum(r['correct'] for r in rows)} right", logfile)
    return rows


def train_with_revisions(model, name, fix, keep, rows, train, calib, minutes, seed, logfile, batch_size,
                         revision_share, lr=1e-3, steps=None):
    """Trains on gold solutions of `train` mixed with the fix and keep examples (a revision example
    with probability `revision_share` per draw); returns the stats."""
    revision = fix + keep
    gold = gold_examples(train)
    n_revision = int(len(gold) * revision_share / (1 - revision_share))
    mix = gold + [revision[i % len(revision)] for i in range(n_revision)]
    log(f"{name}: {len(fix)} fix + {len(keep)} keep revision examples, repeated to {n_revision}, "
        f"+ {len(gold)} gold examples", logfile)
    stats = train_lm(model, mix, minutes, lr, seed, logfile, batch_size=batch_size, calib=calib[:200], warmup=50,
                     steps=steps)
    stats.update(revision_examples_fix=len(fix), revision_examples_keep=len(keep), sampled=len(rows),
                 sampled_right=sum(r["correct"] for r in rows))
    stats["calibration_greedy_accuracy"] = greedy_accuracy(model, calib[:200], "calib")
    return stats


def stage_revision(seed, minutes, batch_size, n_problems=6000, revision_share=0.25):
    """Phase 2: continue training the phase-1 policy on fresh gold solutions mixed with revision
    examples. The phase-1 policy samples attempts at T=0.8 on train problems; a wrong attempt gets
    the gold solution as target (fix), and as many keep examples (a right attempt, or the gold
    solution shown as the previous attempt) get themselves, so that the reviser learns to keep a
    right answer as often as to change a wrong one."""
    name = "policy_rev"
    if os.path.exists(os.path.join(WORK, name + ".pt")):
        log(f"{name}: checkpoint exists, skipped")
        return
    train, calib = task_data(seed)
    logfile = os.path.join(WORK, name + ".log")
    model, ck = load_lm("policy")
    rng = random.Random(seed + 2)
    rows = own_attempts(model, train, rng, seed + 2, n_problems, "revision_samples", name, logfile)
    fix = [example(revision_prompt(r["problem"], r["solution"]), r["gold_solution"]) for r in rows if not r["correct"]]
    keep = [example(revision_prompt(r["problem"], r["solution"]), r["solution"]) for r in rows if r["correct"]]
    keep += [example(revision_prompt(p["problem"], p["solution"]), p["solution"])
             for p in rng.sample(train, max(len(fix) - len(keep), 0))]
    stats = train_with_revisions(model, name, fix, keep, rows, train, calib, minutes, seed + 2, logfile, batch_size,
                                 revision_share)
    stats.update(phase1=ck["stats"])
    log(f"{name}: done {json.dumps(stats)}", logfile)
    save_lm(model, name, stats=stats)


def stage_revision_interleaved(seed, minutes, batch_size, init, name="policy_rev_interleaved", n_problems=6000,
                               revision_share=0.25, sample_only=False, samples=None, ladder=1, keep_ratio=1.0,
                               lr=1e-3, steps=None):
    """Revision in the interleaved layout (revision_layout.py), continuing from the checkpoint `init`:
    it samples attempts at T=0.8 on fresh train problems; a wrong attempt gets the gold solution as
    target (fix), a right one itself (keep). Fix and keep examples are balanced (keep topped up with
    gold solutions shown as the previous attempt, or cut down to the fixes) and mixed with gold
    solutions as in stage_revision, so that the policy keeps its first-attempt skill. With
    `sample_only` it stops after sampling and labelling (a GPU machine without node reads them back).
    With `ladder` 2 the attempts are at ladder 2's train problems (the gold solutions mixed in stay
    ladder 1's, the policy's own training set); `keep_ratio` keep examples per fix example."""
    if os.path.exists(os.path.join(WORK, name + ".pt")):
        log(f"{name}: checkpoint exists, skipped")
        return
    # the gold solutions mixed in are the policy's own training set (seed 0's), whatever seed draws the attempts
    train, calib = task_data(0)
    logfile = os.path.join(WORK, name + ".log")
    model, ck = load_lm(init)
    rng = random.Random(seed + 3)
    pool = train if ladder == 1 else synth("train", n_problems, seed + 3,
                                           os.path.join(WORK, f"train_{n_problems}_s{seed + 3}_ladder{ladder}.jsonl"), ladder)
    rows = own_attempts(model, pool, rng, seed + 3, n_problems, samples or name + "_samples", name, logfile)
    if sample_only:
        return
    fix = [interleaved_revision_example(r["problem"], r["solution"], r["gold_solution"])
           for r in rows if not r["correct"]]
    keep = [interleaved_revision_example(r["problem"], r["solution"], r["solution"]) for r in rows if r["correct"]]
    n_keep = int(round(len(fix) * keep_ratio))
    if len(keep) > n_keep:
        keep = rng.sample(keep, n_keep)
    if n_keep - len(keep) > len(pool):
        raise SystemExit(f"--keep-ratio {keep_ratio}: {n_keep} keep examples asked, but only {len(keep)} right "
                         f"attempts and {len(pool)} gold solutions to top them up with")
    keep += [interleaved_revision_example(p["problem"], p["solution"], p["solution"])
             for p in rng.sample(pool, n_keep - len(keep))]
    stats = train_with_revisions(model, name, fix, keep, rows, train, calib, minutes, seed + 3, logfile, batch_size,
                                 revision_share, lr, steps)
    stats.update(init=init, init_stats=ck.get("stats"), attempts_ladder=ladder, keep_ratio=keep_ratio, lr=lr)
    log(f"{name}: done {json.dumps(stats)}", logfile)
    save_lm(model, name, stats=stats, revision_layout="interleaved")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["policy", "revision", "revision-interleaved", "baseline"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, help="training budget in wall-clock minutes")
    ap.add_argument("--steps", type=int, help="revision-interleaved: train this many steps instead of --minutes "
                                              "(the schedule then follows the steps, not the clock)")
    ap.add_argument("--batch-size", type=int, default=32, help="sequences per step (256 on a GPU)")
    ap.add_argument("--init", default="policy_rev", help="revision-interleaved: the checkpoint it continues from")
    ap.add_argument("--name", default="policy_rev_interleaved", help="revision-interleaved: the checkpoint it writes")
    ap.add_argument("--attempts", type=int, default=6000,
                    help="revision-interleaved: train problems the starting checkpoint attempts (fix and keep examples)")
    ap.add_argument("--revision-share", type=float, default=0.25,
                    help="revision-interleaved: share of training draws that are revision examples")
    ap.add_argument("--samples", help="revision-interleaved: the labelled attempts in work/ (default NAME_samples), "
                                      "read back when they exist")
    ap.add_argument("--sample-only", action="store_true",
                    help="revision-interleaved: sample and label the attempts, then stop")
    ap.add_argument("--ladder", type=int, choices=[1, 2], default=1,
                    help="revision-interleaved: the ladder of the train problems attempted")
    ap.add_argument("--keep-ratio", type=float, default=1.0,
                    help="revision-interleaved: keep examples per fix example")
    ap.add_argument("--lr", type=float, default=1e-3, help="revision-interleaved: peak learning rate")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    if (args.minutes is None) == (args.steps is None) or (args.steps and args.stage != "revision-interleaved"):
        ap.error("give --minutes, or --steps with revision-interleaved")
    torch.set_num_threads(args.threads)
    log(f"device {DEVICE}, batch size {args.batch_size}")
    if args.stage == "revision":
        stage_revision(args.seed, args.minutes, args.batch_size)
    elif args.stage == "revision-interleaved":
        stage_revision_interleaved(args.seed, args.minutes, args.batch_size, args.init, args.name, args.attempts,
                                   args.revision_share, args.sample_only, args.samples, args.ladder, args.keep_ratio,
                                   args.lr, args.steps)
    else:
        stage_lm(args.stage, args.seed, args.minutes, args.batch_size)


if __name__ == "__main__":
    main()
