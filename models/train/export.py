"""Export the policy, the baseline and the PRM to ONNX with config.json, tokenizer.json and
golden.json per model directory; check every graph against PyTorch through onnxruntime-node.

    /usr/bin/python3 models/train/export.py --parts policy --policy rev_gpu_s25   # the shipped policy (second generation)
    /usr/bin/python3 models/train/export.py --parts policy --policy policy_rev --policy-name deliberate-griffin-policy   # the first

The policy's config.json declares the revision layout its checkpoint was trained on (prompt_format.revision:
the flat template string, or the interleaved layout's object).
"""
import argparse
import json
import os
import subprocess

import onnx
import torch
import torch.nn as nn

from data import PROMPT_FORMAT, STEP_DELIMITER, TOK, policy_prompt, prompt_format
from model import RecurrentMix, n_params
from prm import load_prm, positions
import render
from train import WORK, load_lm

MODELS = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OPSET = 17
TOLERANCE = 1e-4
GOLDEN_PROMPT = "Compute (17 + 5) * 3 - 8."
GOLDEN_TOKENS = 40
GOLDEN_PRM = [
    ("Compute (17 + 5) * 3 - 8.", "17 + 5 = 22\n\n22 * 3 = 66\n\n66 - 8 = 58\n\nThe answer is \\boxed{58}"),
    ("Compute (17 + 5) * 3 - 8.", "17 + 5 = 22\n\n22 * 3 = 68\n\n68 - 8 = 60\n\nThe answer is \\boxed{60}"),
    ("Solve for x: 4x - 3 = 2x - 5.", "4x - 2x = -5 + 3\n\n2x = -2\n\nx = -2 / 2 = -1\n\nThe answer is \\boxed{-1}"),
    # a number copied wrong (401 as 410): every step true, the answer wrong
    ("Compute 861 * 8 - 681 + 406 + 401.",
     "861 * 8 = 6888\n\n6888 - 681 = 6207\n\n6207 + 406 = 6613\n\n6613 + 410 = 7023\n\nThe answer is \\boxed{7023}"),
]


def state_names(cfg):
    """(past name, present name, shape with symbolic dims) per state tensor, in graph order."""
    d, out = cfg["d_model"], []
    for i, kind in enumerate(cfg["block_types"]):
        if kind == "recurrent":
            out += [(f"past_conv.{i}", f"present_conv.{i}", ["batch", cfg["conv_width"] - 1, d]),
                    (f"past_recurrent.{i}", f"present_recurrent.{i}", ["batch", d])]
        else:
            hd = d // cfg["heads"]
            length = cfg["window"] if kind == "local_attention" else "past_sequence"
            for kv in ("key", "value"):
                out.append((f"past_key_values.{i}.{kv}", f"present.{i}.{kv}", ["batch", cfg["kv_heads"], length, hd]))
    return out


def flat(states):
    return [t for s in states for t in s]


def nest(flat_states):
    return [tuple(flat_states[i:i + 2]) for i in range(0, len(flat_states), 2)]


class Prefill(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, position_ids):
        logits, states = self.lm(input_ids, position_ids)
        return (logits, *flat(states))


class Decode(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, position_ids, *past):
        logits, states = self.lm.step(input_ids, position_ids, nest(list(past)))
        return (logits, *flat(states))


class Scores(nn.Module):
    def __init__(self, prm):
        super().__init__()
        self.prm = prm

    def forward(self, input_ids, attention_mask):
        return torch.sigmoid(self.prm(input_ids, positions(attention_mask)))


def graph_io(cfg, graph):
    """Inputs and outputs (name, shape) of the prefill or decode graph."""
    V, names = cfg["vocab_size"], state_names(cfg)

    def present_shape(shape):
        if "past_sequence" not in shape:
            return shape
        return [("sequence" if graph == "prefill" else "past_sequence + 1") if s == "past_sequence" else s
                for s in shape]

    T = "sequence" if graph == "prefill" else 1
    inputs = [("input_ids", ["batch", T]), ("position_ids", ["batch", T])]
    if graph == "decode":
        inputs += [(p, shape) for p, _, shape in names]
    outputs = [("logits", ["batch", T, V])] + [(q, present_shape(shape)) for _, q, shape in names]
    return inputs, outputs


def declare_shapes(path, ios):
    """Write the documented shapes (ints and symbolic names) onto the graph's inputs and outputs;
    the exporter leaves names like `Reshapepresent.0.key_dim_1` on outputs."""
    model = onnx.load(path)
    shapes = dict(ios)
    for vi in list(model.graph.input) + list(model.graph.output):
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for s in shapes[vi.name]:
                d = dims.add()
                if isinstance(s, str):
                    d.dim_param = s
                else:
                    d.dim_value = s
    onnx.checker.check_model(model)
    onnx.save(model, path)


def export_graph(module, args, cfg, graph, path):
    inputs, outputs = graph_io(cfg, graph)
    axes = {}
    for name, shape in inputs + outputs:
        dyn = {k: s for k, s in enumerate(shape) if isinstance(s, str)}
        if dyn:
            axes[name] = dyn
    torch.onnx.export(module, args, path, input_names=[n for n, _ in inputs], output_names=[n for n, _ in outputs],
                      dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True)
    declare_shapes(path, inputs + outputs)
    return {"file": os.path.basename(path),
            "inputs": [{"name": n, "shape": s, "dtype": "int64" if n.endswith("_ids") else "float32"}
                       for n, s in inputs],
            "outputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in outputs]}


def ort_check(cases):
    """Run cases [{file, inputs: {name: {data, dims, type}}, expected: {name: flat list}}] through
    onnxruntime-node; returns the max abs difference per case and output."""
    path = os.path.abspath(os.path.join(WORK, "ort_cases.json"))
    with open(path, "w") as f:
        json.dump(cases, f)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_check.mjs")
    res = subprocess.run(["node", script, path], check=True, capture_output=True, text=True, cwd=MODELS)
    return json.loads(res.stdout)


def tensor_case(t):
    return {"data": t.reshape(-1).tolist(), "dims": list(t.shape), "type": "int64" if t.dtype == torch.long else "float32"}


def greedy_golden(lm):
    prompt = [TOK.bos_id] + TOK.encode(policy_prompt(GOLDEN_PROMPT))
    ids = torch.tensor([prompt])
    pos = torch.arange(len(prompt)).unsqueeze(0)
    with torch.no_grad():
        logits, state = lm(ids, pos)
        out = []
        for t in range(GOLDEN_TOKENS):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            out.append(int(nxt))
            logits, state = lm.step(nxt, torch.tensor([[len(prompt) + t]]), state)
    return {"prompt": GOLDEN_PROMPT, "prompt_text": "<bos>" + policy_prompt(GOLDEN_PROMPT), "prompt_ids": prompt,
            "greedy_ids": out, "greedy_text": TOK.decode(out),
            "note": f"{GOLDEN_TOKENS} greedy tokens (argmax) after prefill, decoding on past <eos> if it appears"}


def lm_cases(lm, cfg, files):
    """Prefill and decode cases on random inputs (with left padding) and on the golden prompt."""
    torch.manual_seed(1)
    names = [n for _, n, _ in state_names(cfg)]
    cases = []
    with torch.no_grad():
        # random prompts, batch 3, second row left-padded by 4
        ids = torch.randint(4, cfg["vocab_size"], (3, 23))
        pos = torch.arange(23).repeat(3, 1)
        pos[1, :4] = -1
        pos[1, 4:] = torch.arange(19)
        real = ("golden", torch.tensor([[TOK.bos_id] + TOK.encode(policy_prompt(GOLDEN_PROMPT))]))
        for tag, x in [("random", ids), real]:
            p = pos if tag == "random" else torch.arange(x.shape[1]).unsqueeze(0)
            logits, states = lm(x, p)
            st = flat(states)
            cases.append({"name": f"prefill/{tag}", "file": files["prefill"],
                          "inputs": {"input_ids": tensor_case(x), "position_ids": tensor_case(p)},
                          "expected": {"logits": logits.reshape(-1).tolist(),
                                       **{n: t.reshape(-1).tolist() for n, t in zip(names, st)}}})
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            npos = p[:, -1:] + 1
            past = [s.clone() for s in st]
            if tag == "random":  # also random (not model-made) states
                past = [torch.randn_like(s) for s in st]
            logits2, states2 = lm.step(nxt, npos, nest(past))
            inputs = {"input_ids": tensor_case(nxt), "position_ids": tensor_case(npos)}
            inputs.update({pn: tensor_case(t) for (pn, _, _), t in zip(state_names(cfg), past)})
            cases.append({"name": f"decode/{tag}", "file": files["decode"], "inputs": inputs,
                          "expected": {"logits": logits2.reshape(-1).tolist(),
                                       **{n: t.reshape(-1).tolist() for n, t in zip(names, flat(states2))}}})
    return cases


def state_bytes(lm, lengths=(64, 256, 1024)):
    """Decoding-state bytes for one sequence after `length` tokens (fp32)."""
    out = {}
    with torch.no_grad():
        for L in lengths:
            _, states = lm(torch.zeros(1, L, dtype=torch.long), torch.arange(L).unsqueeze(0))
            out[str(L)] = sum(t.numel() * t.element_size() for t in flat(states))
    return out


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def tokenizer_info():
    return {"file": "tokenizer.json", "type": "character-level (BPE with no merges)", "vocab_size": len(TOK),
            "special_ids": TOK.special_ids()}


def export_lm(ckpt, outdir, title, description):
    lm, ck = load_lm(ckpt)
    lm.eval()
    cfg = lm.cfg
    os.makedirs(outdir, exist_ok=True)
    write_json(os.path.join(outdir, "tokenizer.json"), TOK.hf_json())
    B, T = 2, 5
    ids, pos = torch.zeros(B, T, dtype=torch.long), torch.arange(T).repeat(B, 1)
    _, states = lm(ids, pos)
    graphs = {
        "prefill": export_graph(Prefill(lm), (ids, pos), cfg, "prefill", os.path.join(outdir, "prefill.onnx")),
        "decode": export_graph(Decode(lm), (ids[:, :1], pos[:, :1] + T, *flat(states)), cfg, "decode",
                               os.path.join(outdir, "decode.onnx")),
    }
    diffs = ort_check(lm_cases(lm, cfg, {g: os.path.join(outdir, v["file"]) for g, v in graphs.items()}))
    worst = max(d["logits"] for d in diffs.values())
    print(f"{outdir}: max |onnx - torch| on logits {worst:.2e}")
    if worst >= TOLERANCE:
        raise SystemExit(f"ONNX check failed for {outdir}: {json.dumps(diffs)}")
    golden = greedy_golden(lm)
    write_json(os.path.join(outdir, "golden.json"), golden)
    config = {
        "name": title, "description": description, "architecture": cfg, "parameters": n_params(lm),
        "tokenizer": tokenizer_info(), "prompt_format": prompt_format(ck.get("revision_layout", "flat")),
        "step_delimiter": STEP_DELIMITER, "bos_token_id": TOK.bos_id, "eos_token_id": TOK.eos_id,
        "pad_token_id": TOK.pad_id,
        "padding": "batch prompts are left-padded; padding tokens get position_id -1 and never change the "
                   "state nor get attended to; real tokens count positions from 0",
        "state": [{"past": p, "present": q, "shape": s, "dtype": "float32"} for p, q, s in state_names(cfg)],
        "state_bytes_per_sequence": state_bytes(lm),
        "graphs": graphs, "onnx_check": {"tolerance": TOLERANCE, "max_abs_diff": diffs},
        "training": ck.get("stats") or {k: ck.get(k) for k in ("steps", "history", "init", "policy", "dense")},
    }
    if cfg["architecture"] == "griffin":
        config["max_prefill_tokens"] = 2 ** RecurrentMix.MAX_DOUBLINGS
        config["state_layout"] = ("fixed size: conv = last conv_width-1 inputs of the Conv1D; recurrent = RG-LRU "
                                  "hidden state; local attention key/value window slot j holds position "
                                  "p - window + 1 + j (p = newest position), slots at negative positions are "
                                  "masked; decode shifts the window left by one and appends")
    else:
        config["state_layout"] = ("key/value cache grows by one per decoded token; past slot j holds position "
                                  "p - past_sequence + j, slots at negative positions (left padding) are masked")
    write_json(os.path.join(outdir, "config.json"), config)
    config["decode_benchmark"] = decode_benchmark(outdir)
    write_json(os.path.join(outdir, "config.json"), config)
    return config


def decode_benchmark(outdir, steps=1024):
    """Mean ms per decode step over `steps` tokens after a 30-token prompt (onnxruntime-node, 1 thread)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_decode.mjs")
    res = subprocess.run(["node", script, outdir, str(steps)], check=True, capture_output=True, text=True)
    return {"steps": steps, "prompt_tokens": 30, "runtime": "onnxruntime-node CPU, intraOpNumThreads 1",
            "ms_per_step": json.loads(res.stdout)}


def export_prm(outdir, name="prm", rendering=None):
    """Exports work/{name}.pt; a PRM trained on a verifier rendering (its checkpoint's `render`, as
    prm_steps.py writes, or `rendering`) declares it in config.json `rendering`, and its golden
    inputs are rendered."""
    prm, ck = load_prm(name)
    rendering = rendering or ck.get("render") or "ordinary"
    os.makedirs(outdir, exist_ok=True)
    write_json(os.path.join(outdir, "tokenizer.json"), TOK.hf_json())
    model = Scores(prm).eval()
    ids, mask = torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long)
    path = os.path.join(outdir, "prm.onnx")
    torch.onnx.export(model, (ids, mask), path, input_names=["input_ids", "attention_mask"], output_names=["scores"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                    "attention_mask": {0: "batch", 1: "sequence"},
                                    "scores": {0: "batch", 1: "sequence"}},
                      opset_version=OPSET, do_constant_folding=True)
    declare_shapes(path, [(n, ["batch", "sequence"]) for n in ("input_ids", "attention_mask", "scores")])
    exs = [render.prm_example(p, s, rendering) for p, s in GOLDEN_PRM]
    T = max(len(x) for x, _ in exs)
    ids = torch.full((len(exs), T), TOK.pad_id, dtype=torch.long)
    mask = torch.zeros((len(exs), T), dtype=torch.long)
    for b, (x, _) in enumerate(exs):
        ids[b, :len(x)], mask[b, :len(x)] = torch.tensor(x), 1
    with torch.no_grad():
        scores = model(ids, mask)
        rand_ids = torch.randint(4, len(TOK), (3, 31))
        rand_mask = torch.ones_like(rand_ids)
        rand_mask[2, 20:] = 0
        rand_scores = model(rand_ids, rand_mask)
    diffs = ort_check([
        {"name": f"prm/{tag}", "file": path, "inputs": {"input_ids": tensor_case(i), "attention_mask": tensor_case(m)},
         "expected": {"scores": s.reshape(-1).tolist()}}
        for tag, i, m, s in [("golden", ids, mask, scores), ("random", rand_ids, rand_mask, rand_scores)]])
    worst = max(d["scores"] for d in diffs.values())
    print(f"{outdir}: max |onnx - torch| on scores {worst:.2e}")
    if worst >= TOLERANCE:
        raise SystemExit(f"ONNX check failed for {outdir}: {json.dumps(diffs)}")
    golden = {"examples": [{"problem": p, "solution": s, "input_ids": x, "step_end_indices": ends,
                            "scores": scores[b, :len(x)].tolist(), "step_scores": scores[b, ends].tolist()}
                           for b, ((p, s), (x, ends)) in enumerate(zip(GOLDEN_PRM, exs))],
              "note": "batch of both examples, right-padded with attention_mask 0"}
    write_json(os.path.join(outdir, "golden.json"), golden)
    config = {
        "name": "deliberate-griffin-" + os.path.basename(os.path.normpath(outdir)),  # names the verifier in runs
        "description": "Process reward model: the policy's Griffin backbone with a linear head; "
                       "scores[b, t] = P(all steps up to the step ending at token t are correct)"
                       + ("" if rendering == "ordinary" else
                          f"; it reads each step in its own rendering ({rendering}, see rendering)"),
        "architecture": dict(prm.lm.cfg, head="linear(d_model -> 1) + sigmoid on the final RMSNorm output"),
        "parameters": n_params(prm), "tokenizer": tokenizer_info(),
        "prompt_format": PROMPT_FORMAT, "step_delimiter": STEP_DELIMITER, "rendering": rendering,
        "bos_token_id": TOK.bos_id, "pad_token_id": TOK.pad_id,
        "input_format": "<bos> problem \\n\\n step_1 \\n\\n ... step_k (no <eos>); read the score at the last "
                        "token of each step (the token before each \\n\\n, and the final token)",
        "padding": "right-padding with attention_mask 0 (left-padding also works: position ids are derived "
                   "from the mask)",
        "graphs": {"scores": {"file": "prm.onnx",
                              "inputs": [{"name": "input_ids", "shape": ["batch", "sequence"], "dtype": "int64"},
                                         {"name": "attention_mask", "shape": ["batch", "sequence"], "dtype": "int64"}],
                              "outputs": [{"name": "scores", "shape": ["batch", "sequence"], "dtype": "float32"}]}},
        "max_sequence_tokens": 2 ** RecurrentMix.MAX_DOUBLINGS,
        "onnx_check": {"tolerance": TOLERANCE, "max_abs_diff": diffs},
        "training": ck.get("stats") or {k: ck.get(k) for k in ("steps", "history", "init", "policy", "dense")},
    }
    write_json(os.path.join(outdir, "config.json"), config)
    return config


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", default="policy_rev", help="the checkpoint in models/train/work/ exported as models/policy")
    ap.add_argument("--prm", default="prm", help="the checkpoint in models/train/work/ exported as models/prm")
    ap.add_argument("--policy-dir", default="policy", help="the directory under models/ (or an absolute path) the "
                                                           "policy is exported to")
    ap.add_argument("--prm-dir", default="prm", help="the directory under models/ (or an absolute path) the PRM is "
                                                     "exported to")
    ap.add_argument("--policy-name", default="deliberate-griffin-policy-2",
                    help="the policy's name in config.json, which run records and allocation tables carry (the "
                         "first generation, policy_rev, was deliberate-griffin-policy)")
    ap.add_argument("--prm-render", help="the rendering the PRM reads (render.py; default: the one its checkpoint was "
                                         "trained on)")
    ap.add_argument("--parts", default="policy,baseline,prm", help="which of policy, baseline, prm to export")
    args = ap.parse_args()
    torch.set_num_threads(2)
    parts = args.parts.split(",")
    if "policy" in parts:
        export_lm(args.policy, os.path.join(MODELS, args.policy_dir), args.policy_name,
                  "Griffin-style hybrid (RG-LRU recurrence + local attention) policy for the synthetic task")
    if "baseline" in parts:
        export_lm("baseline", os.path.join(MODELS, "baseline"), "deliberate-transformer-baseline",
                  "Transformer baseline of the same size with a KV cache, for memory and speed comparison")
    if "prm" in parts:
        export_prm(os.path.join(MODELS, args.prm_dir), args.prm, args.prm_render)


if __name__ == "__main__":
    main()
