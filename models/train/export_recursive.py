"""Export the relaxed recursive model (recursive.py) to models/recursive/: four ONNX graphs, config.json,
tokenizer.json and golden.json; check every graph against PyTorch through onnxruntime-node.

    OMP_NUM_THREADS=1 /usr/bin/python3 models/train/export_recursive.py --checkpoint recursive2 --threshold 0.9

Graphs (state names carry the loop, then the block index within the shared group):
  prefill.onnx  input_ids, position_ids [B, T] -> logits of the last loop [B, T, V] + every loop's state
  decode.onnx   input_ids, position_ids [B, 1] + every loop's state -> last loop's logits + new states
                (all loops for one token: the path with exits off)
  loop.onnx     input_ids [B, 1], hidden [B, 1, D], loop [B], position_ids [B, 1] + the state of each
                row's own loop -> hidden_out [B, 1, D], logits [B, 1, V] (the exit head at the row's
                loop) + that loop's new state. A row at loop 0 embeds input_ids; a row at a later loop
                takes `hidden` (the previous loop's hidden_out), so one run serves rows at any loop.
  copy.onnx     hidden [B, 1, D] (a token's hidden_out at the loop it exited after), loop [B] (a loop it
                skipped), position_ids [B, 1] + that loop's state -> that loop's new state: the state copy
                (RecursiveLM.copy_state), only the state-writing parts of each block (recurrent: x_in,
                conv, gates, RG-LRU step; attention: k, v and the window append), every block fed the
                exit hidden state.
"""
import argparse
import hashlib
import json
import os
import shutil

import onnx
from onnx import external_data_helper, numpy_helper

import torch
import torch.nn as nn

from data import PROMPT_FORMAT, STEP_DELIMITER, TOK, policy_prompt
from export import (GOLDEN_PROMPT, GOLDEN_TOKENS, MODELS, OPSET, TOLERANCE, declare_shapes, ort_check,
                    tensor_case, tokenizer_info, write_json)
from model import RecurrentMix, rope
from recursive import LoopLinear, LoopLocalAttention, generate_exit, load_recursive, unique_params

OUT = os.path.join(MODELS, "recursive")


class _Export:
    """How LoopLinear runs while a graph is traced (see `export_forms`): `loop` (a Python int) when
    every row is at one loop (prefill, decode), else `onehot` [B, 1, L] and `mask` [B, 1, L * r] of
    the rows' loops (the one-loop graph)."""
    active = False
    loop = None
    onehot = None
    mask = None


EXPORT = _Export()


def _export_forward(self, x, loop):
    """LoopLinear in the exported graphs. Every row at one loop: one matrix, W + B_l A_l merged ahead
    of time. Rows at their own loops: x M_0^T + ((x A^T) * mask) B^T, with M_0 = W + B_0 A_0 (loop 0's
    merged weight, so the graphs store only the merged weights) and every loop's A and B stacked,
    B's block 0 negated: a row at loop l > 0 adds B_l A_l - B_0 A_0, a row at loop 0 adds nothing.
    Plain matrix products instead of a per-row gather of LoRA matrices and batched products (fewer,
    larger operators: cheaper on a CPU)."""
    if not EXPORT.active:
        return _LOOP_LINEAR_FORWARD(self, x, loop)
    if EXPORT.loop is not None:
        y = x @ getattr(self, f"merged_{EXPORT.loop}").t()
        return y + self.bias[EXPORT.loop] if self.bias is not None else y
    y = x @ self.merged_0.t() + ((x @ self.lora_a_all.t()) * EXPORT.mask) @ self.lora_b_all.t()
    return y + EXPORT.onehot @ self.bias if self.bias is not None else y


_LOOP_LINEAR_FORWARD = LoopLinear.forward


def prepare_export_forms(m):
    """Buffers for `_export_forward`: the merged per-loop weights and the stacked LoRA factors."""
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, LoopLinear):
                L, r, d_in = mod.lora_a.shape
                for l in range(L):
                    mod.register_buffer(f"merged_{l}", (mod.weight + mod.lora_b[l] @ mod.lora_a[l]).clone())
                mod.register_buffer("lora_a_all", mod.lora_a.reshape(L * r, d_in).clone())
                # Block 0 holds -B_0: loop 0's merged weight minus B_0 A_0 is the shared W (see rows_at_loops).
                mod.register_buffer("lora_b_all", torch.cat([-mod.lora_b[0]] + [mod.lora_b[l] for l in range(1, L)], 1).clone())
    LoopLinear.forward = _export_forward


def rows_at_loops(cfg, loop):
    """EXPORT's one-hot and LoRA mask for rows at loops `loop` [B]."""
    L, r = cfg["loops"], cfg["lora_rank"]
    onehot = (loop.view(-1, 1) == torch.arange(L).view(1, -1)).float()  # [B, L]
    EXPORT.onehot = onehot.unsqueeze(1)
    later = (loop.view(-1, 1) > 0).float()  # rows past loop 0 also take block 0 (-B_0 A_0)
    blocks = torch.cat([later, onehot[:, 1:]], 1)
    EXPORT.mask = blocks.unsqueeze(-1).expand(-1, -1, r).reshape(-1, 1, L * r)


def block_state(cfg):
    """(suffix kind, name part, shape) per state tensor of one loop, in graph order."""
    d, out = cfg["d_model"], []
    for b, kind in enumerate(cfg["group"]):
        if kind == "recurrent":
            out += [("conv", f"{b}", ["batch", cfg["conv_width"] - 1, d]), ("recurrent", f"{b}", ["batch", d])]
        else:
            hd = d // cfg["heads"]
            for part in ("key", "value"):
                out.append((part, f"{b}", ["batch", cfg["kv_heads"], cfg["window"], hd]))
            out.append(("positions", f"{b}", ["batch", cfg["window"]]))
    return out


def names(kind, idx, loop=None):
    """past/present names of one state tensor; with `loop`, the name carries it (prefill, decode)."""
    at = idx if loop is None else f"{loop}.{idx}"
    if kind in ("conv", "recurrent"):
        return f"past_{kind}.{at}", f"present_{kind}.{at}"
    return f"past_key_values.{at}.{kind}", f"present.{at}.{kind}"


def all_state(cfg):
    """(past, present, shape) for every loop's state, loop-major: what prefill writes and decode reads."""
    return [names(k, i, l) + (s,) for l in range(cfg["loops"]) for k, i, s in block_state(cfg)]


def loop_state(cfg):
    """(past, present, shape) of the one-loop graph's state (the state of each row's own loop)."""
    return [names(k, i) + (s,) for k, i, s in block_state(cfg)]


def flat(states):
    return [t for s in states for t in s]


def nest(cfg, tensors):
    """Flat tensors of one loop -> per block tuples (2 for recurrent, 3 for attention)."""
    out, i = [], 0
    for kind in cfg["group"]:
        n = 2 if kind == "recurrent" else 3
        out.append(tuple(tensors[i:i + n]))
        i += n
    return out


class Prefill(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, position_ids):
        x = self.m.embed_ids(input_ids)
        states = []
        for l in range(self.m.cfg["loops"]):
            loop = torch.zeros_like(input_ids[:, 0]) + l
            EXPORT.loop = l
            x, s = self.m.run_loop(x, position_ids, loop)
            states += flat(s)
        EXPORT.loop = None
        return (self.m.exit_logits(x, loop), *states)


class Decode(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, position_ids, *past):
        cfg, k = self.m.cfg, len(block_state(self.m.cfg))
        x = self.m.embed_ids(input_ids)
        new = []
        for l in range(cfg["loops"]):
            loop = torch.zeros_like(input_ids[:, 0]) + l
            EXPORT.loop = l
            for blk, s in zip(self.m.group, nest(cfg, list(past[l * k:(l + 1) * k]))):
                x, s = blk.step(x, position_ids, loop, s)
                new += list(s)
        EXPORT.loop = None
        return (self.m.exit_logits(x, loop), *new)


def copy_block(blk, h, pos, loop, state):
    """The state `blk.mix.step(blk.norm1(h, loop), pos, loop, state)` writes, computing only what writes it
    (RecursiveLM.copy_state without the gate, query, attention, output and MLP it throws away)."""
    x, mix = blk.norm1(h, loop), blk.mix
    if isinstance(mix, LoopLocalAttention):
        pk, pv, slots = state
        B = x.shape[0]
        k = rope(mix.k(x, loop).view(B, 1, mix.kvh, mix.hd).transpose(1, 2), pos.float(), mix.inv_freq)
        v = mix.v(x, loop).view(B, 1, mix.kvh, mix.hd).transpose(1, 2)
        return (torch.cat([pk[:, :, 1:], k], dim=2), torch.cat([pv[:, :, 1:], v], dim=2),
                torch.cat([slots[:, 1:], pos.float()], dim=1))
    conv_state, hr = state
    window = torch.cat([conv_state, mix.x_in(x, loop)], dim=1)
    conv = mix.conv_b[loop].unsqueeze(1) + (window * mix.conv_w[loop]).sum(1, keepdim=True)
    a, b = mix.gates(conv, loop)
    return (window[:, 1:], a[:, 0] * hr + b[:, 0])


class Copy(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, hidden, loop, position_ids, *past):
        rows_at_loops(self.m.cfg, loop)
        new = []
        for blk, s in zip(self.m.group, nest(self.m.cfg, list(past))):
            new += list(copy_block(blk, hidden, position_ids, loop, s))
        return tuple(new)


class Loop(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, hidden, loop, position_ids, *past):
        rows_at_loops(self.m.cfg, loop)
        first = (loop == 0).view(-1, 1, 1)
        x = torch.where(first, self.m.embed_ids(input_ids), hidden)
        h, logits, new = self.m.loop_step(x, position_ids, loop, nest(self.m.cfg, list(past)))
        return (h, logits, *flat(new))


def graph_io(cfg, graph):
    V, D = cfg["vocab_size"], cfg["d_model"]
    if graph == "prefill":
        ins = [("input_ids", ["batch", "sequence"]), ("position_ids", ["batch", "sequence"])]
        outs = [("logits", ["batch", "sequence", V])] + [(q, s) for _, q, s in all_state(cfg)]
    elif graph == "decode":
        ins = [("input_ids", ["batch", 1]), ("position_ids", ["batch", 1])] + [(p, s) for p, _, s in all_state(cfg)]
        outs = [("logits", ["batch", 1, V])] + [(q, s) for _, q, s in all_state(cfg)]
    elif graph == "copy":
        ins = [("hidden", ["batch", 1, D]), ("loop", ["batch"]), ("position_ids", ["batch", 1])] + [(p, s) for p, _, s in loop_state(cfg)]
        outs = [(q, s) for _, q, s in loop_state(cfg)]
    else:
        ins = [("input_ids", ["batch", 1]), ("hidden", ["batch", 1, D]), ("loop", ["batch"]),
               ("position_ids", ["batch", 1])] + [(p, s) for p, _, s in loop_state(cfg)]
        outs = [("hidden_out", ["batch", 1, D]), ("logits", ["batch", 1, V])] + [(q, s) for _, q, s in loop_state(cfg)]
    return ins, outs


def export_graph(module, args, cfg, graph, path):
    inputs, outputs = graph_io(cfg, graph)
    axes = {n: {k: s for k, s in enumerate(shape) if isinstance(s, str)} for n, shape in inputs + outputs}
    EXPORT.active = True
    try:
        torch.onnx.export(module, args, path, input_names=[n for n, _ in inputs], output_names=[n for n, _ in outputs],
                          dynamic_axes={n: a for n, a in axes.items() if a}, opset_version=OPSET, do_constant_folding=True)
    finally:
        EXPORT.active = False
    declare_shapes(path, inputs + outputs)
    ints = ("input_ids", "position_ids", "loop")
    return {"file": os.path.basename(path),
            "inputs": [{"name": n, "shape": s, "dtype": "int64" if n in ints else "float32"} for n, s in inputs],
            "outputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in outputs]}


def share_weights(paths, out_dir, file="weights.bin", min_bytes=1024):
    """The graphs hold the same weights: store every initializer of at least `min_bytes` once,
    in one external data file that all graphs point into (ONNX external data, offsets 64-aligned)."""
    data, where = bytearray(), {}
    for path in paths:
        model = onnx.load(path)
        for init in model.graph.initializer:
            raw = numpy_helper.to_array(init).tobytes()
            if len(raw) < min_bytes:
                continue
            key = hashlib.sha256(raw + bytes(str((init.data_type, list(init.dims))), "utf8")).hexdigest()
            if key not in where:
                data.extend(b"\0" * (-len(data) % 64))
                where[key] = len(data)
                data.extend(raw)
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init), init.name))  # raw_data form
            external_data_helper.set_external_data(init, file, offset=where[key], length=len(raw))
            init.ClearField("raw_data")
            init.data_location = onnx.TensorProto.EXTERNAL
        onnx.save(model, path)
    with open(os.path.join(out_dir, file), "wb") as f:
        f.write(data)
    for path in paths:
        onnx.checker.check_model(path)
    return {"file": file, "bytes": len(data)}


def golden_prompt():
    return [TOK.bos_id] + TOK.encode(policy_prompt(GOLDEN_PROMPT))


@torch.no_grad()
def greedy_exit(m, threshold, n=GOLDEN_TOKENS, copy=True):
    """generate_exit's algorithm (skipped="copy") for the golden prompt, one row, greedy, decoding on past
    <eos>: the token ids, the loops each token's logits came from, and the state copies after each token.
    copy=False: skipped loops keep their state (skipped="none"), for comparison."""
    prompt = golden_prompt()
    L = m.cfg["loops"]
    logits, states = m(torch.tensor([prompt]), torch.arange(len(prompt)).unsqueeze(0))
    last, loops = logits[-1][:, -1], L
    out, from_loop, copies = [], [], []
    for t in range(n):
        nxt = last.argmax(-1, keepdim=True)
        out.append(int(nxt))
        from_loop.append(loops)
        p = torch.tensor([[len(prompt) + t]])
        x = m.embed_ids(nxt)
        for l in range(L):
            loop = torch.full((1,), l, dtype=torch.long)
            x, lg, states[l] = m.loop_step(x, p, loop, states[l])
            if l == L - 1 or (threshold is not None and torch.softmax(lg[:, 0], -1).max() >= threshold):
                last, loops = lg[:, 0], l + 1
                # The state copy: every loop the token skips updates its state from its exit hidden state.
                for later in range(l + 1, L) if copy else ():
                    states[later] = m.copy_state(x, p, torch.full((1,), later, dtype=torch.long), states[later])
                copies.append(L - 1 - l if copy else 0)
                break
    return out, from_loop, copies


def cases(m, files):
    """Check cases: prefill (random left-padded batch, golden prompt), decode from prefill states and
    from random states, and loop at mixed loops with random and model-made states."""
    cfg = m.cfg
    torch.manual_seed(1)
    L, K, D = cfg["loops"], len(block_state(cfg)), cfg["d_model"]
    present = [q for _, q, _ in all_state(cfg)]
    lpast, lpresent = [p for p, _, _ in loop_state(cfg)], [q for _, q, _ in loop_state(cfg)]
    out = []
    ids = torch.randint(4, cfg["vocab_size"], (3, 23))
    pos = torch.arange(23).repeat(3, 1)
    pos[1, :4] = -1
    pos[1, 4:] = torch.arange(19)
    g = torch.tensor([golden_prompt()])
    with torch.no_grad():
        for tag, x, p in [("random", ids, pos), ("golden", g, torch.arange(g.shape[1]).unsqueeze(0))]:
            res = Prefill(m)(x, p)
            out.append({"name": f"prefill/{tag}", "file": files["prefill"],
                        "inputs": {"input_ids": tensor_case(x), "position_ids": tensor_case(p)},
                        "expected": {"logits": res[0].reshape(-1).tolist(),
                                     **{n: t.reshape(-1).tolist() for n, t in zip(present, res[1:])}}})
            st = list(res[1:])
            nxt = res[0][:, -1].argmax(-1, keepdim=True)
            npos = p[:, -1:] + 1
            for stag, past in [("prefilled", st), ("random", [torch.randn_like(s) if "positions" not in n else s
                                                               for n, s in zip(present, st)])]:
                dres = Decode(m)(nxt, npos, *past)
                inputs = {"input_ids": tensor_case(nxt), "position_ids": tensor_case(npos)}
                inputs.update({pn: tensor_case(t) for (pn, _, _), t in zip(all_state(cfg), past)})
                out.append({"name": f"decode/{tag}/{stag}", "file": files["decode"], "inputs": inputs,
                            "expected": {"logits": dres[0].reshape(-1).tolist(),
                                         **{n: t.reshape(-1).tolist() for n, t in zip(present, dres[1:])}}})
                # one loop: each row at its own loop with that loop's state, hidden random for rows past loop 0
                B = nxt.shape[0]
                loop = torch.tensor([l % L for l in range(B)]) if B > 1 else torch.tensor([1])
                hidden = torch.randn(B, 1, D)
                lst = [torch.stack([past[int(loop[b]) * K + k][b] for b in range(B)]) for k in range(K)]
                lres = Loop(m)(nxt, hidden, loop, npos, *lst)
                inputs = {"input_ids": tensor_case(nxt), "hidden": tensor_case(hidden), "loop": tensor_case(loop),
                          "position_ids": tensor_case(npos), **{n: tensor_case(t) for n, t in zip(lpast, lst)}}
                out.append({"name": f"loop/{tag}/{stag}", "file": files["loop"], "inputs": inputs,
                            "expected": {"hidden_out": lres[0].reshape(-1).tolist(), "logits": lres[1].reshape(-1).tolist(),
                                         **{n: t.reshape(-1).tolist() for n, t in zip(lpresent, lres[2:])}}})
                # the state copy, checked against RecursiveLM.copy_state (the graph computes only its state parts)
                want = [flat(m.copy_state(hidden[b:b + 1], npos[b:b + 1], loop[b:b + 1], nest(cfg, [t[b:b + 1] for t in lst])))
                        for b in range(B)]
                want = [torch.cat([want[b][k] for b in range(B)]) for k in range(K)]
                cres = Copy(m)(hidden, loop, npos, *lst)
                for w, c in zip(want, cres):
                    assert torch.allclose(w, c, atol=1e-5), "copy_block differs from RecursiveLM.copy_state"
                inputs = {"hidden": tensor_case(hidden), "loop": tensor_case(loop), "position_ids": tensor_case(npos),
                          **{n: tensor_case(t) for n, t in zip(lpast, lst)}}
                out.append({"name": f"copy/{tag}/{stag}", "file": files["copy"], "inputs": inputs,
                            "expected": {n: t.reshape(-1).tolist() for n, t in zip(lpresent, want)}})
    return out


def flops_per_loop_token(m):
    """2 x the weights one token multiplies by in one loop: the shared group's matrices, one loop's
    LoRA (A and B), the per-loop biases, and the exit head (the tied embedding, read at every loop)."""
    n = 0
    for mod in m.group.modules():
        if isinstance(mod, LoopLinear):
            n += mod.weight.numel() + mod.lora_a[0].numel() + mod.lora_b[0].numel()
            n += mod.bias[0].numel() if mod.bias is not None else 0
    return 2 * (n + m.embed.weight.numel())


def flops_per_copy_token(m):
    """2 x the weights one skipped loop's state copy multiplies a token by: per recurrent block x_in,
    w_a and w_i, per attention block k and v (shared weight, one loop's LoRA, biases)."""
    n = 0
    for blk in m.group:
        mix = blk.mix
        for lin in ([mix.k, mix.v] if isinstance(mix, LoopLocalAttention) else [mix.x_in, mix.w_a, mix.w_i]):
            n += lin.weight.numel() + lin.lora_a[0].numel() + lin.lora_b[0].numel()
            n += lin.bias[0].numel() if lin.bias is not None else 0
    return 2 * n


def state_bytes(cfg):
    per = 0
    for _, _, s in all_state(cfg):
        n = 4
        for d in s[1:]:
            n *= d
        per += n
    return per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="recursive2")
    ap.add_argument("--threshold", type=float, default=0.9, help="the shipped (default) exit threshold")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    m, ck = load_recursive(args.checkpoint)
    m = m.cpu().eval()
    prepare_export_forms(m)
    cfg = m.cfg
    os.makedirs(OUT, exist_ok=True)
    shutil.copy(os.path.join(MODELS, "policy", "tokenizer.json"), os.path.join(OUT, "tokenizer.json"))
    B, T = 2, 5
    ids, pos = torch.zeros(B, T, dtype=torch.long), torch.arange(T).repeat(B, 1)
    with torch.no_grad():
        st = list(Prefill(m)(ids, pos)[1:])
    K = len(block_state(cfg))
    paths = {g: os.path.join(OUT, f"{g}.onnx") for g in ("prefill", "decode", "loop", "copy")}
    loop = torch.tensor([0, 1])
    graphs = {
        "prefill": export_graph(Prefill(m), (ids, pos), cfg, "prefill", paths["prefill"]),
        "decode": export_graph(Decode(m), (ids[:, :1], pos[:, :1] + T, *st), cfg, "decode", paths["decode"]),
        "loop": export_graph(Loop(m), (ids[:, :1], torch.randn(B, 1, cfg["d_model"]), loop, pos[:, :1] + T,
                                       *[torch.stack([st[int(loop[b]) * K + k][b] for b in range(B)]) for k in range(K)]),
                             cfg, "loop", paths["loop"]),
        "copy": export_graph(Copy(m), (torch.randn(B, 1, cfg["d_model"]), loop, pos[:, :1] + T,
                                       *[torch.stack([st[int(loop[b]) * K + k][b] for b in range(B)]) for k in range(K)]),
                             cfg, "copy", paths["copy"]),
    }
    weights = share_weights(list(paths.values()), OUT)
    diffs = ort_check(cases(m, paths))
    worst = max(v for d in diffs.values() for v in d.values())
    print(f"{OUT}: max |onnx - torch| over every output {worst:.2e}")
    if worst >= TOLERANCE:
        raise SystemExit(f"ONNX check failed: {json.dumps(diffs)}")

    # Golden: greedy with exits off and at the shipped threshold, cross-checked against generate_exit.
    runs = {}
    for tag, thr in [("off", None), ("exit", args.threshold)]:
        toks, from_loop, copies = greedy_exit(m, thr)
        # Skipped loops get the state copy: what the runtime implements (copy.onnx).
        text, loops_run, copied, fed = generate_exit(m, [policy_prompt(GOLDEN_PROMPT)], threshold=thr, max_new=GOLDEN_TOKENS,
                                                     batch_size=1, skipped="copy")
        upto = toks[:toks.index(TOK.eos_id)] if TOK.eos_id in toks else toks
        assert TOK.decode(upto) == text[0], (tag, TOK.decode(upto), text[0])
        if TOK.eos_id not in toks:
            assert sum(copies) == copied, (tag, sum(copies), copied)
        runs[tag] = (toks, from_loop, loops_run, fed, copies)
    off, ex = runs["off"], runs["exit"]
    nocopy = greedy_exit(m, args.threshold, copy=False)[0]
    golden = {
        "prompt": GOLDEN_PROMPT, "prompt_text": "<bos>" + policy_prompt(GOLDEN_PROMPT), "prompt_ids": golden_prompt(),
        "greedy_ids": off[0], "greedy_text": TOK.decode(off[0]),
        "exit_threshold": args.threshold, "exit_greedy_ids": ex[0], "exit_greedy_text": TOK.decode(ex[0]),
        "exit_token_loops": ex[1],
        "exit_token_copies": ex[4],
        "exit_nocopy_greedy_ids": nocopy, "exit_nocopy_greedy_text": TOK.decode(nocopy),
        "exit_mean_loops_per_token": sum(ex[1]) / len(ex[1]),
        "exit_mean_loops_per_fed_token": ex[2] / max(ex[3], 1),
        "note": (f"{GOLDEN_TOKENS} greedy tokens (argmax) after prefill, decoding on past <eos> if it appears, by "
                 "recursive.py's early-exit decoding (generate_exit's algorithm): greedy_ids with every loop run, "
                 "exit_greedy_ids with a token leaving after the first loop whose exit head's max softmax probability "
                 "reaches exit_threshold; exit_token_loops[i] = loops run to produce token i's logits (the first "
                 "token comes from the prefill, which runs every loop); exit_token_copies[i] = state copies made "
                 "after token i was fed (the loops it skipped; generate_exit's skipped='copy'); exit_nocopy_greedy_ids: "
                 "the same early exit with skipped loops keeping their state (no copy), for comparison; "
                 "exit_mean_loops_per_fed_token is generate_exit's loops run / tokens fed up to <eos>"),
    }
    write_json(os.path.join(OUT, "golden.json"), golden)
    n_rec = unique_params(m)
    n_src = (ck.get("stats") or {}).get("source_parameters") or json.load(
        open(os.path.join(MODELS, "policy", "config.json")))["parameters"]
    config = {
        "name": "deliberate-recursive-griffin",
        "description": ("Relaxed recursive Griffin (Bae et al. 2024) made from the embedded policy: one shared group "
                        "[recurrent, recurrent, local attention] run `loops` times with a rank-r LoRA per loop and an "
                        "exit head after every loop (early exit)"),
        "architecture": cfg,
        "parameters": n_rec,
        "source_model": {"name": "deliberate-griffin-policy", "parameters": n_src,
                         "unique_parameters_fewer": round(1 - n_rec / n_src, 4)},
        "tokenizer": tokenizer_info(), "prompt_format": PROMPT_FORMAT, "step_delimiter": STEP_DELIMITER,
        "bos_token_id": TOK.bos_id, "eos_token_id": TOK.eos_id, "pad_token_id": TOK.pad_id,
        "padding": "batch prompts are left-padded; padding tokens get position_id -1 and never change the state "
                   "nor get attended to; real tokens count positions from 0",
        "state": [{"past": p, "present": q, "shape": s, "dtype": "float32"} for p, q, s in all_state(cfg)],
        "state_bytes_per_sequence": state_bytes(cfg),
        "state_layout": ("per loop l and block b of the group: conv.{l}.{b} = last conv_width-1 inputs of the Conv1D; "
                         "recurrent.{l}.{b} = RG-LRU state; key/value.{l}.{b} = the last `window` keys/values this loop "
                         "saw, with positions.{l}.{b} the position of each slot (-1 = empty). A token that exits after "
                         "loop l updates every later loop's state by the state copy (copy.onnx: each block of that "
                         "loop writes its conv input, recurrence step and attention slot from the exit hidden state); "
                         "attention masks slots that are empty or `window` or more positions back"),
        "recursion": {
            "loops": cfg["loops"], "lora_rank": cfg["lora_rank"], "hidden_size": cfg["d_model"],
            "loop_graph": "loop",
            "copy_graph": "copy",
            "loop_state": [{"past": p, "present": q, "shape": s, "dtype": "float32"} for p, q, s in loop_state(cfg)],
            "loop_state_order": "state entry l * len(loop_state) + k is loop l's tensor k",
            "exit": {"confidence": "max softmax probability (temperature 1) of the exit head's logits after a loop",
                     "rule": "a token leaves after the first loop whose confidence >= threshold; the last loop always ends it",
                     "default_threshold": args.threshold,
                     "skipped": "copy",
                     "skipped_note": ("a token that exits after loop l runs copy.onnx for every later loop: that loop's "
                                      "state updated from the token's hidden_out at loop l (the state copy of Bae et al.)")},
            "flops_per_loop_token": flops_per_loop_token(m),
            "flops_per_copy_token": flops_per_copy_token(m),
            "flops_note": "2 x (shared group matrices + one loop's LoRA and biases + the exit head's tied embedding) "
                          "per token per loop run; a state copy: 2 x (recurrent blocks' x_in, w_a, w_i + attention "
                          "blocks' k, v, with one loop's LoRA and biases) per token per skipped loop; attention "
                          "scores and elementwise ops not counted",
        },
        "max_prefill_tokens": 2 ** RecurrentMix.MAX_DOUBLINGS,
        "graphs": graphs,
        "weights": dict(weights, note="the graphs' weights, stored once: every graph's large initializers are ONNX "
                                      "external data in this file (onnxruntime finds it beside the graph)"),
        "onnx_check": {"tolerance": TOLERANCE, "max_abs_diff": diffs},
        "checkpoint": args.checkpoint,
        "training": ck.get("stats"),
    }
    write_json(os.path.join(OUT, "config.json"), config)
    print(f"{OUT}: {n_rec} unique parameters ({n_src} in the source), golden off {TOK.decode(off[0])!r}, "
          f"exit@{args.threshold} {TOK.decode(ex[0])!r} mean loops {golden['exit_mean_loops_per_token']:.3f}, "
          f"copies {sum(ex[4])} over {len(ex[4])} tokens")


if __name__ == "__main__":
    main()
