"""Tokenizer, prompt formats, batching, and the bridge to the TypeScript CLI (`data synth`,
`data label`), which is the single source of truth for the task and its grading rules."""
import hashlib
import json
import os
import shutil
import subprocess

import torch

from revision_layout import REVISION_INTERLEAVED, interleaved_segments, masked_ids

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = ["node", os.environ.get("DELIBERATE_CLI", os.path.join(ROOT, "dist", "src", "cli.js"))]
# Training, sampling and scoring run on a CUDA GPU when there is one; export and checks use the CPU.
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = [PAD, BOS, EOS, UNK]
# Every printable ASCII character plus newline: covers the task and leaves spares.
CHARS = ["\n"] + [chr(c) for c in range(32, 127)]
STEP_DELIMITER = "\n\n"

PROMPT_FORMAT = {
    "policy": "<bos>{problem}\n\n",
    "revision": "<bos>{problem}\n\nPrevious attempt: {previous_steps_joined_with ' | '}\n\nRevised solution:\n\n",
    "completion": "steps separated by \"\\n\\n\", last step \"The answer is \\boxed{ANSWER}\", then <eos>",
    "prm": "<bos>{problem}\n\n{solution steps separated by \"\\n\\n\"}; score read at the last token of each step",
}


def prompt_format(revision_layout):
    """config.json's prompt_format for a policy trained on the given revision layout ("flat" or "interleaved")."""
    return PROMPT_FORMAT if revision_layout == "flat" else dict(PROMPT_FORMAT, revision=REVISION_INTERLEAVED)


class CharTokenizer:
    def __init__(self):
        self.itos = SPECIALS + CHARS
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (self.stoi[s] for s in SPECIALS)

    def __len__(self):
        return len(self.itos)

    def encode(self, text):
        return [self.stoi.get(c, self.unk_id) for c in text]

    def decode(self, ids):
        return "".join(self.itos[i] for i in ids if i >= len(SPECIALS))

    def hf_json(self):
        """A Hugging Face tokenizer.json: BPE with no merges over single characters = char-level."""
        added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True} for i, s in enumerate(SPECIALS)]
        return {
            "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": None, "pre_tokenizer": None, "post_processor": None,
            "decoder": {"type": "Fuse"},
            "model": {"type": "BPE", "dropout": None, "unk_token": UNK, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": False, "vocab": self.stoi, "merges": []},
        }

    def special_ids(self):
        return {"pad": self.pad_id, "bos": self.bos_id, "eos": self.eos_id, "unk": self.unk_id}


TOK = CharTokenizer()


def policy_prompt(problem):
    return problem + STEP_DELIMITER


def revision_prompt(problem, previous_solution):
    steps = [s.strip() for s in previous_solution.split(STEP_DELIMITER) if s.strip()]
    return problem + "\n\nPrevious attempt: " + " | ".join(steps) + "\n\nRevised solution:\n\n"


def example(prompt, completion):
    """Token ids for <bos> prompt completion <eos>, and the index where the loss starts."""
    p = [TOK.bos_id] + TOK.encode(prompt)
    return p + TOK.encode(completion) + [TOK.eos_id], len(p)


def interleaved_revision_example(problem, previous_solution, solution):
    """Token ids of a revision in the interleaved layout (revision_layout.py), and per token whether
    the loss is taken on it: the model's own steps and <eos>, not the prompt nor the injected lines."""
    return masked_ids(interleaved_segments(problem, previous_solution, solution), TOK.encode, TOK.bos_id, TOK.eos_id)


def collate(examples):
    """Right-padded batch: ids [B,T], pos [B,T], targets [B,T] (-100 where no loss is taken). An
    example is (ids, index where the loss starts) or (ids, per-token loss mask)."""
    T = max(len(ids) for ids, _ in examples) - 1
    inp = torch.full((len(examples), T), TOK.pad_id, dtype=torch.long)
    tgt = torch.full((len(examples), T), -100, dtype=torch.long)
    for b, (ids, loss) in enumerate(examples):
        n = len(ids) - 1
        inp[b, :n] = torch.tensor(ids[:-1])
        trained = [i >= loss for i in range(len(ids))] if isinstance(loss, int) else loss
        tgt[b, :n] = torch.tensor([t if keep else -100 for t, keep in zip(ids[1:], trained[1:])])
    pos = torch.arange(T).repeat(len(examples), 1)
    return inp, pos, tgt


def left_pad(prompts_ids):
    """Left-padded prompts for generation: padding has position -1."""
    T = max(len(p) for p in prompts_ids)
    ids = torch.full((len(prompts_ids), T), TOK.pad_id, dtype=torch.long)
    pos = torch.full((len(prompts_ids), T), -1, dtype=torch.long)
    for b, p in enumerate(prompts_ids):
        ids[b, T - len(p):] = torch.tensor(p)
        pos[b, T - len(p):] = torch.arange(len(p))
    return ids, pos


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def synth(split, n, seed, out, ladder=1):
    """`data synth` problems (cached at `out`) from a difficulty ladder: every model here was trained on
    ladder 1's train split, and the first generation was evaluated on its test split. The cache is
    read back only when `out.args.json` says the same split, n, seed and ladder made it; otherwise
    the problems are drawn again (`data synth` is deterministic), so that two callers that share a
    file name never get each other's problems."""
    args = dict(split=split, n=n, seed=seed, ladder=ladder)
    args_file = out + ".args.json"
    made_by = json.load(open(args_file)) if os.path.exists(args_file) else None
    if os.path.exists(out) and made_by == args:
        return read_jsonl(out)
    if os.path.exists(out) and not can_label():
        found = f"made by {made_by}" if made_by else f"no {args_file}"
        raise SystemExit(f"{out} was not drawn with {args} ({found}), and node cannot draw it again here: "
                         "carry the right file and its .args.json over")
    subprocess.run(CLI + ["data", "synth", "--split", split, "--n", str(n), "--seed", str(seed), "--out", out,
                          "--ladder", str(ladder)], check=True)
    with open(args_file, "w") as f:
        json.dump(args, f)
    return read_jsonl(out)


def can_label():
    """Whether `data label` can run here (node and the built CLI)."""
    return shutil.which(CLI[0]) is not None and os.path.exists(CLI[1])


def label_rules():
    """A fingerprint of the labelling rules (datasets/synth/check.ts), so that labels kept in work/
    are reused only while the rules that made them stand."""
    with open(os.path.join(ROOT, "datasets", "synth", "check.ts"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def label(rows, workdir, name):
    """Label model solutions with the TypeScript rules: adds stepCorrect, prefixCorrect, predicted, correct."""
    src, dst = os.path.join(workdir, name + ".in.jsonl"), os.path.join(workdir, name + ".labelled.jsonl")
    text = "".join(json.dumps({"problem": r["problem"], "solution": r["solution"], "answer": r["answer"]}) + "\n"
                   for r in rows)
    # labels already made for exactly these inputs by these rules are read back (a GPU machine may
    # have no node); labels from other rules (check.ts changed) are made again
    rules, rules_file = label_rules(), dst + ".rules"
    if not (os.path.exists(dst) and os.path.exists(src) and open(src).read() == text
            and os.path.exists(rules_file) and open(rules_file).read() == rules):
        with open(src, "w") as f:
            f.write(text)
        subprocess.run(CLI + ["data", "label", "--in", src, "--out", dst], check=True)
        with open(rules_file, "w") as f:
            f.write(rules)
    out = read_jsonl(dst)
    assert len(out) == len(rows), f"data label returned {len(out)} rows for {len(rows)}"
    return [dict(r, **{k: o[k] for k in ("stepCorrect", "prefixCorrect", "predicted", "correct")})
            for r, o in zip(rows, out)]


LABEL_FIELDS = ("solution", "stepCorrect", "prefixCorrect", "predicted", "correct")


def reuse_labelled(rows, name, workdir, first=False):
    """The labelled solutions of an earlier run (workdir/{name}.labelled.jsonl) merged into `rows`,
    which must be the same problems in the same order (valid while the policy is unchanged); with
    `first`, the first len(rows) of that run's solutions (a larger run that began with these problems).
    The solutions are labelled again when the labelling rules changed since (see `label`)."""
    path = os.path.join(workdir, name + ".labelled.jsonl")
    old = read_jsonl(path) if os.path.exists(path) else []
    if first:
        old = old[:len(rows)]
    if [r["problem"] for r in old] != [r["problem"] for r in rows]:
        raise SystemExit(f"reusing samples: {path} is missing or holds other problems; run without reuse")
    merged = [dict(r, **{k: o[k] for k in LABEL_FIELDS}) for r, o in zip(rows, old)]
    rules = path + ".rules"
    if os.path.exists(rules) and open(rules).read() == label_rules():
        return merged
    return label(merged, workdir, name + (f"_first{len(rows)}" if first else ""))
