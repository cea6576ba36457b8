"""PyTorch checkpoints read back from the shipped ONNX graphs, for a checkout whose models/train/work/
is empty (the training checkpoints are git-ignored): models/policy/prefill.onnx -> work/rev_gpu_s25.pt
(the second-generation policy; work/policy_rev.pt for the first, by the name in its config.json),
models/prm/prm.onnx -> work/prm.pt and models/prm-columns/prm.onnx -> work/prm_columns.pt, each checked against its golden.json (the policy's 40
greedy tokens, the PRM's per-token scores).

    OMP_NUM_THREADS=1 /usr/bin/python3 models/train/from_onnx.py [--policy-dir DIR]

(--policy-dir: another exported policy, e.g. an earlier one taken out of git, instead of models/policy.)

Constant folding at export turned each Linear weight into a MatMul initializer (transposed), each
depthwise-conv tap into a Mul, and -lambda into the Softplus input; the node names say which module
each belongs to.
"""
import argparse
import json
import os
import re

import onnx
import torch
from onnx import numpy_helper

from data import TOK
from generate import generate
from model import LM, POLICY_ARCH, PRM
from prm import batch_prm, positions
from render import prm_example
from train import WORK, cpu_state

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
# the training checkpoint each exported policy came from, by its config.json name
CHECKPOINTS = {"deliberate-griffin-policy": "policy_rev", "deliberate-griffin-policy-2": "rev_gpu_s25",
               "deliberate-griffin-policy-3": "rev_keep4", "deliberate-griffin-policy-4": "rev_keep6"}
CONV = {"Mul_7": 0, "Mul_8": 1, "Mul_9": 2, "Mul_10": 3}


def state_from_onnx(path, prefix):
    m = onnx.load(path)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    state, conv = {}, {}
    for name, arr in inits.items():
        if not name.startswith("onnx::"):
            state[name[len(prefix):]] = torch.tensor(arr)
    for node in m.graph.node:
        ws = [x for x in node.input if x.startswith("onnx::") and x in inits]
        if not ws:
            continue
        w = torch.tensor(inits[ws[0]])
        parts = node.name.strip("/").split("/")[1:]  # drop the wrapper (lm / prm)
        mod = ".".join(parts[:-1])
        if not mod:  # the output layer: the tied embedding, already read by name
            continue
        if node.op_type == "MatMul":
            key = ("lm." + mod if not mod.startswith("head") else mod) + ".weight"
            state[key] = w.t().contiguous()
        elif node.op_type == "Softplus":
            state["lm." + mod + ".lam"] = -w
        elif node.op_type == "Mul" and parts[-1] in CONV:
            conv.setdefault("lm." + mod + ".conv_w", {})[CONV[parts[-1]]] = w
        else:
            raise SystemExit(f"unmapped initializer {ws[0]} of node {node.name}")
    for key, taps in conv.items():
        state[key] = torch.stack([taps[j] for j in range(len(taps))])
    return state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy-dir", default=os.path.join(MODELS, "policy"), help="the exported policy to read back")
    policy_dir = ap.parse_args().policy_dir
    torch.set_num_threads(1)
    os.makedirs(WORK, exist_ok=True)
    cfg = json.load(open(os.path.join(policy_dir, "config.json")))
    arch = dict(POLICY_ARCH, vocab_size=len(TOK))
    lm = LM(arch)
    state = {k[len("lm."):]: v for k, v in state_from_onnx(os.path.join(policy_dir, "prefill.onnx"), "").items()}
    missing = lm.load_state_dict(state, strict=False)
    assert not missing.missing_keys and not missing.unexpected_keys, missing
    golden = json.load(open(os.path.join(policy_dir, "golden.json")))
    out = generate(lm, [golden["prompt"] + "\n\n"], temperature=0.0, max_new=len(golden["greedy_ids"]))
    want = TOK.decode(golden["greedy_ids"])
    print("policy greedy:", repr(out[0][:len(want)]), "golden:", repr(want))
    assert out[0][:len(want)] == want.split(TOK.itos[TOK.eos_id])[0][:len(out[0])], "policy does not match golden.json"
    # the interleaved reviser's config declares its layout as an object (export.py), the flat one as a template string
    layout = "interleaved" if isinstance(cfg["prompt_format"]["revision"], dict) else "flat"
    torch.save(dict(cfg=arch, state=cpu_state(lm), source=os.path.join(policy_dir, "prefill.onnx"), revision_layout=layout),
               os.path.join(WORK, CHECKPOINTS[cfg["name"]] + ".pt"))

    for directory, name in [("prm", "prm"), ("prm-columns", "prm_columns")]:
        prm, mode = read_prm(directory, arch)
        torch.save(dict(cfg=arch, state=cpu_state(prm), source=f"models/{directory}/prm.onnx", render=mode),
                   os.path.join(WORK, name + ".pt"))


@torch.no_grad()
def read_prm(directory, arch):
    """models/DIRECTORY/prm.onnx as a PRM, checked against its golden.json's step scores, and the
    rendering its config.json names."""
    prm = PRM(LM(arch))
    r = prm.load_state_dict(state_from_onnx(os.path.join(MODELS, directory, "prm.onnx"), "prm."), strict=False)
    assert not r.missing_keys and not r.unexpected_keys, r
    prm.eval()
    mode = json.load(open(os.path.join(MODELS, directory, "config.json"))).get("rendering", "ordinary")
    for e in json.load(open(os.path.join(MODELS, directory, "golden.json")))["examples"]:
        ids, ends = prm_example(e["problem"], e["solution"], mode)
        assert ids == e["input_ids"], f"{directory}: the rendering does not give golden.json's input ids"
        ids, mask = batch_prm([(ids, ends)])
        got = torch.sigmoid(prm(ids, positions(mask)))[0, ends].tolist()
        print(f"{directory} step scores:", [round(v, 4) for v in got], "golden:", [round(v, 4) for v in e["step_scores"]])
        assert max(abs(a - b) for a, b in zip(got, e["step_scores"])) < 1e-4, f"{directory} does not match golden.json"
    return prm, mode

if __name__ == "__main__":
    main()
