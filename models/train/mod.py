"""Mixture-of-Depths (Raposo et al. 2024) on the baseline transformer, trained from scratch on the
synthetic task, and the baseline trained for the same number of FLOPs.

Every other block (1, 3, 5) is routed: a linear router scores each token; in training, the top
`capacity` share of each sequence's tokens go through the block and the rest pass by on the
residual; the block's output is multiplied by sigmoid(router logit), so the router learns from the
language-modelling loss. Top-k over a sequence is not causal, so an auxiliary binary cross-entropy
teaches the same logit to say whether its token is in the top-k; when decoding, a token goes
through a routed block when its logit is above 0 (the paper's auxiliary-loss predictor).

A routed block's attention sees only the tokens routed through it, in training as in decoding, so a
token that skips a block leaves nothing in that block's key/value cache.

    OMP_NUM_THREADS=2 /usr/bin/python3 models/train/mod.py train --name mod --baseline-steps 1500
    OMP_NUM_THREADS=2 /usr/bin/python3 models/train/mod.py train --name baseline_flops --plain --baseline-steps 1500
    OMP_NUM_THREADS=2 /usr/bin/python3 models/train/mod.py evaluate --mod mod --baseline baseline_flops --per-level 500
"""
import argparse
import json
import math
import os
import random
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from data import DEVICE, TOK, collate, example, label, left_pad, policy_prompt, reuse_labelled, synth
from evaluate import LEVELS, MODELS, N_SAMPLES, level_table, mean
from generate import generate
from model import BASELINE_ARCH, LM, Attention, Block, attend, n_params
from train import (WORK, adamw, cpu_state, gold_examples, greedy_accuracy, length_bucketed_batches, log, task_data,
                   warmup_cosine)

MOD_ARCH = dict(BASELINE_ARCH, architecture="mixture-of-depths", routed_blocks=[1, 3, 5], capacity=0.25)


def block_flops(cfg, context):
    """Multiply-adds of one block for one token attending to `context` tokens."""
    d, e = cfg["d_model"], cfg["mlp_expansion"]
    return 4 * d * d + 3 * d * e * d + 2 * context * d


def flops_per_token(cfg, context, routed_share=None):
    """Forward multiply-adds per token: blocks (routed ones weighted by the share routed through
    them, their attention over the routed tokens only), the routers and the output layer."""
    total = cfg["d_model"] * cfg["vocab_size"]
    for i in range(len(cfg["block_types"])):
        if i in cfg.get("routed_blocks", []):
            share = cfg["capacity"] if routed_share is None else routed_share
            total += share * block_flops(cfg, share * context) + cfg["d_model"]
        else:
            total += block_flops(cfg, context)
    return total


class RoutedAttentionMix(nn.Module):
    """Causal attention whose key/value cache stores each slot's position, so that a routed block's
    cache holds only the tokens routed through it (a slot at position -1 is empty and masked)."""

    def __init__(self, d, heads):
        super().__init__()
        self.attn = Attention(d, heads, heads, None)

    def init_state(self, B):
        a = self.attn
        z = torch.zeros(B, a.kvh, 0, a.hd)
        return (z, z.clone(), torch.zeros(B, 0))

    def forward(self, x, pos):
        y, k, v = self.attn(x, pos)
        return y, (k, v, pos.float())

    def step(self, x, pos, state):
        pk, pv, slots = state
        q, k, v = self.attn.qkv(x, pos)
        k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)
        slots = torch.cat([slots, pos.float()], dim=1)
        valid = (slots >= 0) & (pos.float() >= 0)
        y = attend(q, k, v, valid.unsqueeze(1).unsqueeze(1))
        return self.attn.out(y), (k, v, slots)


class MoDLM(LM):
    def __init__(self, cfg):
        super().__init__(cfg)
        for i in cfg["routed_blocks"]:
            self.blocks[i] = Block(RoutedAttentionMix(cfg["d_model"], cfg["heads"]), cfg["d_model"], cfg["mlp_expansion"])
        self.routers = nn.ModuleDict({str(i): nn.Linear(cfg["d_model"], 1) for i in cfg["routed_blocks"]})
        for r in self.routers.values():
            nn.init.zeros_(r.weight)
            nn.init.zeros_(r.bias)

    def routed_topk(self, x, pos, i, blk):
        """Training path: each row's top `capacity` tokens through block i; returns x, router logits, targets."""
        logit = self.routers[str(i)](x).squeeze(-1)  # [B, T]
        valid = pos >= 0
        n = valid.sum(1)
        k = torch.clamp(torch.ceil(self.cfg["capacity"] * n.float()).long(), min=1)
        kmax = int(k.max())
        ranked = logit.masked_fill(~valid, float("-inf")).topk(kmax, dim=1).indices  # best first
        chosen = torch.arange(kmax, device=x.device).unsqueeze(0) < k.unsqueeze(1)
        idx, order = ranked.sort(dim=1)  # back to sequence order, so attention stays causal
        chosen = chosen.gather(1, order)
        target = torch.zeros_like(logit).scatter(1, idx, chosen.float())
        x, _ = self.through(x, pos, logit, idx, chosen, blk)
        return x, logit, target

    def through(self, x, pos, logit, idx, chosen, blk):
        """x with block `blk` applied to the tokens at `idx` (where `chosen`), scaled by
        sigmoid(logit); and the block's state (unchosen tokens stored at position -1)."""
        D = x.shape[-1]
        x_sel = x.gather(1, idx.unsqueeze(-1).expand(-1, -1, D))
        pos_sel = torch.where(chosen, pos.gather(1, idx), torch.full_like(idx, -1))
        out, state = blk(x_sel, pos_sel)
        gate = torch.sigmoid(logit.gather(1, idx)) * chosen.float()
        return x.scatter_add(1, idx.unsqueeze(-1).expand(-1, -1, D), (out - x_sel) * gate.unsqueeze(-1)), state

    def hidden(self, ids, pos, routing="predictor"):
        """routing "topk": the training router (not causal); "predictor": logit > 0, causal, as when
        decoding (the prefill path). Records (logit, top-k or predicted choice, valid) per routed block."""
        x = self.embed(ids) * math.sqrt(self.cfg["d_model"])
        self.aux, states = [], []
        for i, blk in enumerate(self.blocks):
            if str(i) not in self.routers:
                x, s = blk(x, pos)
            elif routing == "topk":
                x, logit, target = self.routed_topk(x, pos, i, blk)
                self.aux.append((logit, target, pos >= 0))
                s = None
            else:
                logit = self.routers[str(i)](x).squeeze(-1)
                chosen = (logit > 0) & (pos >= 0)
                idx = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
                self.aux.append((logit, chosen.float(), pos >= 0))
                x, s = self.through(x, pos, logit, idx, chosen, blk)
            states.append(s)
        return self.norm(x), states

    def forward(self, ids, pos, routing="predictor"):
        h, states = self.hidden(ids, pos, routing)
        return self.logits(h), states

    def aux_loss(self):
        return sum(F.binary_cross_entropy_with_logits(l[v], t[v]) for l, t, v in self.aux) / len(self.aux)

    def step(self, ids, pos, states):
        """One token per row. A routed block runs only on the rows whose logit is above 0 (here by
        masking: rows that skip get position -1, so they attend to nothing and are stored as padding,
        which every later query masks; the ONNX runtime skips those rows instead)."""
        x = self.embed(ids) * math.sqrt(self.cfg["d_model"])
        new = []
        for i, (blk, s) in enumerate(zip(self.blocks, states)):
            if str(i) not in self.routers:
                x, s = blk.step(x, pos, s)
            else:
                logit = self.routers[str(i)](x).squeeze(-1)  # [B, 1]
                go = (logit > 0) & (pos >= 0)
                out, s = blk.step(x, torch.where(go, pos, torch.full_like(pos, -1)), s)
                x = torch.where(go.unsqueeze(-1), x + torch.sigmoid(logit).unsqueeze(-1) * (out - x), x)
            new.append(s)
        return self.logits(self.norm(x)), new


def train_steps(model, examples, steps, lr, seed, logfile, batch_size=32, aux_weight=0.1, warmup=100, calib=None):
    """AdamW, warm-up and cosine decay over a fixed number of steps (FLOPs-matched budgets)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = adamw(model, lr)
    start, ema, order, tokens = time.time(), None, [], 0
    for step in range(steps):
        cur = warmup_cosine(lr, step, warmup, step / steps)
        for g in opt.param_groups:
            g["lr"] = cur
        if not order:
            order = length_bucketed_batches(examples, batch_size, rng)
        ids, pos, tgt = (t.to(DEVICE) for t in collate([examples[i] for i in order.pop()]))
        model.train()
        logits, _ = model(ids, pos, routing="topk") if isinstance(model, MoDLM) else model(ids, pos)
        lm = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
        aux = model.aux_loss() if isinstance(model, MoDLM) else torch.zeros(())
        loss = lm + aux_weight * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += int((pos >= 0).sum())
        ema = [lm.item(), aux.item()] if ema is None else [0.98 * e + 0.02 * v for e, v in zip(ema, (lm.item(), aux.item()))]
        if (step + 1) % 50 == 0:
            log(f"step {step + 1}/{steps} loss {ema[0]:.4f} aux {ema[1]:.4f} lr {cur:.2e} "
                f"{(time.time() - start) / 60:.1f} min", logfile)
    return dict(steps=steps, sequences=steps * batch_size, tokens=tokens, minutes=(time.time() - start) / 60,
                final_loss=ema[0], final_aux=ema[1], batch_size=batch_size, lr=lr)


@torch.no_grad()
def routing_agreement(model, problems):
    """Share of tokens where the causal predictor (logit > 0) agrees with the top-k router, per routed
    block, on gold test sequences; and the share the predictor routes."""
    model.eval()
    agree, routed, total = 0, 0, 0
    for i in range(0, len(problems), 64):
        batch = [example(policy_prompt(p["problem"]), p["solution"]) for p in problems[i:i + 64]]
        ids, pos, _ = (t.to(DEVICE) for t in collate(batch))
        model(ids, pos, routing="topk")
        for logit, target, valid in model.aux:
            pred = (logit > 0).float()
            agree += int(((pred == target) & valid).sum())
            routed += int(((pred > 0) & valid).sum())
            total += int(valid.sum())
    return {"agreement": agree / total, "predictor_routed_share": routed / total}


def cmd_train(args):
    train, calib = task_data(args.seed)
    logfile = os.path.join(WORK, args.name + ".log")
    torch.manual_seed(args.seed)
    cfg = dict(BASELINE_ARCH if args.plain else MOD_ARCH, vocab_size=len(TOK))
    model = (LM(cfg) if args.plain else MoDLM(cfg)).to(DEVICE)
    base = dict(BASELINE_ARCH, vocab_size=len(TOK))
    context = 150  # a typical solution's length in characters, for the attention term
    ratio = flops_per_token(cfg, context) / flops_per_token(base, context)
    steps = int(round(args.baseline_steps / ratio))
    log(f"{args.name}: {n_params(model)} parameters, {ratio:.3f} of the baseline's FLOPs per token, "
        f"{steps} steps = {args.baseline_steps} baseline steps of FLOPs", logfile)
    stats = train_steps(model, gold_examples(train), steps, 2e-3, args.seed, logfile, batch_size=args.batch_size)
    stats.update(flops_ratio=ratio, baseline_steps=args.baseline_steps,
                 calibration_greedy_accuracy=greedy_accuracy(model, calib[:200], "calib_" + args.name))
    if not args.plain:
        test = synth("test", 500, args.seed + 1, os.path.join(WORK, "test_100.jsonl"))
        stats["routing"] = routing_agreement(model, test)
    log(f"{args.name}: done {json.dumps(stats)}", logfile)
    torch.save(dict(cfg=cfg, state=cpu_state(model), stats=stats), os.path.join(WORK, args.name + ".pt"))


def load_checkpoint(name):
    ck = torch.load(os.path.join(WORK, name + ".pt"), map_location="cpu")
    model = (MoDLM(ck["cfg"]) if ck["cfg"].get("routed_blocks") else LM(ck["cfg"])).to(DEVICE)
    model.load_state_dict(ck["state"])
    return model.eval(), ck


@torch.no_grad()
def predictor_routed_share(model, rows):
    """Share of generated tokens the causal predictor sends through each routed block, averaged over
    the routed blocks: the inputs whose next token was sampled (the last prompt token and every
    solution token), run through the prefill path, which routes as decoding does."""
    routed, total = 0, 0
    for i in range(0, len(rows), 128):
        batch = [example(policy_prompt(r["problem"]), r["solution"]) for r in rows[i:i + 128]]
        ids, pos, tgt = (t.to(DEVICE) for t in collate(batch))
        model(ids, pos, routing="predictor")
        generated = tgt != -100
        for _, chosen, _ in model.aux:
            routed += int((chosen.bool() & generated).sum())
            total += int(generated.sum())
    return routed / total


@torch.no_grad()
def generate_topk(model, prompts, max_new=280, batch_size=128):
    """Greedy completions with the training router (each routed block takes the top `capacity` of the
    whole sequence so far, not causal), recomputing the sequence for every token: the reference the
    causal predictor stands in for."""
    out = []
    for i in range(0, len(prompts), batch_size):
        chunk = [example(p, "")[0][:-1] for p in prompts[i:i + batch_size]]
        ids, pos = (t.to(DEVICE) for t in left_pad(chunk))
        done = torch.zeros(len(chunk), dtype=torch.bool, device=DEVICE)
        toks = []
        for _ in range(max_new):
            logits, _ = model(ids, pos, routing="topk")
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            nxt = torch.where(done.unsqueeze(1), torch.full_like(nxt, TOK.eos_id), nxt)
            toks.append(nxt)
            done |= nxt[:, 0] == TOK.eos_id
            if done.all():
                break
            ids, pos = torch.cat([ids, nxt], 1), torch.cat([pos, pos[:, -1:] + 1], 1)
        for row in torch.cat(toks, 1).tolist():
            out.append(TOK.decode(row[:row.index(TOK.eos_id)] if TOK.eos_id in row else row))
    return out


def cmd_evaluate(args):
    """Pass@1 (T=0.8, 16 samples), majority@16 and PRM-weighted best-of-16 on the test split for the
    MoD model and the baseline trained for the same FLOPs; the decode FLOPs the predictor spends on
    those samples; the predictor's agreement with top-k; greedy accuracy decoding with the predictor
    against decoding with top-k on whole sequences. Writes models/eval-mod.json."""
    from prm import load_prm, step_scores
    test = synth("test", args.per_level * len(LEVELS), args.seed + 1, os.path.join(WORK, f"test_{args.per_level}.jsonl"))
    prm, _ = load_prm()
    base_cfg = dict(BASELINE_ARCH, vocab_size=len(TOK))
    context = 150
    key = f"evaluation_{args.per_level}_per_level"

    def save(part, value):
        # Read back just before writing: an evaluation of one model may run beside one of the other.
        path = os.path.join(MODELS, "eval-mod.json")
        everything = json.load(open(path)) if os.path.exists(path) else {}
        result = everything.setdefault(key, {})
        result["test"] = {"split": "test", "per_level": args.per_level, "seed": args.seed + 1,
                          "samples_per_problem": N_SAMPLES, "temperature": 0.8}
        result[part] = value
        with open(path, "w") as f:
            json.dump(everything, f, indent=2)
            f.write("\n")

    roles = args.parts.split(",")
    for role, name in (("baseline", args.baseline), ("mod", args.mod)):
        if role not in roles:
            continue
        model, ck = load_checkpoint(name)
        log(f"evaluate {role} {name}: {len(test)} problems x {N_SAMPLES} samples")
        t0 = time.time()
        if args.samples_from:  # the first problems of a larger evaluation are this one's (test_100 opens test_500)
            rows = reuse_labelled([dict(p) for p in test for _ in range(N_SAMPLES)],
                                  f"eval_mod_{args.samples_from}_{name}", WORK, first=True)
        else:
            prompts = [policy_prompt(p["problem"]) for p in test for _ in range(N_SAMPLES)]
            sols = generate(model, prompts, temperature=0.8, seed=args.seed + 5)
            rows = label([dict(p, solution=s) for p, s in zip([p for p in test for _ in range(N_SAMPLES)], sols)],
                         WORK, f"eval_mod_{args.per_level}_{name}")
        sampling = time.time() - t0
        per = level_table(test, rows, step_scores(prm, rows))
        avg = {k: mean(per[str(lv)][k] for lv in LEVELS) for k in ("pass@1", "majority@16", "prm_weighted_best_of_16")}
        entry = {"checkpoint": name, "training": ck.get("stats"), "by_level": per, "average_over_levels": avg,
                 **({"samples_of_evaluation_per_level": args.samples_from} if args.samples_from else {"sampling_s": sampling})}
        if role == "mod":
            share = predictor_routed_share(model, rows)
            entry["decode"] = {"predictor_routed_share": share,
                               "flops_per_token_vs_baseline": flops_per_token(model.cfg, context, share)
                               / flops_per_token(base_cfg, context)}
            entry["routing_on_gold_test"] = routing_agreement(model, test)
        save(role, entry)
        log(f"{role} {name}: pass@1 {avg['pass@1']:.3f}, PRM best-of-16 {avg['prm_weighted_best_of_16']:.3f}, "
            f"majority {avg['majority@16']:.3f} ({sampling / 60:.1f} min sampling)")
    if "topk" not in roles:
        return
    slice_ = [p for lv in LEVELS for p in [q for q in test if q["level"] == lv][:args.topk_per_level]]
    model, _ = load_checkpoint(args.mod)
    prompts = [policy_prompt(p["problem"]) for p in slice_]
    greedy = {}
    for how, sols in (("predictor", lambda: generate(model, prompts, temperature=0.0)),
                      ("topk", lambda: generate_topk(model, prompts))):
        t0 = time.time()
        rows = label([dict(p, solution=s) for p, s in zip(slice_, sols())], WORK, f"greedy_mod_{how}")
        greedy[how] = {"accuracy": mean(r["correct"] for r in rows), "seconds": time.time() - t0}
        log(f"greedy with the {how}: {greedy[how]['accuracy']:.3f}")
    save("greedy_predictor_vs_topk", dict(greedy, problems=len(slice_), per_level=args.topk_per_level))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--name", default="mod")
    t.add_argument("--plain", action="store_true", help="the baseline transformer, for the same FLOPs")
    t.add_argument("--baseline-steps", type=int, required=True,
                   help="the FLOPs budget, in steps of the baseline transformer")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("evaluate")
    e.add_argument("--mod", default="mod", help="the MoD checkpoint in work/")
    e.add_argument("--baseline", default="baseline_flops", help="the baseline trained for the same FLOPs")
    e.add_argument("--per-level", type=int, default=500)
    e.add_argument("--topk-per-level", type=int, default=40,
                   help="problems per level for greedy decoding with the predictor against top-k")
    e.add_argument("--parts", default="baseline,mod,topk",
                   help="what to evaluate: the baseline, the MoD model, greedy with the predictor against top-k")
    e.add_argument("--samples-from", type=int, default=None,
                   help="reuse the samples of the evaluation with this many problems per level (its first problems are these)")
    e.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    {"train": cmd_train, "evaluate": cmd_evaluate}[args.cmd](args)


if __name__ == "__main__":
    main()
