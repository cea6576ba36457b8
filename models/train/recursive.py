"""A relaxed recursive transformer (Bae et al. 2024) made from the trained Griffin-style policy.

The policy's six blocks are two repeats of the group [recurrent, recurrent, local attention]. The
recursive model keeps one copy of that group (layer tying) and runs it `loops` times. Every Linear
of the group gets a per-loop low-rank delta (relaxation: loop l uses W + B_l A_l); the small vectors
(norm weights, the recurrence's lambda, conv taps, gate biases) are per loop outright. A shared exit
head (a per-loop RMSNorm, then the tied embedding) reads the hidden state after every loop, so a
token may leave after loop 0 when the head is confident (early exit).

Initialisation follows the paper: the tied weights are the average of the two groups' weights, and
each loop's LoRA is the truncated SVD of the difference between its original weights and the
average; then a brief uptraining with a loss at every loop (cross-entropy on gold solutions plus
distillation from the original policy).

Every module takes `loop`, a [B] tensor of loop indices, and gathers that loop's LoRA and vectors
per row, so one run of the group can serve rows at different loops (depth-wise batching).

Early exit and the decoding state: every loop keeps its own state (conv window, RG-LRU state,
attention window). A token that leaves after loop l is not run through the later loops, so it leaves
nothing in their state: their recurrence and conv window are unchanged and their attention window
gets no entry, as if the token were not there. The attention window therefore stores each slot's
position (`pos` below) and masks slots that are empty or 64 or more positions back.

    OMP_NUM_THREADS=2 /usr/bin/python3 models/train/recursive.py train --minutes 35 --rank 6
    OMP_NUM_THREADS=2 /usr/bin/python3 models/train/recursive.py evaluate --per-level 500 --threshold 0,0.9
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

from data import DEVICE, TOK, collate, example, label, left_pad, policy_prompt, synth
from generate import generate, next_tokens
from evaluate import LEVELS, MODELS, N_SAMPLES, level_table, mean
from model import attend, linear_scan, rope
from prm import step_scores
from train import WORK, adamw, cpu_state, gold_examples, length_bucketed_batches, load_lm, log, warmup_cosine

NEG = -1e9


class LoopLinear(nn.Module):
    """y = x W^T + x A_l^T B_l^T (+ b_l): a shared weight and a rank-r delta per loop."""

    def __init__(self, d_in, d_out, loops, rank, bias=False):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(d_out, d_in))
        self.lora_a = nn.Parameter(torch.zeros(loops, rank, d_in))
        self.lora_b = nn.Parameter(torch.zeros(loops, d_out, rank))
        self.bias = nn.Parameter(torch.zeros(loops, d_out)) if bias else None

    def forward(self, x, loop):  # x [B, T, in], loop [B]
        y = x @ self.weight.t() + (x @ self.lora_a[loop].transpose(1, 2)) @ self.lora_b[loop].transpose(1, 2)
        if self.bias is not None:
            y = y + self.bias[loop].unsqueeze(1)
        return y

    @torch.no_grad()
    def init_from(self, weights, biases=None):
        """Average of the loops' original weights, each loop's LoRA from the truncated SVD of its difference."""
        mean = torch.stack(weights).mean(0)
        self.weight.copy_(mean)
        self.lora_a.zero_()
        self.lora_b.zero_()
        for l, w in enumerate(weights):
            u, s, vh = torch.linalg.svd(w - mean, full_matrices=False)
            r = min(self.lora_a.shape[1], s.shape[0])  # a rank above the matrix's own leaves zeros
            self.lora_b[l, :, :r].copy_(u[:, :r] * s[:r])
            self.lora_a[l, :r].copy_(vh[:r])
        if biases is not None:
            self.bias.copy_(torch.stack(biases))


class LoopNorm(nn.Module):
    def __init__(self, d, loops, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(loops, d))

    def forward(self, x, loop):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight[loop].unsqueeze(1)


class LoopMLP(nn.Module):
    def __init__(self, d, expansion, loops, rank):
        super().__init__()
        self.gate = LoopLinear(d, expansion * d, loops, rank)
        self.up = LoopLinear(d, expansion * d, loops, rank)
        self.down = LoopLinear(expansion * d, d, loops, rank)

    def forward(self, x, loop):
        return self.down(F.gelu(self.gate(x, loop), approximate="tanh") * self.up(x, loop), loop)


class LoopRecurrent(nn.Module):
    """The Griffin recurrent block of model.RecurrentMix with per-loop parameters."""

    C = 8.0

    def __init__(self, d, conv_width, loops, rank):
        super().__init__()
        self.d, self.cw = d, conv_width
        self.gate_in = LoopLinear(d, d, loops, rank)
        self.x_in = LoopLinear(d, d, loops, rank)
        self.conv_w = nn.Parameter(torch.zeros(loops, conv_width, d))
        self.conv_b = nn.Parameter(torch.zeros(loops, d))
        self.w_a = LoopLinear(d, d, loops, rank, bias=True)
        self.w_i = LoopLinear(d, d, loops, rank, bias=True)
        self.lam = nn.Parameter(torch.zeros(loops, d))
        self.out = LoopLinear(d, d, loops, rank)

    def init_state(self, B):
        return (torch.zeros(B, self.cw - 1, self.d), torch.zeros(B, self.d))

    def gates(self, x, loop):
        log_a = -self.C * F.softplus(-self.lam[loop]).unsqueeze(1) * torch.sigmoid(self.w_a(x, loop))
        a = torch.exp(log_a)
        mult = torch.sqrt(torch.clamp(1 - torch.exp(2 * log_a), min=1e-6))
        return a, mult * torch.sigmoid(self.w_i(x, loop)) * x

    def forward(self, x, pos, loop):
        valid = (pos >= 0).unsqueeze(-1).to(x.dtype)
        gate = F.gelu(self.gate_in(x, loop), approximate="tanh")
        u = self.x_in(x, loop) * valid
        up = F.pad(u, (0, 0, self.cw - 1, 0))
        w = self.conv_w[loop]  # [B, cw, D]
        conv = self.conv_b[loop].unsqueeze(1) + sum(
            w[:, j].unsqueeze(1) * (up[:, j:j - (self.cw - 1)] if j < self.cw - 1 else up[:, j:]) for j in range(self.cw))
        a, b = self.gates(conv, loop)
        a = torch.where(valid > 0, a, torch.ones_like(a))
        b = b * valid
        T = x.shape[1]
        n = 12 if torch.onnx.is_in_onnx_export() else max(1, math.ceil(math.log2(max(T, 2))))
        h = linear_scan(a, b, n)
        return self.out(gate * h, loop), (up[:, -(self.cw - 1):], h[:, -1])

    def step(self, x, pos, loop, state):
        conv_state, h = state
        gate = F.gelu(self.gate_in(x, loop), approximate="tanh")
        window = torch.cat([conv_state, self.x_in(x, loop)], dim=1)
        conv = self.conv_b[loop].unsqueeze(1) + (window * self.conv_w[loop]).sum(1, keepdim=True)
        a, b = self.gates(conv, loop)
        h = a[:, 0] * h + b[:, 0]
        return self.out(gate * h.unsqueeze(1), loop), (window[:, 1:], h)


class LoopLocalAttention(nn.Module):
    """Multi-query sliding-window attention; the window state is (keys, values, slot positions)."""

    def __init__(self, d, heads, kv_heads, window, loops, rank):
        super().__init__()
        self.h, self.kvh, self.hd, self.window = heads, kv_heads, d // heads, window
        self.q = LoopLinear(d, d, loops, rank)
        self.k = LoopLinear(d, kv_heads * self.hd, loops, rank)
        self.v = LoopLinear(d, kv_heads * self.hd, loops, rank)
        self.o = LoopLinear(d, d, loops, rank)
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, self.hd, 2).float() / self.hd)), persistent=False)

    def init_state(self, B):
        z = torch.zeros(B, self.kvh, self.window, self.hd)
        return (z, z.clone(), torch.full((B, self.window), -1.0))

    def qkv(self, x, pos, loop):
        B, T, _ = x.shape
        posf = pos.float()
        q = rope(self.q(x, loop).view(B, T, self.h, self.hd).transpose(1, 2), posf, self.inv_freq)
        k = rope(self.k(x, loop).view(B, T, self.kvh, self.hd).transpose(1, 2), posf, self.inv_freq)
        v = self.v(x, loop).view(B, T, self.kvh, self.hd).transpose(1, 2)
        return q, k, v

    def out(self, y, loop):
        B, H, T, hd = y.shape
        return self.o(y.transpose(1, 2).reshape(B, T, H * hd), loop)

    def forward(self, x, pos, loop):
        q, k, v = self.qkv(x, pos, loop)
        pq, pk = pos.unsqueeze(2), pos.unsqueeze(1)
        mask = (pk <= pq) & (pk >= 0) & (pq - pk < self.window)
        y = self.out(attend(q, k, v, mask.unsqueeze(1)), loop)
        pad = (0, 0, self.window, 0)
        slots = F.pad(pos.float(), (self.window, 0), value=-1.0)[:, -self.window:]
        return y, (F.pad(k, pad)[:, :, -self.window:], F.pad(v, pad)[:, :, -self.window:], slots)

    def step(self, x, pos, loop, state):
        pk, pv, slots = state
        q, k, v = self.qkv(x, pos, loop)
        k = torch.cat([pk[:, :, 1:], k], dim=2)
        v = torch.cat([pv[:, :, 1:], v], dim=2)
        slots = torch.cat([slots[:, 1:], pos.float()], dim=1)
        valid = (slots >= 0) & (pos.float() - slots < self.window)
        y = attend(q, k, v, valid.unsqueeze(1).unsqueeze(1))
        return self.out(y, loop), (k, v, slots)


class LoopBlock(nn.Module):
    def __init__(self, mix, d, expansion, loops, rank):
        super().__init__()
        self.norm1, self.norm2 = LoopNorm(d, loops), LoopNorm(d, loops)
        self.mix = mix
        self.mlp = LoopMLP(d, expansion, loops, rank)

    def forward(self, x, pos, loop):
        y, state = self.mix(self.norm1(x, loop), pos, loop)
        x = x + y
        return x + self.mlp(self.norm2(x, loop), loop), state

    def step(self, x, pos, loop, state):
        y, state = self.mix.step(self.norm1(x, loop), pos, loop, state)
        x = x + y
        return x + self.mlp(self.norm2(x, loop), loop), state


class RecursiveLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, L, r = cfg["d_model"], cfg["loops"], cfg["lora_rank"]
        self.embed = nn.Embedding(cfg["vocab_size"], d)
        blocks = []
        for kind in cfg["group"]:
            if kind == "recurrent":
                mix = LoopRecurrent(d, cfg["conv_width"], L, r)
            else:
                mix = LoopLocalAttention(d, cfg["heads"], cfg["kv_heads"], cfg["window"], L, r)
            blocks.append(LoopBlock(mix, d, cfg["mlp_expansion"], L, r))
        self.group = nn.ModuleList(blocks)
        self.exit_norm = LoopNorm(d, L)

    def embed_ids(self, ids):
        return self.embed(ids) * math.sqrt(self.cfg["d_model"])

    def exit_logits(self, x, loop):
        return self.exit_norm(x, loop) @ self.embed.weight.t()

    def run_loop(self, x, pos, loop, exited=None, exit_h=None):
        """One loop over whole sequences. Tokens in `exited` [B, T] left at an earlier loop: every
        block takes their exit hidden state `exit_h` as its input, as the state copy does when decoding."""
        states = []
        for blk in self.group:
            if exited is not None:
                x = torch.where(exited.unsqueeze(-1), exit_h, x)
            x, s = blk(x, pos, loop)
            states.append(s)
        return x, states

    def forward(self, ids, pos, exit_threshold=None, may_exit=None):
        """Whole sequences through every loop: the exit logits after each loop, and each loop's state.
        With `exit_threshold`, tokens whose exit head is that confident leave (as when decoding with
        early exit and the state copy) where `may_exit` [B, T] allows (generated tokens: a prompt is
        prefilled through every loop); `self.served` says which tokens each loop's logits serve."""
        x = self.embed_ids(ids)
        logits, states, served = [], [], []
        exited = torch.zeros_like(ids, dtype=torch.bool)
        exit_h = x
        for l in range(self.cfg["loops"]):
            loop = torch.full((ids.shape[0],), l, dtype=torch.long, device=ids.device)
            x, s = self.run_loop(x, pos, loop, exited if l > 0 else None, exit_h)
            lg = self.exit_logits(x, loop)
            logits.append(lg)
            states.append(s)
            served.append(~exited)
            if exit_threshold is not None and l < self.cfg["loops"] - 1:
                leave = ~exited & may_exit & (torch.softmax(lg.detach(), -1).max(-1).values >= exit_threshold)
                exit_h = torch.where(leave.unsqueeze(-1), x, exit_h)
                exited = exited | leave
        self.served = served
        return logits, states

    def init_state(self, B):
        return [[blk.mix.init_state(B) for blk in self.group] for _ in range(self.cfg["loops"])]

    def copy_state(self, h, pos, loop, state):
        """A skipped loop's state updated from an exited token's hidden state `h`, used as the input
        of every block of the loop (the state copy of Bae et al.): only the parts that write state run."""
        return [blk.mix.step(blk.norm1(h, loop), pos, loop, s)[1] for blk, s in zip(self.group, state)]

    def loop_step(self, x, pos, loop, state):
        """One loop of the group for one token per row, each row at its own loop (state: that loop's)."""
        new = []
        for blk, s in zip(self.group, state):
            x, s = blk.step(x, pos, loop, s)
            new.append(s)
        return x, self.exit_logits(x, loop), new


def unique_params(model):
    return sum(p.numel() for p in model.parameters())


def recursive_cfg(policy_cfg, rank):
    kinds = policy_cfg["block_types"]
    group = kinds[:len(kinds) // 2]
    assert group * 2 == kinds, f"the policy's blocks {kinds} are not two repeats of one group"
    return dict(policy_cfg, architecture="relaxed-recursive-griffin", group=group, loops=2, lora_rank=rank)


@torch.no_grad()
def from_policy(policy, rank):
    """The recursive model initialised from the policy: average tying + SVD LoRA, per-loop vectors copied."""
    cfg = recursive_cfg(policy.cfg, rank)
    model = RecursiveLM(cfg)
    model.embed.weight.copy_(policy.embed.weight)
    n = len(cfg["group"])
    loops = [policy.blocks[l * n:(l + 1) * n] for l in range(cfg["loops"])]
    for j, blk in enumerate(model.group):
        orig = [loops[l][j] for l in range(cfg["loops"])]
        blk.norm1.weight.copy_(torch.stack([o.norm1.weight for o in orig]))
        blk.norm2.weight.copy_(torch.stack([o.norm2.weight for o in orig]))
        for name in ("gate", "up", "down"):
            getattr(blk.mlp, name).init_from([getattr(o.mlp, name).weight for o in orig])
        mix = blk.mix
        if isinstance(mix, LoopRecurrent):
            src = [o.mix for o in orig]
            for name in ("gate_in", "x_in", "out"):
                getattr(mix, name).init_from([getattr(s, name).weight for s in src])
            for name in ("w_a", "w_i"):
                getattr(mix, name).init_from([getattr(s, name).weight for s in src], [getattr(s, name).bias for s in src])
            mix.conv_w.copy_(torch.stack([s.conv_w for s in src]))
            mix.conv_b.copy_(torch.stack([s.conv_b for s in src]))
            mix.lam.copy_(torch.stack([s.lam for s in src]))
        else:
            src = [o.mix.attn for o in orig]
            for name in ("q", "k", "v", "o"):
                getattr(mix, name).init_from([getattr(s, name).weight for s in src])
    model.exit_norm.weight.copy_(policy.norm.weight.expand(cfg["loops"], -1))
    return model


def save_recursive(model, name, **meta):
    torch.save(dict(cfg=model.cfg, state=cpu_state(model), **meta), os.path.join(WORK, name + ".pt"))


def load_recursive(name="recursive"):
    ck = torch.load(os.path.join(WORK, name + ".pt"), map_location="cpu")
    m = RecursiveLM(ck["cfg"])
    m.load_state_dict(ck["state"])
    return m.to(DEVICE), ck


def loop_losses(logits, teacher, tgt, served):
    """Per loop: cross-entropy on the gold tokens and KL(teacher || loop) on the positions that
    loop's exit serves (every position for the first loop; those that did not leave for later ones)."""
    out = []
    for lg, mask in zip(logits, served):
        keep = (tgt != -100) & mask
        flat = lg[keep]
        ce = F.cross_entropy(flat, tgt[keep])
        kd = F.kl_div(F.log_softmax(flat, -1), F.log_softmax(teacher[keep], -1), log_target=True, reduction="batchmean")
        out.append((ce, kd))
    return out


def uptrain(model, teacher, examples, minutes, lr, seed, logfile, batch_size=32, exit_weight=0.3, warmup=50,
            exit_aware=None):
    """AdamW with warm-up and cosine decay over a wall-clock budget. Loss: the last loop's CE + KD,
    plus `exit_weight` times the same for every earlier loop's exit. With `exit_aware` (a
    threshold), every other batch trains with early exit at that threshold and the state copy, so
    that later loops learn to read states written by tokens that left."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = adamw(model, lr, decayed=lambda name, p: p.dim() >= 2 and "lora" not in name)
    teacher.eval()
    start, budget = time.time(), minutes * 60.0
    step, ema, order = 0, None, []
    while time.time() - start < budget:
        frac = (time.time() - start) / budget
        cur = warmup_cosine(lr, step, warmup, frac)
        for g in opt.param_groups:
            g["lr"] = cur
        if not order:
            order = length_bucketed_batches(examples, batch_size, rng)
        ids, pos, tgt = (t.to(DEVICE) for t in collate([examples[i] for i in order.pop()]))
        with torch.no_grad():
            t_logits, _ = teacher(ids, pos)
        model.train()
        generated = F.pad(tgt[:, :-1] != -100, (1, 0), value=False)  # input tokens the model wrote itself
        logits, _ = model(ids, pos, exit_threshold=exit_aware if exit_aware is not None and step % 2 == 1 else None,
                          may_exit=generated)
        losses = loop_losses(logits, t_logits, tgt, model.served)
        loss = sum((1.0 if l == len(losses) - 1 else exit_weight) * (ce + kd) for l, (ce, kd) in enumerate(losses))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        vals = [v.item() for ce, kd in losses for v in (ce, kd)]
        ema = vals if ema is None else [0.98 * e + 0.02 * v for e, v in zip(ema, vals)]
        if step % 50 == 0:
            parts = " ".join(f"loop{l} ce {ema[2 * l]:.4f} kd {ema[2 * l + 1]:.4f}" for l in range(len(losses)))
            log(f"step {step} {parts} lr {cur:.2e} {(time.time() - start) / 60:.1f} min", logfile)
    return dict(steps=step, sequences=step * batch_size, minutes=(time.time() - start) / 60,
                final_losses=ema, batch_size=batch_size, exit_weight=exit_weight, lr=lr)


@torch.no_grad()
def prefill(model, ids, pos):
    """Every loop over the prompts; returns the last loop's next-token logits and each loop's state."""
    logits, states = model(ids, pos)
    return logits[-1][:, -1], states


@torch.no_grad()
def generate_exit(model, prompts, temperature=0.0, threshold=None, max_new=280, batch_size=256, seed=0, skipped="none"):
    """Completions with early exit: a token leaves after the first loop whose exit head's top
    probability (softmax at temperature 1) reaches `threshold` (None: every loop runs). What a token
    that left leaves in the state of the loops it skipped, by `skipped`:
      "none": nothing (their states keep their old values; the token is invisible to those loops);
      "copy": the paper's state copy: each block of a skipped loop updates its state from the exit
              hidden state (its recurrence, conv window and attention window; no MLP, no output);
      "full": the skipped loops still run in full for their state (no saving; a diagnostic that
              isolates the exit decision).
    Returns (completions, full loop runs summed over tokens, state-copy loop runs, generated tokens)."""
    model.eval()
    L = model.cfg["loops"]
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    out, loops_run, copies, tokens = [], 0, 0, 0
    for i in range(0, len(prompts), batch_size):
        chunk = [example(p, "")[0][:-1] for p in prompts[i:i + batch_size]]
        ids, pos = (t.to(DEVICE) for t in left_pad(chunk))
        last, states = prefill(model, ids, pos)
        p = pos[:, -1:]
        B = len(chunk)
        done = torch.zeros(B, dtype=torch.bool, device=DEVICE)
        toks = []
        for _ in range(max_new):
            nxt = next_tokens(last, temperature, gen, done)
            toks.append(nxt)
            done |= nxt[:, 0] == TOK.eos_id
            if done.all():
                break
            p = p + 1
            x = model.embed_ids(nxt)
            running = ~done  # rows still going through loops for this token
            exit_h = x
            last = torch.zeros(B, model.cfg["vocab_size"], device=DEVICE)
            for l in range(L):
                loop = torch.full((B,), l, dtype=torch.long, device=DEVICE)
                x, lg, s_new = model.loop_step(x, p, loop, states[l])
                left = ~done & ~running  # rows that left at an earlier loop
                if skipped == "copy":
                    s_left = model.copy_state(exit_h, p, loop, states[l])
                    copies += int(left.sum())
                elif skipped == "full":
                    s_left = s_new
                else:
                    s_left = states[l]
                states[l] = [tuple(torch.where(running.view((B,) + (1,) * (a.dim() - 1)), a,
                                               torch.where(left.view((B,) + (1,) * (a.dim() - 1)), c, b))
                                   for a, b, c in zip(sn, so, sl))
                             for sn, so, sl in zip(s_new, states[l], s_left)]
                lg = lg[:, 0]
                loops_run += int(running.sum())
                leave = running.clone() if l == L - 1 else running & (
                    torch.softmax(lg, -1).max(-1).values >= threshold if threshold is not None else torch.zeros_like(running))
                last = torch.where(leave.unsqueeze(1), lg, last)
                exit_h = torch.where((running & leave).view(B, 1, 1), x, exit_h)
                running = running & ~leave
            tokens += int((~done).sum())
        toks = torch.cat(toks, 1).tolist()
        for row in toks:
            if TOK.eos_id in row:
                row = row[:row.index(TOK.eos_id)]
            out.append(TOK.decode(row))
    return out, loops_run, copies, tokens


def cmd_train(args):
    name = args.name
    logfile = os.path.join(WORK, name + ".log")
    policy, _ = load_lm("policy_rev")
    if args.init:  # continue uptraining an earlier recursive checkpoint
        model, _ = load_recursive(args.init)
    else:
        model = from_policy(policy.cpu(), args.rank).to(DEVICE)
    policy = policy.to(DEVICE)
    n_src, n_rec = sum(p.numel() for p in policy.parameters()), unique_params(model)
    log(f"{name}: policy {n_src} parameters -> recursive {n_rec} unique ({100 * (1 - n_rec / n_src):.1f}% fewer), "
        f"rank {args.rank}", logfile)
    suffix = f"_s{args.seed}" if args.seed else ""
    train = synth("train", 120000, args.seed + 1, os.path.join(WORK, f"train{suffix}.jsonl"))
    rng = random.Random(args.seed + 7)
    examples = gold_examples(rng.sample(train, len(train)))
    stats = uptrain(model, policy, examples, args.minutes, args.lr, args.seed, logfile, batch_size=args.batch_size,
                    exit_weight=args.exit_weight, exit_aware=args.exit_aware, warmup=args.warmup)
    stats.update(init=args.init or "policy_rev", exit_aware=args.exit_aware)
    log(f"{name}: done {json.dumps(stats)}", logfile)
    save_recursive(model, name, stats=dict(stats, source_parameters=n_src, unique_parameters=n_rec))


def sample_and_score(model, test, threshold, seed, name, prm, skipped):
    """16 samples per problem at T=0.8 with early exit at `threshold` (None: every loop), labelled
    by `data label` and scored by the PRM; returns rows, PRM step scores, mean loops per token, seconds."""
    t0 = time.time()
    prompts = [policy_prompt(p["problem"]) for p in test for _ in range(N_SAMPLES)]
    if isinstance(model, RecursiveLM):
        sols, loops_run, _, tokens = generate_exit(model, prompts, temperature=0.8, threshold=threshold, seed=seed,
                                                   skipped=skipped)
    else:  # the source policy, sampled the way evaluate.py does
        sols, loops_run, tokens = generate(model, prompts, temperature=0.8, seed=seed), None, None
    rows = label([dict(p, gold_solution=p["solution"], solution=s)
                  for p, s in zip([p for p in test for _ in range(N_SAMPLES)], sols)], WORK, name)
    sampling = time.time() - t0
    scores = step_scores(prm, rows) if prm is not None else None
    return rows, scores, None if tokens is None else loops_run / max(tokens, 1), sampling


def cmd_evaluate(args):
    """Pass@1 (T=0.8) and PRM-weighted best-of-16 on the test split, every loop and with early exit,
    beside the source policy's figures from models/eval.json (same split, same procedure)."""
    from prm import load_prm
    test = synth("test", args.per_level * len(LEVELS), args.seed + 1, os.path.join(WORK, f"test_{args.per_level}.jsonl"))
    model, ck = load_recursive(args.name)
    prm, _ = load_prm()
    out_path = os.path.join(MODELS, "eval-recursive.json")
    everything = json.load(open(out_path)) if os.path.exists(out_path) else {}
    result = everything.setdefault(f"evaluation_{args.per_level}_per_level", {})
    result.update(model=args.name, test={"split": "test", "per_level": args.per_level, "seed": args.seed + 1,
                                         "samples_per_problem": N_SAMPLES, "temperature": 0.8},
                  unique_parameters=unique_params(model), uptraining=ck.get("stats"))
    source = json.load(open(os.path.join(MODELS, "eval.json")))
    result["source_policy"] = {lv: {k: source["by_level"][lv][k] for k in ("pass@1", "majority@16", "prm_weighted_best_of_16")}
                               for lv in source["by_level"]}
    for spec in args.threshold.split(","):
        threshold = None if spec in ("off", "source") else float(spec)
        key = f"exit_{spec}" if spec in ("off", "source") else f"exit_{spec}_{args.skipped}"
        log(f"evaluate {args.name if spec != 'source' else 'the source policy'}: threshold {spec}, "
            f"{len(test)} problems x {N_SAMPLES} samples")
        sampler = load_lm("policy_rev")[0] if spec == "source" else model
        rows, scores, loops, secs = sample_and_score(sampler, test, threshold, args.seed + 5,
                                                     f"eval_recursive_{args.per_level}_{key}", prm, args.skipped)
        per = level_table(test, rows, scores)
        avg = {k: mean(per[str(lv)][k] for lv in LEVELS) for k in ("pass@1", "majority@16", "prm_weighted_best_of_16")}
        result[key] = {"threshold": threshold, "mean_loops_per_token": loops, "sampling_s": secs, "by_level": per,
                       "average_over_levels": avg}
        log(f"threshold {spec}: mean loops/token {loops}, pass@1 {avg['pass@1']:.3f}, "
            f"PRM best-of-16 {avg['prm_weighted_best_of_16']:.3f} ({secs / 60:.1f} min sampling)")
        with open(out_path, "w") as f:
            json.dump(everything, f, indent=2)
            f.write("\n")


def cmd_curve(args):
    """Pass@1 against mean loops per token over exit thresholds, on a slice of the test split."""
    test = synth("test", args.per_level * len(LEVELS), args.seed + 1, os.path.join(WORK, f"test_{args.per_level}.jsonl"))
    model, _ = load_recursive(args.name)
    points = []
    for spec in args.thresholds.split(","):
        threshold = None if spec == "off" else float(spec)
        prompts = [policy_prompt(p["problem"]) for p in test for _ in range(args.samples)]
        t0 = time.time()
        sols, loops_run, copies, tokens = generate_exit(model, prompts, temperature=0.8, threshold=threshold,
                                                        seed=args.seed + 5, skipped=args.skipped)
        rows = label([dict(p, solution=s) for p, s in zip([p for p in test for _ in range(args.samples)], sols)],
                     WORK, f"curve_{spec}_{args.skipped}")
        point = {"threshold": threshold, "skipped": args.skipped, "mean_loops_per_token": loops_run / max(tokens, 1),
                 "state_copies_per_token": copies / max(tokens, 1),
                 "pass@1": mean(r["correct"] for r in rows), "seconds": time.time() - t0}
        points.append(point)
        log(f"curve: {json.dumps(point)}")
    source = None
    if not args.no_reference:
        source = reference_pass1(test, args)
    path = os.path.join(MODELS, "eval-recursive.json")
    result = json.load(open(path)) if os.path.exists(path) else {}
    curves = result.setdefault("exit_curves", {})
    curves[args.skipped] = {"per_level": args.per_level, "samples_per_problem": args.samples, "temperature": 0.8,
                            "points": points}
    if source is not None:
        result["exit_curve_source_policy"] = source
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


def reference_pass1(test, args):
    """The source policy's pass@1 on the curve's problems, sampled the same way."""
    prompts = [policy_prompt(p["problem"]) for p in test for _ in range(args.samples)]
    policy, _ = load_lm("policy_rev")
    sols = generate(policy, prompts, temperature=0.8, seed=args.seed + 5)
    rows = label([dict(p, solution=s) for p, s in zip([p for p in test for _ in range(args.samples)], sols)],
                 WORK, "curve_policy")
    source = {"pass@1": mean(r["correct"] for r in rows)}
    log(f"curve: the source policy on the same problems: {json.dumps(source)}")
    return source


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--name", default="recursive")
    t.add_argument("--rank", type=int, default=6)
    t.add_argument("--init", help="continue from this recursive checkpoint (in work/) instead of the policy")
    t.add_argument("--minutes", type=float, default=30)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--exit-weight", type=float, default=0.3)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--warmup", type=int, default=50)
    t.add_argument("--exit-aware", type=float, default=None,
                   help="train every other batch with early exit at this threshold and the state copy")
    t.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("evaluate")
    e.add_argument("--name", default="recursive")
    e.add_argument("--per-level", type=int, default=500)
    e.add_argument("--threshold", default="off",
                   help="comma-separated exit thresholds, off (every loop), or source (the source policy on the same problems)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--skipped", choices=["none", "copy", "full"], default="copy",
                   help="what an exited token leaves in the loops it skipped (see generate_exit)")
    c = sub.add_parser("curve")
    c.add_argument("--name", default="recursive")
    c.add_argument("--per-level", type=int, default=40)
    c.add_argument("--samples", type=int, default=4)
    c.add_argument("--thresholds", default="off,0.99,0.95,0.9,0.8,0.7,0.5")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--skipped", choices=["none", "copy", "full"], default="copy")
    c.add_argument("--no-reference", action="store_true", help="skip the source policy on the same problems")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    {"train": cmd_train, "evaluate": cmd_evaluate, "curve": cmd_curve}[args.cmd](args)


if __name__ == "__main__":
    main()
