"""Export a Mixture-of-Depths checkpoint (mod.py's `MoDLM`) to ONNX as segment graphs, so that the
runtime runs a routed block on only the rows (and prompt tokens) its router sends through.

    OMP_NUM_THREADS=1 /usr/bin/python3 models/train/export_mod.py --checkpoint mod_init --out models/mod

The decoder is cut at the routed blocks:

  segment_0   input_ids -> embeddings, plain blocks up to the first routed block, that block's router
  routed_1    routed block 1, on a batch of the routed rows only (their own caches)
  segment_2   hidden states -> plain block 2 -> router of block 3
  routed_3    ...
  head        final RMSNorm + tied output layer (when the last block is routed)

Every segment graph takes a sequence of T new tokens on top of a past cache of S slots with an
`attention_mask` [batch, S + T] (1 = a real slot): decoding is T = 1, prefill is the whole prompt
with S = 0, and a routed block's prefill gets only the prompt tokens its router chose (in order).
A routed graph returns x + sigmoid(logit) * (block(x) - x) for its rows; the runtime scatters
them back, and the other rows keep x. A routed block's cache therefore holds only the tokens that
went through it, as in training (mod.py: a routed block's attention sees only routed tokens).

Checks: every graph against its PyTorch module through onnxruntime-node (ort_check.mjs), the
segmented algorithm (a Python twin of the TypeScript runtime) against `MoDLM.forward` + `step` on a
batch whose rows route differently, and golden.json (40 greedy tokens) from `MoDLM` itself.
"""
import argparse
import json
import math
import os
import shutil

import torch
import torch.nn as nn

from data import PROMPT_FORMAT, STEP_DELIMITER, TOK, policy_prompt
from export import (GOLDEN_PROMPT, MODELS, OPSET, TOLERANCE, declare_shapes, greedy_golden, ort_check, tensor_case,
                    tokenizer_info, write_json)
from model import attend, n_params
from mod import MoDLM
from train import WORK


def load_mod(checkpoint):
    path = checkpoint if checkpoint.endswith(".pt") else os.path.join(WORK, checkpoint + ".pt")
    ck = torch.load(path, map_location="cpu")
    lm = MoDLM(ck["cfg"])
    lm.load_state_dict(ck["state"])
    return lm.eval(), ck, path


def block_seq(blk, x, pos, mask, pk, pv):
    """Block on T new tokens after S past slots. mask [B, S+T] (1 = real slot); new token t sees the
    real past slots and new tokens 0..t. Returns the block output and the concatenated cache."""
    attn = blk.mix.attn
    q, k, v = attn.qkv(blk.norm1(x), pos)
    k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)
    ones_s = torch.ones_like(mask[0, :], dtype=torch.float32)  # [S+T]
    ones_t = torch.ones_like(pos[0, :], dtype=torch.float32)  # [T]
    j = ones_s.cumsum(0) - 1  # slot index 0..S+T-1, from shapes so S and T stay dynamic
    t = ones_t.cumsum(0) - 1 + (ones_s.sum() - ones_t.sum())  # S + t
    causal = j.unsqueeze(0) <= t.unsqueeze(1)  # [T, S+T]
    allowed = causal.unsqueeze(0) & (mask > 0).unsqueeze(1)  # [B, T, S+T]
    y = attend(q, k, v, allowed.unsqueeze(1))
    x = x + attn.out(y)
    return x + blk.mlp(blk.norm2(x)), k, v


def plan(cfg):
    """The segments in order: plain runs (with the embeddings first, the next router or the head
    last), routed blocks, and a head when the last block is routed."""
    routed, n = cfg["routed_blocks"], len(cfg["block_types"])
    segs, i = [], 0
    while i < n:
        if i in routed:
            segs.append({"kind": "routed", "graph": f"routed_{i}", "blocks": [i]})
            i += 1
            continue
        run = []
        while i < n and i not in routed:
            run.append(i)
            i += 1
        segs.append({"kind": "plain", "graph": f"segment_{run[0]}", "blocks": run, "embed": run[0] == 0,
                     "router_for": i if i < n else None, "head": i >= n})
    if segs[0]["kind"] == "routed":  # embeddings alone, then the router of block 0
        segs.insert(0, {"kind": "plain", "graph": "segment_embed", "blocks": [], "embed": True, "router_for": 0, "head": False})
    if segs[-1]["kind"] == "routed":
        segs.append({"kind": "head", "graph": "head", "blocks": []})
    return segs


class PlainSegment(nn.Module):
    def __init__(self, lm, seg):
        super().__init__()
        self.lm, self.seg = lm, seg

    def forward(self, x, position_ids, attention_mask, *past):
        lm, seg = self.lm, self.seg
        if seg["embed"]:
            x = lm.embed(x) * math.sqrt(lm.cfg["d_model"])
        present = []
        for n, i in enumerate(seg["blocks"]):
            x, k, v = block_seq(lm.blocks[i], x, position_ids, attention_mask, past[2 * n], past[2 * n + 1])
            present += [k, v]
        if seg["head"]:
            return (lm.logits(lm.norm(x)), *present)
        return (x, lm.routers[str(seg["router_for"])](x).squeeze(-1), *present)


class RoutedSegment(nn.Module):
    def __init__(self, lm, i):
        super().__init__()
        self.lm, self.i = lm, i

    def forward(self, x, router_logits, position_ids, attention_mask, past_key, past_value):
        out, k, v = block_seq(self.lm.blocks[self.i], x, position_ids, attention_mask, past_key, past_value)
        return x + torch.sigmoid(router_logits).unsqueeze(-1) * (out - x), k, v


class Head(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, x):
        return self.lm.logits(self.lm.norm(x))


def kv_names(i):
    return [(f"past_key_values.{i}.{kv}", f"present.{i}.{kv}") for kv in ("key", "value")]


def seg_io(cfg, seg):
    """(inputs, outputs) as (name, shape) lists."""
    d, V, H = cfg["d_model"], cfg["vocab_size"], cfg["heads"]
    hd = d // H
    past = ["batch", H, "past_sequence", hd]
    present = ["batch", H, "past_sequence + sequence", hd]
    hidden = ["batch", "sequence", d]
    if seg["kind"] == "head":
        return [("hidden_states", hidden)], [("logits", ["batch", "sequence", V])]
    common = [("position_ids", ["batch", "sequence"]), ("attention_mask", ["batch", "past_sequence + sequence"])]
    if seg["kind"] == "routed":
        i = seg["blocks"][0]
        ins = [("hidden_states", hidden), ("router_logits", ["batch", "sequence"])] + common
        ins += [(p, past) for p, _ in kv_names(i)]
        outs = [("hidden_states_out", hidden)] + [(q, present) for _, q in kv_names(i)]
        return ins, outs
    ins = [("input_ids" if seg["embed"] else "hidden_states", ["batch", "sequence"] if seg["embed"] else hidden)] + common
    outs = [("logits", ["batch", "sequence", V])] if seg["head"] else [("hidden_states_out", hidden), ("router_logits", ["batch", "sequence"])]
    for i in seg["blocks"]:
        ins += [(p, past) for p, _ in kv_names(i)]
        outs += [(q, present) for _, q in kv_names(i)]
    return ins, outs


def module_for(lm, seg):
    if seg["kind"] == "head":
        return Head(lm)
    if seg["kind"] == "routed":
        return RoutedSegment(lm, seg["blocks"][0])
    return PlainSegment(lm, seg)


def example_inputs(cfg, seg, B, T, S, seed=0):
    """Random inputs for a segment: B rows, T new tokens, S past slots; row 1 has 2 padded past slots."""
    g = torch.Generator().manual_seed(seed)
    d, H = cfg["d_model"], cfg["heads"]
    hd = d // H
    names, shapes = zip(*seg_io(cfg, seg)[0])
    out = []
    for name in names:
        if name == "input_ids":
            out.append(torch.randint(4, cfg["vocab_size"], (B, T), generator=g))
        elif name == "hidden_states":
            out.append(torch.randn(B, T, d, generator=g) * 3)
        elif name == "router_logits":
            out.append(torch.randn(B, T, generator=g))
        elif name == "position_ids":
            out.append(torch.arange(S, S + T).repeat(B, 1) + torch.arange(B).unsqueeze(1) * 3)
        elif name == "attention_mask":
            m = torch.ones(B, S + T, dtype=torch.long)
            if B > 1 and S >= 2:
                m[1, :2] = 0
            out.append(m)
        else:
            out.append(torch.randn(B, H, S, hd, generator=g))
    return out


def export_segments(lm, outdir):
    cfg, graphs = lm.cfg, {}
    for seg in plan(cfg):
        ins, outs = seg_io(cfg, seg)
        module = module_for(lm, seg)
        path = os.path.join(outdir, seg["graph"] + ".onnx")
        args = tuple(example_inputs(cfg, seg, 2, 3, 4))
        axes = {n: {k: s for k, s in enumerate(shape) if isinstance(s, str)} for n, shape in ins + outs}
        axes = {n: a for n, a in axes.items() if a}
        torch.onnx.export(module, args, path, input_names=[n for n, _ in ins], output_names=[n for n, _ in outs],
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True)
        declare_shapes(path, ins + outs)
        graphs[seg["graph"]] = {
            "file": os.path.basename(path),
            "inputs": [{"name": n, "shape": s, "dtype": "int64" if n in ("input_ids", "position_ids", "attention_mask") else "float32"}
                       for n, s in ins],
            "outputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in outs]}
    return graphs


def graph_cases(lm, outdir, graphs):
    """Each graph against its PyTorch module: decode shape (T=1 on a padded past) and prefill shape (S=0)."""
    cases = []
    with torch.no_grad():
        for seg in plan(lm.cfg):
            module = module_for(lm, seg)
            ins, outs = seg_io(lm.cfg, seg)
            for seed, (tag, (B, T, S)) in enumerate({"decode": (3, 1, 6), "prefill": (1, 9, 0), "empty": (2, 1, 0)}.items()):
                args = example_inputs(lm.cfg, seg, B, T, S, seed=seed + 1)
                res = module(*args)
                res = res if isinstance(res, tuple) else (res,)
                cases.append({"name": f"{seg['graph']}/{tag}", "file": os.path.join(outdir, graphs[seg["graph"]]["file"]),
                              "inputs": {n: tensor_case(a) for (n, _), a in zip(ins, args)},
                              "expected": {n: r.reshape(-1).tolist() for (n, _), r in zip(outs, res)}})
    return cases


class SegmentedRef:
    """The runtime's algorithm in Python on the PyTorch segment modules: per-row caches (routed
    blocks' caches hold only the tokens that went through), batched with right-aligned padding and
    an attention mask, routed blocks run on the routed rows only."""

    def __init__(self, lm):
        self.lm, self.cfg, self.segs = lm, lm.cfg, plan(lm.cfg)
        self.mods = [module_for(lm, s) for s in self.segs]
        H, hd = self.cfg["heads"], self.cfg["d_model"] // self.cfg["heads"]
        self.empty = torch.zeros(1, H, 0, hd)
        self.routed_counts = {i: 0 for i in self.cfg["routed_blocks"]}

    def prefill(self, ids):
        T = len(ids)
        pos = torch.arange(T).unsqueeze(0)
        cache = {i: (self.empty, self.empty) for i in range(len(self.cfg["block_types"]))}
        x, logit = torch.tensor([ids]), None
        for seg, mod in zip(self.segs, self.mods):
            if seg["kind"] == "routed":
                i = seg["blocks"][0]
                idx = (logit[0] > 0).nonzero().squeeze(1)
                self.routed_counts[i] += len(idx)
                if len(idx) == 0:
                    continue
                out, k, v = mod(x[:, idx], logit[:, idx], pos[:, idx], torch.ones(1, len(idx), dtype=torch.long), *cache[i])
                x = x.clone()
                x[:, idx] = out
                cache[i] = (k, v)
            elif seg["kind"] == "head":
                x = mod(x[:, -1:])
            else:
                past = [t for i in seg["blocks"] for t in cache[i]]
                res = mod(x, pos, torch.ones(1, T, dtype=torch.long), *past)
                if seg["head"]:
                    x, rest = res[0][:, -1:], res[1:]
                else:
                    x, logit, rest = res[0], res[1], res[2:]
                for n, i in enumerate(seg["blocks"]):
                    cache[i] = (rest[2 * n], rest[2 * n + 1])
        return x[0, -1], cache

    @staticmethod
    def batch(caches, block):
        L = max(c[block][0].shape[2] for c in caches)
        ks, vs, ms = [], [], []
        for c in caches:
            k, v = c[block]
            pad = L - k.shape[2]
            ks.append(torch.nn.functional.pad(k, (0, 0, pad, 0)))
            vs.append(torch.nn.functional.pad(v, (0, 0, pad, 0)))
            ms.append(torch.cat([torch.zeros(pad, dtype=torch.long), torch.ones(k.shape[2] + 1, dtype=torch.long)]))
        return torch.cat(ks), torch.cat(vs), torch.stack(ms)

    @staticmethod
    def unbatch(k, v, lengths):
        return [(k[b:b + 1, :, k.shape[2] - n:], v[b:b + 1, :, v.shape[2] - n:]) for b, n in enumerate(lengths)]

    def step(self, tokens, positions, caches):
        B = len(tokens)
        pos = torch.tensor(positions).unsqueeze(1)
        x, logit = torch.tensor(tokens).unsqueeze(1), None
        new = [dict(c) for c in caches]
        for seg, mod in zip(self.segs, self.mods):
            if seg["kind"] == "routed":
                i = seg["blocks"][0]
                rows = [b for b in range(B) if logit[b, 0] > 0]
                self.routed_counts[i] += len(rows)
                if not rows:
                    continue
                k, v, m = self.batch([new[b] for b in rows], i)
                out, k, v = mod(x[rows], logit[rows], pos[rows], m, k, v)
                x = x.clone()
                x[rows] = out
                lengths = [new[b][i][0].shape[2] + 1 for b in rows]
                for b, kv in zip(rows, self.unbatch(k, v, lengths)):
                    new[b][i] = kv
            elif seg["kind"] == "head":
                x = mod(x)
            else:
                past, mask = [], None
                for i in seg["blocks"]:
                    k, v, mask = self.batch(new, i)
                    past += [k, v]
                res = mod(x, pos, mask, *past)
                x, logit, rest = (res[0], None, res[1:]) if seg["head"] else (res[0], res[1], res[2:])
                for n, i in enumerate(seg["blocks"]):
                    for b, kv in enumerate(self.unbatch(rest[2 * n], rest[2 * n + 1], [new[b][i][0].shape[2] + 1 for b in range(B)])):
                        new[b][i] = kv
        return x[:, 0], new


def segmented_check(lm, steps=12):
    """Three prompts decoded in one batch, fed seeded random tokens (so that rows route differently):
    the segmented algorithm against MoDLM.forward (routing="predictor") + step, each prompt alone.
    Returns the max logit difference and how many batched steps had rows that routed differently."""
    g = torch.Generator().manual_seed(5)
    prompts = [GOLDEN_PROMPT, "Compute 45 + 38.", "Solve 3x + 4 = 19 for x."]
    ref = SegmentedRef(lm)
    worst, mixed_steps = 0.0, 0
    with torch.no_grad():
        rows = []
        for p in prompts:
            ids = [TOK.bos_id] + TOK.encode(policy_prompt(p))
            logits, state = lm(torch.tensor([ids]), torch.arange(len(ids)).unsqueeze(0))
            seg_logits, cache = ref.prefill(ids)
            worst = max(worst, float((seg_logits - logits[0, -1]).abs().max()))
            rows.append({"ids": ids, "state": state, "logits": logits[0, -1], "cache": cache, "pos": len(ids)})
        for _ in range(steps):
            toks = torch.randint(4, lm.cfg["vocab_size"], (len(rows),), generator=g).tolist()
            counts = dict(ref.routed_counts)
            seg_logits, caches = ref.step(toks, [r["pos"] for r in rows], [r["cache"] for r in rows])
            if any(0 < ref.routed_counts[i] - counts[i] < len(rows) for i in counts):
                mixed_steps += 1
            for b, r in enumerate(rows):
                logits, r["state"] = lm.step(torch.tensor([[toks[b]]]), torch.tensor([[r["pos"]]]), r["state"])
                worst = max(worst, float((seg_logits[b] - logits[0, -1]).abs().max()))
                r["logits"], r["cache"], r["pos"] = logits[0, -1], caches[b], r["pos"] + 1
    return {"max_abs_logit_diff": worst, "steps": steps, "batch": len(prompts), "steps_with_mixed_routing": mixed_steps}


def flops_constants(lm):
    """FLOPs as 2 x parameters per token (the meter's convention), split into the parameters every
    token uses and those of each routed block, which only its routed tokens use."""
    cfg = lm.cfg
    per_block = {i: n_params(lm.blocks[i]) for i in cfg["routed_blocks"]}
    always = n_params(lm) - sum(per_block.values())
    return {
        "convention": "2 x parameters used per token (attention over the cache not counted), as the meter counts every model",
        "per_token": 2 * always,
        "per_routed_block": {str(i): 2 * p for i, p in per_block.items()},
        "all_routed_per_token": 2 * n_params(lm),
        "formula": "flops(token) = per_token + sum over routed blocks i the token went through of per_routed_block[i]",
    }


def routing_stats(lm, ids_list):
    with torch.no_grad():
        shares = {str(i): [0, 0] for i in lm.cfg["routed_blocks"]}
        for ids in ids_list:
            lm(torch.tensor([ids]), torch.arange(len(ids)).unsqueeze(0))
            for i, (logit, chosen, valid) in zip(lm.cfg["routed_blocks"], lm.aux):
                shares[str(i)][0] += int(chosen.sum())
                shares[str(i)][1] += int(valid.sum())
    return {i: round(a / b, 4) for i, (a, b) in shares.items()}


def routed_tokens(lm, prompt, generated):
    """Per routed block, how many prompt tokens and fed generated tokens go through it (PyTorch's
    causal predictor over the whole sequence: the same decisions as prefill + step)."""
    ids = prompt + generated
    with torch.no_grad():
        lm(torch.tensor([ids]), torch.arange(len(ids)).unsqueeze(0))
    return {str(i): {"prompt": int(chosen[0, :len(prompt)].sum()), "generated": int(chosen[0, len(prompt):].sum())}
            for i, (_, chosen, _) in zip(lm.cfg["routed_blocks"], lm.aux)}


BENCH_PROBLEM = "Compute (160 - 89) * 10 + 60 - 45 * 3 + 120 - 77."  # scripts/bench-runtime.ts's prompt


@torch.no_grad()
def sample_texts(lm, problem, n, tokens, seed):
    """n samples at temperature 1 from the model's own decoding (prompt + sampled ids)."""
    g = torch.Generator().manual_seed(seed)
    prompt = [TOK.bos_id] + TOK.encode(policy_prompt(problem))
    out = []
    for _ in range(n):
        logits, state = lm(torch.tensor([prompt]), torch.arange(len(prompt)).unsqueeze(0))
        ids = list(prompt)
        for t in range(tokens):
            nxt = int(torch.multinomial(torch.softmax(logits[0, -1], -1), 1, generator=g))
            ids.append(nxt)
            logits, state = lm.step(torch.tensor([[nxt]]), torch.tensor([[len(ids) - 1]]), state)
        out.append(ids)
    return out


@torch.no_grad()
def shift_routers(lm, share, seed=0):
    """For benchmarks of an untrained checkpoint only: shift each router's bias, block by block, so
    that `share` of the tokens of the model's own samples (bench prompt, temperature 1) go through."""
    texts = sample_texts(lm, BENCH_PROBLEM, 8, 96, seed)
    start = len(TOK.encode(policy_prompt(BENCH_PROBLEM))) + 1  # the sampled tokens only
    shifts = {}
    for n, i in enumerate(lm.cfg["routed_blocks"]):
        logits = []
        for ids in texts:
            lm(torch.tensor([ids]), torch.arange(len(ids)).unsqueeze(0))
            logits.append(lm.aux[n][0][0, start:])
        q = float(torch.quantile(torch.cat(logits), 1 - share))
        lm.routers[str(i)].bias -= q
        shifts[str(i)] = -q
    return shifts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="mod", help="name in models/train/work/ (without .pt) or a path")
    ap.add_argument("--out", default=os.path.join(MODELS, "mod"))
    ap.add_argument("--name", default=None, help="model name in config.json")
    ap.add_argument("--route-share", type=float, default=None,
                    help="benchmarks of an untrained checkpoint only: shift the routers' biases so that this share "
                         "of the model's own sampled tokens go through each routed block")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    lm, ck, ckpath = load_mod(args.checkpoint)
    cfg = lm.cfg
    shifts = shift_routers(lm, args.route_share) if args.route_share is not None else None
    stats = ck.get("stats") or {}
    trained = "steps" in stats
    outdir = os.path.abspath(args.out)
    if os.path.isdir(outdir):
        for f in os.listdir(outdir):
            if f.endswith(".onnx"):
                os.remove(os.path.join(outdir, f))
    os.makedirs(outdir, exist_ok=True)
    shutil.copy(os.path.join(MODELS, "baseline", "tokenizer.json"), os.path.join(outdir, "tokenizer.json"))
    graphs = export_segments(lm, outdir)
    diffs = ort_check(graph_cases(lm, outdir, graphs))
    worst = max(v for d in diffs.values() for v in d.values())
    print(f"{outdir}: max |onnx - torch| over every graph output {worst:.2e}")
    if worst >= TOLERANCE:
        raise SystemExit(f"ONNX check failed: {json.dumps(diffs)}")
    seg = segmented_check(lm)
    print(f"segmented decoding vs MoDLM.forward + step: {json.dumps(seg)}")
    if seg["max_abs_logit_diff"] >= TOLERANCE:
        raise SystemExit("the segmented algorithm does not match MoDLM")
    golden = greedy_golden(lm)
    golden["routed_tokens"] = routed_tokens(lm, golden["prompt_ids"], golden["greedy_ids"])
    write_json(os.path.join(outdir, "golden.json"), golden)
    H, hd = cfg["heads"], cfg["d_model"] // cfg["heads"]
    state = []
    for i in range(len(cfg["block_types"])):
        for p, q in kv_names(i):
            state.append({"past": p, "present": q, "shape": ["batch", H, "past_sequence", hd], "dtype": "float32",
                          "block": i, "routed": i in cfg["routed_blocks"]})
    name = args.name or ("deliberate-mod" if trained else "deliberate-mod-untrained")
    if shifts is not None:
        name += f"-routers-shifted-{args.route_share:g}"
    config = {
        "name": name,
        "description": "Mixture-of-Depths transformer (blocks " + ", ".join(map(str, cfg["routed_blocks"])) +
                       " routed) decoded as segment graphs; a routed block runs only on the rows its router sends through"
                       + ("" if trained else ". UNTRAINED weights (random initialisation with random routers): for "
                          "developing and testing the runtime, not for solving anything"),
        "trained": trained,
        **({"router_bias_shift": {"share": args.route_share, "shift_per_block": shifts,
                                  "note": "biases shifted after training so that this share of the model's own samples "
                                          "route (a benchmark device, not the trained model)"}} if shifts is not None else {}),
        "checkpoint": os.path.basename(ckpath),
        "architecture": cfg, "parameters": n_params(lm),
        "tokenizer": tokenizer_info(), "prompt_format": PROMPT_FORMAT, "step_delimiter": STEP_DELIMITER,
        "bos_token_id": TOK.bos_id, "eos_token_id": TOK.eos_id, "pad_token_id": TOK.pad_id,
        "routing": {
            "rule": "a token goes through routed block i when router_logits (computed by the segment before it, on "
                    "the block's input) is above 0; the block's output delta is scaled by sigmoid(logit)",
            "capacity_in_training": cfg["capacity"],
            "share_routed_on_golden_prompt": routing_stats(lm, [golden["prompt_ids"] + golden["greedy_ids"]]),
        },
        "segments": plan(cfg),
        "graphs": graphs,
        "state": state,
        "state_layout": "per block, key/value [batch, heads, past_sequence, head_dim]; a plain block's cache holds every "
                        "token (past_sequence = tokens so far); a routed block's cache holds only the tokens that went "
                        "through it, in order, so each row has its own length per routed block. Batches are "
                        "right-aligned with attention_mask 0 on the padding; position_ids are the tokens' own positions "
                        "(rotary), so a compacted cache attends exactly as the masked cache of training does",
        "flops": flops_constants(lm),
        "onnx_check": {"tolerance": TOLERANCE, "max_abs_diff": diffs, "segmented_vs_pytorch": seg},
        "training": stats,
    }
    write_json(os.path.join(outdir, "config.json"), config)
    total = sum(os.path.getsize(os.path.join(outdir, f)) for f in os.listdir(outdir))
    print(f"wrote {outdir}: {len(graphs)} graphs, {total / 1e6:.2f} MB, golden {golden['greedy_text']!r}")


if __name__ == "__main__":
    main()
