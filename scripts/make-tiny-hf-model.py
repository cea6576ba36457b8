"""Writes test/fixtures/tiny-hf: a tiny Llama-style decoder with random weights, exported to ONNX
with the Hugging Face optimum / transformers.js I/O names (input_ids, attention_mask, position_ids,
past_key_values.{i}.key|value -> logits, present.{i}.key|value), a config.json with model_type, the
embedded character tokenizer, a tokenizer_config.json with a chat template, and golden.json: the
greedy continuation of a chat prompt computed by full recomputation without a cache, which the
runtime (with its KV cache, batching and padding) must reproduce. Accuracy is not the point.

Run: /usr/bin/python3 scripts/make-tiny-hf-model.py"""
import json
import os
import shutil

import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "tiny-hf")
LAYERS, HEADS, KV_HEADS, HIDDEN = 2, 2, 1, 32
HEAD_DIM = HIDDEN // HEADS


def rotate(x, positions):
    """Rotary position embedding on the last dimension, for positions [B, T]."""
    half = HEAD_DIM // 2
    freq = 1.0 / (10000 ** (torch.arange(half, dtype=torch.float32) / half))
    angle = positions.unsqueeze(-1).float() * freq  # [B, T, half]
    cos, sin = angle.cos().unsqueeze(1), angle.sin().unsqueeze(1)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(HIDDEN)
        self.q = nn.Linear(HIDDEN, HEADS * HEAD_DIM, bias=False)
        self.k = nn.Linear(HIDDEN, KV_HEADS * HEAD_DIM, bias=False)
        self.v = nn.Linear(HIDDEN, KV_HEADS * HEAD_DIM, bias=False)
        self.o = nn.Linear(HEADS * HEAD_DIM, HIDDEN, bias=False)
        self.norm2 = nn.LayerNorm(HIDDEN)
        self.mlp = nn.Sequential(nn.Linear(HIDDEN, 4 * HIDDEN), nn.GELU(), nn.Linear(4 * HIDDEN, HIDDEN))

    def forward(self, x, positions, mask, past_k, past_v):
        b, t, _ = x.shape
        h = self.norm1(x)
        q = rotate(self.q(h).view(b, t, HEADS, HEAD_DIM).transpose(1, 2), positions)
        k = rotate(self.k(h).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2), positions)
        v = self.v(h).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        k = torch.cat([past_k, k], dim=2)
        v = torch.cat([past_v, v], dim=2)
        # One key/value head, broadcast over the query heads (grouped-query attention with a single group).
        scores = q @ k.transpose(-1, -2) / HEAD_DIM ** 0.5
        total = k.shape[2]
        past = total - t
        causal = torch.arange(total).unsqueeze(0) <= (torch.arange(t).unsqueeze(1) + past)  # [t, total]
        allowed = causal.unsqueeze(0).unsqueeze(0) & (mask[:, None, None, :] > 0)
        scores = scores.masked_fill(~allowed, -1e9)
        attn = scores.softmax(-1) @ v
        x = x + self.o(attn.transpose(1, 2).reshape(b, t, HIDDEN))
        return x + self.mlp(self.norm2(x)), k, v


class TinyDecoder(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.embed = nn.Embedding(vocab, HIDDEN)
        self.layers = nn.ModuleList([Layer() for _ in range(LAYERS)])
        self.norm = nn.LayerNorm(HIDDEN)
        self.head = nn.Linear(HIDDEN, vocab, bias=False)

    def forward(self, input_ids, attention_mask, position_ids, *past):
        x = self.embed(input_ids)
        presents = []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, position_ids, attention_mask, past[2 * i], past[2 * i + 1])
            presents += [k, v]
        return (self.head(self.norm(x)), *presents)


def main():
    torch.manual_seed(0)
    os.makedirs(os.path.join(OUT, "onnx"), exist_ok=True)
    shutil.copy(os.path.join(ROOT, "models", "policy", "tokenizer.json"), os.path.join(OUT, "tokenizer.json"))
    vocab = json.load(open(os.path.join(OUT, "tokenizer.json")))["model"]["vocab"]
    vocab_size = max(vocab.values()) + 1
    model = TinyDecoder(vocab_size).eval()
    # Larger weights than the default make the greedy continuation varied rather than one repeated token.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)

    past_names = [f"past_key_values.{i}.{kind}" for i in range(LAYERS) for kind in ("key", "value")]
    present_names = [f"present.{i}.{kind}" for i in range(LAYERS) for kind in ("key", "value")]
    dummy = (
        torch.tensor([[5, 6, 7]]),
        torch.ones(1, 5, dtype=torch.int64),
        torch.tensor([[2, 3, 4]]),
        *[torch.zeros(1, KV_HEADS, 2, HEAD_DIM) for _ in past_names],
    )
    dynamic = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "total"}, "position_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
    dynamic.update({name: {0: "batch", 2: "past"} for name in past_names})
    dynamic.update({name: {0: "batch", 2: "total"} for name in present_names})
    torch.onnx.export(model, dummy, os.path.join(OUT, "onnx", "model.onnx"), opset_version=14,
                      input_names=["input_ids", "attention_mask", "position_ids", *past_names],
                      output_names=["logits", *present_names], dynamic_axes=dynamic)

    config = {"model_type": "llama", "architectures": ["TinyDecoder"], "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
              "num_key_value_heads": KV_HEADS, "hidden_size": HIDDEN, "vocab_size": vocab_size, "bos_token_id": 1, "eos_token_id": 2,
              "max_position_embeddings": 512}
    json.dump(config, open(os.path.join(OUT, "config.json"), "w"), indent=2)
    template = "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
    json.dump({"chat_template": template, "bos_token": "<bos>", "eos_token": "<eos>"}, open(os.path.join(OUT, "tokenizer_config.json"), "w"), indent=2)

    # Golden: greedy continuation by full recomputation (no cache) of a fixed token prompt.
    prompt = [1] + [vocab[c] for c in "Compute 3 + 4.\n\n"]
    ids = list(prompt)
    empty = [torch.zeros(1, KV_HEADS, 0, HEAD_DIM) for _ in past_names]
    with torch.no_grad():
        for _ in range(24):
            x = torch.tensor([ids])
            logits = model(x, torch.ones_like(x), torch.arange(len(ids)).unsqueeze(0), *empty)[0]
            ids.append(int(logits[0, -1].argmax()))
    json.dump({"prompt_ids": prompt, "greedy_ids": ids[len(prompt):]}, open(os.path.join(OUT, "golden.json"), "w"), indent=2)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
