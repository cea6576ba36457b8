"""Architectures: the Griffin-style hybrid policy (RG-LRU + local attention), the KV-cache
baseline transformer, and the PRM head.

Every model has three forward paths that compute the same function:
  * `forward(ids, pos)`            whole sequence -> logits and the decoding state after it
                                   (training and the ONNX prefill graph);
  * `step(ids, pos, state)`        one token per row -> logits and the next state (ONNX decode graph).
Padding convention: a position id < 0 marks a padding token. Padding tokens never change the
recurrent state and are never attended to, so a batch of prompts is left-padded with position -1
and every row ends on its last real token.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NEG = -1e9  # finite mask fill: fully masked (padding) query rows stay finite


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class GatedMLP(nn.Module):
    def __init__(self, d, expansion):
        super().__init__()
        self.gate = nn.Linear(d, expansion * d, bias=False)
        self.up = nn.Linear(d, expansion * d, bias=False)
        self.down = nn.Linear(expansion * d, d, bias=False)

    def forward(self, x):
        return self.down(F.gelu(self.gate(x), approximate="tanh") * self.up(x))


def rope(x, pos, inv_freq):
    """Rotary embedding. x [B, H, T, hd], pos [B, T] (float)."""
    ang = pos.unsqueeze(-1) * inv_freq  # [B, T, hd/2]
    cos = torch.cos(ang).unsqueeze(1)
    sin = torch.sin(ang).unsqueeze(1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


def attend(q, k, v, mask):
    """q [B,H,T,hd], k/v [B,Hkv,S,hd], mask [B,1,T,S] bool (True = may attend)."""
    rep = q.shape[1] // k.shape[1]
    if rep > 1:  # multi-query: share each key/value head across `rep` query heads
        k = k.unsqueeze(2).expand(-1, -1, rep, -1, -1).flatten(1, 2)
        v = v.unsqueeze(2).expand(-1, -1, rep, -1, -1).flatten(1, 2)
    att = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    att = att.masked_fill(~mask, NEG)
    return torch.softmax(att, dim=-1) @ v


class Attention(nn.Module):
    """Multi-query / multi-head attention with RoPE. `window` None = full causal attention."""

    def __init__(self, d, heads, kv_heads, window):
        super().__init__()
        self.h, self.kvh, self.hd, self.window = heads, kv_heads, d // heads, window
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.v = nn.Linear(d, kv_heads * self.hd, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, self.hd, 2).float() / self.hd)), persistent=False)

    def qkv(self, x, pos):
        B, T, _ = x.shape
        posf = pos.float()
        q = rope(self.q(x).view(B, T, self.h, self.hd).transpose(1, 2), posf, self.inv_freq)
        k = rope(self.k(x).view(B, T, self.kvh, self.hd).transpose(1, 2), posf, self.inv_freq)
        v = self.v(x).view(B, T, self.kvh, self.hd).transpose(1, 2)
        return q, k, v

    def out(self, y):
        B, H, T, hd = y.shape
        return self.o(y.transpose(1, 2).reshape(B, T, H * hd))

    def forward(self, x, pos):
        """Whole sequence. Returns output and the keys/values of every position."""
        q, k, v = self.qkv(x, pos)
        pq, pk = pos.unsqueeze(2), pos.unsqueeze(1)  # [B,T,1], [B,1,T]
        mask = (pk <= pq) & (pk >= 0)
        if self.window is not None:
            mask = mask & (pq - pk < self.window)
        return self.out(attend(q, k, v, mask.unsqueeze(1))), k, v


class LocalAttentionMix(nn.Module):
    """Sliding-window attention whose state is a fixed window of the last `window` keys/values.
    Slot j of the window holds position p - window + 1 + j (p = the newest position)."""

    def __init__(self, d, heads, kv_heads, window):
        super().__init__()
        self.attn = Attention(d, heads, kv_heads, window)
        self.window = window
        self.register_buffer("slots", torch.arange(window) - (window - 1), persistent=False)

    def init_state(self, B):
        a = self.attn
        z = torch.zeros(B, a.kvh, self.window, a.hd)
        return (z, z.clone())

    def forward(self, x, pos):
        y, k, v = self.attn(x, pos)
        pad = (0, 0, self.window, 0)  # zeros before the sequence, then keep the last `window`
        return y, (F.pad(k, pad)[:, :, -self.window:], F.pad(v, pad)[:, :, -self.window:])

    def step(self, x, pos, state):
        pk, pv = state
        q, k, v = self.attn.qkv(x, pos)
        k = torch.cat([pk[:, :, 1:], k], dim=2)
        v = torch.cat([pv[:, :, 1:], v], dim=2)
        valid = (pos + self.slots) >= 0  # [B, window]
        y = attend(q, k, v, valid.unsqueeze(1).unsqueeze(1))
        return self.attn.out(y), (k, v)


def linear_scan(a, b, n_doublings):
    """h_t = a_t * h_{t-1} + b_t with h_{-1} = 0, along dim 1, by Hillis-Steele doubling.
    Unrolled `n_doublings` times: exact for T <= 2**n_doublings; only elementwise ops, pads and
    slices, so it exports to ONNX with a dynamic T and never divides by a small product."""
    for i in range(n_doublings):
        d = 2 ** i
        a_prev = F.pad(a, (0, 0, d, 0), value=1.0)[:, :-d]
        b_prev = F.pad(b, (0, 0, d, 0), value=0.0)[:, :-d]
        b = b + a * b_prev
        a = a * a_prev
    return b


class RecurrentMix(nn.Module):
    """Griffin recurrent block: GeLU gate branch * (Linear -> causal depthwise Conv1D -> RG-LRU)."""

    C = 8.0
    MAX_DOUBLINGS = 12  # prefill graph handles prompts up to 4096 tokens

    def __init__(self, d, conv_width):
        super().__init__()
        self.d, self.cw = d, conv_width
        self.gate_in = nn.Linear(d, d, bias=False)
        self.x_in = nn.Linear(d, d, bias=False)
        self.conv_w = nn.Parameter(torch.randn(conv_width, d) / math.sqrt(conv_width))
        self.conv_b = nn.Parameter(torch.zeros(d))
        self.w_a = nn.Linear(d, d)  # recurrence gate r_t
        self.w_i = nn.Linear(d, d)  # input gate i_t
        # a = sigmoid(lambda) initialised uniformly in [0.9, 0.999]^(1/c) as in Griffin
        a0 = torch.empty(d).uniform_(0.9, 0.999) ** (1.0 / self.C)
        self.lam = nn.Parameter(torch.log(a0 / (1 - a0)))
        self.out = nn.Linear(d, d, bias=False)

    def init_state(self, B):
        return (torch.zeros(B, self.cw - 1, self.d), torch.zeros(B, self.d))

    def gates(self, x):
        log_a = -self.C * F.softplus(-self.lam) * torch.sigmoid(self.w_a(x))
        a = torch.exp(log_a)
        mult = torch.sqrt(torch.clamp(1 - torch.exp(2 * log_a), min=1e-6))
        return a, mult * torch.sigmoid(self.w_i(x)) * x

    def forward(self, x, pos, n_doublings=None):
        valid = (pos >= 0).unsqueeze(-1).to(x.dtype)
        gate = F.gelu(self.gate_in(x), approximate="tanh")
        u = self.x_in(x) * valid
        up = F.pad(u, (0, 0, self.cw - 1, 0))
        T = x.shape[1]
        # causal depthwise conv: output t sees inputs t-cw+1 .. t (slices end relative to the end: dynamic T)
        conv = self.conv_b + sum(self.conv_w[j] * (up[:, j:j - (self.cw - 1)] if j < self.cw - 1 else up[:, j:])
                                 for j in range(self.cw))
        a, b = self.gates(conv)
        a = torch.where(valid > 0, a, torch.ones_like(a))
        b = b * valid
        if n_doublings is None:
            n_doublings = self.MAX_DOUBLINGS if torch.onnx.is_in_onnx_export() else max(1, math.ceil(math.log2(max(T, 2))))
        h = linear_scan(a, b, n_doublings)
        state = (up[:, -(self.cw - 1):], h[:, -1])
        return self.out(gate * h), state

    def step(self, x, pos, state):
        conv_state, h = state
        gate = F.gelu(self.gate_in(x), approximate="tanh")
        window = torch.cat([conv_state, self.x_in(x)], dim=1)  # [B, cw, D]
        conv = self.conv_b + (window * self.conv_w).sum(1, keepdim=True)
        a, b = self.gates(conv)
        h = a[:, 0] * h + b[:, 0]
        return self.out(gate * h.unsqueeze(1)), (window[:, 1:], h)


class FullAttentionMix(nn.Module):
    """Ordinary causal attention with a growing KV cache. Past slot j holds position p - P + j."""

    def __init__(self, d, heads):
        super().__init__()
        self.attn = Attention(d, heads, heads, None)

    def init_state(self, B):
        a = self.attn
        z = torch.zeros(B, a.kvh, 0, a.hd)
        return (z, z.clone())

    def forward(self, x, pos):
        y, k, v = self.attn(x, pos)
        return y, (k, v)

    def step(self, x, pos, state):
        pk, pv = state
        q, k, v = self.attn.qkv(x, pos)
        k = torch.cat([pk, k], dim=2)
        v = torch.cat([pv, v], dim=2)
        ones = torch.ones_like(k[0, 0, :, 0])
        slot = ones.cumsum(0) - ones.sum()  # -S+1 .. 0, computed from the shape so S stays dynamic
        valid = (pos.float() + slot) >= 0
        y = attend(q, k, v, valid.unsqueeze(1).unsqueeze(1))
        return self.attn.out(y), (k, v)


class Block(nn.Module):
    def __init__(self, mix, d, expansion):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(d), RMSNorm(d)
        self.mix = mix
        self.mlp = GatedMLP(d, expansion)

    def forward(self, x, pos):
        y, state = self.mix(self.norm1(x), pos)
        x = x + y
        return x + self.mlp(self.norm2(x)), state

    def step(self, x, pos, state):
        y, state = self.mix.step(self.norm1(x), pos, state)
        x = x + y
        return x + self.mlp(self.norm2(x)), state


class LM(nn.Module):
    """Decoder LM over a stack of blocks; embeddings tied to the output layer."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d = cfg["d_model"]
        self.embed = nn.Embedding(cfg["vocab_size"], d)
        nn.init.normal_(self.embed.weight, std=1.0 / math.sqrt(d))
        blocks = []
        for kind in cfg["block_types"]:
            if kind == "recurrent":
                mix = RecurrentMix(d, cfg["conv_width"])
            elif kind == "local_attention":
                mix = LocalAttentionMix(d, cfg["heads"], cfg["kv_heads"], cfg["window"])
            elif kind == "attention":
                mix = FullAttentionMix(d, cfg["heads"])
            else:
                raise ValueError(f"unknown block type {kind}")
            blocks.append(Block(mix, d, cfg["mlp_expansion"]))
        self.blocks = nn.ModuleList(blocks)
        self.norm = RMSNorm(d)

    def hidden(self, ids, pos):
        x = self.embed(ids) * math.sqrt(self.cfg["d_model"])
        states = []
        for blk in self.blocks:
            x, s = blk(x, pos)
            states.append(s)
        return self.norm(x), states

    def logits(self, h):
        return h @ self.embed.weight.t()

    def forward(self, ids, pos):
        h, states = self.hidden(ids, pos)
        return self.logits(h), states

    def init_state(self, B):
        return [blk.mix.init_state(B) for blk in self.blocks]

    def step(self, ids, pos, states):
        x = self.embed(ids) * math.sqrt(self.cfg["d_model"])
        new = []
        for blk, s in zip(self.blocks, states):
            x, s = blk.step(x, pos, s)
            new.append(s)
        return self.logits(self.norm(x)), new


class PRM(nn.Module):
    """Process reward model: an LM backbone with a linear head; score = P(all steps so far correct)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm
        self.head = nn.Linear(lm.cfg["d_model"], 1)

    def forward(self, ids, pos):
        h, _ = self.lm.hidden(ids, pos)
        return self.head(h).squeeze(-1)  # logits [B, T]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


POLICY_ARCH = {
    "architecture": "griffin",
    "d_model": 128,
    "block_types": ["recurrent", "recurrent", "local_attention"] * 2,
    "conv_width": 4,
    "heads": 4,
    "kv_heads": 1,
    "window": 64,
    "mlp_expansion": 3,
}

BASELINE_ARCH = {
    "architecture": "transformer",
    "d_model": 128,
    "block_types": ["attention"] * 6,
    "heads": 4,
    "kv_heads": 4,
    "mlp_expansion": 3,
}
