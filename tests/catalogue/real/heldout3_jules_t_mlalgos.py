"""Held-out round 3 (issue 22): patterns observed in jules-t/MLAlgos (``transformer/``): attention that divides by
d_k (not its square root) after ``keys.T``, a self-attention module whose forward is (x, kv, mask), and two
versions of a positional encoding: a first one that is not an nn.Module and misspells torch.arange, and a later
one with (max_seq_len, dim_model) arguments that returns the table alone.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import math

import torch
from torch import nn

from . import case


def src(path, commit):
    return dict(repo="jules-t/MLAlgos", path=path, commit=commit)


@case(
    "scaled_dot_product_attention",
    "buggy",
    source=src("transformer/attentions.py", "5920362d3c17357d692cb7940f8345c953f3f21c"),
    why="the logits are query @ keys.T (for a batched tensor .T reverses EVERY axis, not the last two) divided by "
    "d_k instead of sqrt(d_k); masked keys get -9e15 via ~mask",
    expect=r"sqrt|√|d_k\b.{0,60}(instead|not|rather)|scal|\.T\b|transpose|revers|every (axis|dimension)|shape",
    pattern="self_attention(query, keys, values, mask=None): logits = query @ keys.T (here written as the permute "
    "that .T performs: all axes reversed); logits / query.size(-1); masked_fill(~mask, -9e15) when a mask is "
    "given; softmax over the last axis; returns (attention @ values, attention).",
    differences=["keys.T (all axes reversed) instead of the last two swapped", "divides by d_k, not sqrt(d_k)"],
)
def scaled_dot_product_attention(query, key, value, mask=None):
    key_t = key.permute(*reversed(range(key.dim())))
    logits = (query @ key_t) / query.size()[-1]
    if mask is not None:
        logits = logits.masked_fill(~mask, -9e15)
    attention = torch.softmax(logits, dim=-1)
    return attention @ value, attention


@case(
    "MultiHeadAttention",
    "buggy",
    source=src("transformer/attentions.py", "5920362d3c17357d692cb7940f8345c953f3f21c"),
    why="forward(x, kv=None, mask=None): the second argument is the one key/value source and the THIRD is the "
    "mask, so forward(query, key, value, mask) takes `value` for the mask and the real mask for a flag; values "
    "always come from kv (never from a separate `value`)",
    expect=r"signature|\bkv\b|forward\(|(positional |its )?arguments?|mask.{0,60}(third|value)|value.{0,60}mask",
    pattern="(Adapted: the original's projections are q_proj / k_proj / v_proj / out_proj, Xavier-initialised "
    "with zero biases; here W_q / W_k / W_v / W_o, and the module calls the attention helper by the contract's "
    "name.) forward(x, kv=None, mask=None, get_attention=False): q from x, k and v from kv (or x); a mask is "
    "expanded to 4-D; reshape [B, S, h, d_k], permute; attention; permute back; W_o; (out, attention) when "
    "get_attention.",
    differences=["forward(x, kv, mask): no separate value", "no attention_weights attribute"],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        assert d_model % num_heads == 0, "The embedding dim must be modulo the number of heads"
        self.embed_dim = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)
        for proj in (self.W_q, self.W_k, self.W_v, self.W_o):
            nn.init.xavier_uniform_(proj.weight)
            proj.bias.data.fill_(0)

    def forward(self, x, kv=None, mask=None, get_attention=False):
        b, s, _ = x.size()
        if mask is not None:
            while mask.ndim < 4:
                mask = mask.unsqueeze(0)
        source = x if kv is None else kv
        q = self.W_q(x).reshape(b, s, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
        k = self.W_k(source).reshape(b, source.size(1), self.num_heads, self.head_dim).permute(0, 2, 1, 3)
        v = self.W_v(source).reshape(b, source.size(1), self.num_heads, self.head_dim).permute(0, 2, 1, 3)
        values, attention = scaled_dot_product_attention(q, k, v, mask=mask)
        out = self.W_o(values.permute(0, 2, 1, 3).reshape(b, s, self.embed_dim))
        if get_attention:
            return out, attention
        return out


@case(
    "PositionalEncoding",
    "buggy",
    source=src("transformer/positional_encoding.py", "4a4b2d5dd90e0809b818cd95d9fd70a7943d94ef"),
    why="the constructor is (max_seq_len, dim_model), the length first, and forward returns the table pe[:, :S] "
    "alone instead of x + pe[:, :S]",
    expect=r"order|swap|revers|\(max_seq_len, ?dim_model\)|positional arguments|(does not|doesn't|never|without) "
    r"add|only the (positional )?(encoding|table)|x \+",
    pattern="__init__(max_seq_len, dim_model): pe [max, d] with sin / cos (div_term = exp(2i * -ln(10000) / d)), "
    "unsqueezed to [1, max, d], registered as a non-persistent buffer `pe`; forward(x) returns pe[:, :x.size(1)].",
    differences=["(max_seq_len, dim_model) argument order", "returns pe[:, :S], not x + pe[:, :S]"],
    suffix="later",
)
class PositionalEncoding(nn.Module):
    def __init__(self, max_seq_len, dim_model):
        super().__init__()
        pe = torch.zeros(max_seq_len, dim_model)
        position = torch.arange(0, max_seq_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, dim_model, 2).float() * (-math.log(10000.0) / dim_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0), persistent=False)

    def forward(self, x):
        return self.pe[:, : x.size(1)]


@case(
    "PositionalEncoding",
    "buggy",
    source=src("transformer/positional_encoding.py", "e770f8663f273fef6f1ab1488007901ec126124f"),
    why="not an nn.Module (a plain class, so register_buffer does not exist), and the constructor calls "
    "torch.arrange, a misspelling: building it raises AttributeError",
    expect=r"AttributeError|arrange|nn\.Module|register_buffer|has no attribute",
    pattern="class PositionalEncoding(): __init__(max_seq_len, dim_model) with no super().__init__(); pe = "
    "zeros(max, d); position = torch.arrange(...) (AttributeError: torch has no arrange); it would then call "
    "self.register_buffer (which a plain class lacks); forward adds self.per (a misspelling of pe).",
    differences=["torch.arrange: AttributeError at construction", "not an nn.Module", "self.per in forward"],
    suffix="first",
)
class PositionalEncodingFirst:
    def __init__(self, max_seq_len, dim_model):
        pe = torch.zeros(max_seq_len, dim_model)
        position = torch.arrange(0, max_seq_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arrange(0, dim_model, 2).float() * (-math.log(10000.0) / dim_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0), persistent=False)

    def forward(self, x):
        x = x + self.per[:, : x.size(1)]
