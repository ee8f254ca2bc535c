"""Held-out round 2 (issue 22): patterns observed in kveps/motion_prediction (``models/transformer/``), a
motion-forecasting Transformer: an attention function that zeroes the NaN rows of fully masked queries, a
multi-head attention with one fused QKV projection and a self-attention-only forward, a sinusoid whose exponent
uses the feature index, a LayerNorm without parameters and with the unbiased variance, and a feed-forward network
with dropout inside.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch
import torch.nn.functional as F
from torch import nn

from . import PASSES, case


def src(path, commit="4ab8bdc98ab8de9504271e8223eb36168f4f429f"):
    return dict(repo="kveps/motion_prediction", path=path, commit=commit)


ATTENTION = src("models/transformer/attention.py", "0e63d316df1c6bb261978ddd33a21f94efb0bb3f")


@case(
    "scaled_dot_product_attention",
    "correct",
    source=ATTENTION,
    why="Q Kᵀ / sqrt(d_k), -inf on masked keys, softmax, NaN rows (every key masked) set to 0, weights @ V",
    expect=PASSES,
    pattern="attention = q @ k^T, divided by q.size(-1) ** 0.5; masked_fill(mask == 0, -inf); softmax over the "
    "last axis; torch.nan_to_num(..., nan=0.0) so a query whose keys are all masked gets zero weights; returns "
    "(weights @ v, weights).",
    differences=["-inf fill with NaN rows zeroed (fully masked rows are not graded)"],
)
def scaled_dot_product_attention(query, key, value, mask=None):
    scores = torch.matmul(query, key.transpose(-2, -1)) / query.size(-1) ** 0.5
    if mask is not None:
        scores = scores.masked_fill(mask == 0, float("-inf"))
    weights = torch.nan_to_num(F.softmax(scores, dim=-1), nan=0.0)
    return torch.matmul(weights, value), weights


@case(
    "MultiHeadAttention",
    "buggy",
    source=ATTENTION,
    why="self-attention only: forward(x, mask) takes one input and one fused qkv_linear (d -> 3d, split per "
    "head), arguments (num_heads, d_model); no W_q / W_k / W_v / W_o, no cross-attention",
    expect=r"qkv|fused|single (input|projection|linear)|one input|self-attention only|three (inputs|arguments|"
    r"tensors)|(query|key|value)\b.{0,40}(separate|different|argument)",
    pattern="Constructor (num_heads, d_model); qkv_linear = Linear(d, 3d) and linear = Linear(d, d). forward(x, "
    "mask, return_attention=False): qkv reshaped to [B, S, h, 3 * d_head], heads moved forward, chunk(3) on the "
    "last axis (so head i's q, k, v are interleaved blocks of the fused output), attention with "
    "mask.unsqueeze(1) (mask is required), heads merged, then linear. Returns (out, weights) when "
    "return_attention is truthy. A separate class does cross-attention.",
    differences=[
        "one input (self-attention only)",
        "fused qkv projection",
        "(num_heads, d_model) order",
        "mask required and unsqueezed",
        "no attention_weights",
    ],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, num_heads, d_model):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.qkv_linear = nn.Linear(d_model, 3 * d_model)
        self.linear = nn.Linear(d_model, d_model)

    def forward(self, x, mask, return_attention=False):
        b, s, _ = x.size()
        qkv = self.qkv_linear(x).reshape(b, s, self.num_heads, 3 * self.head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv.chunk(3, dim=-1)
        values, weights = scaled_dot_product_attention(q, k, v, mask.unsqueeze(dim=1))
        out = self.linear(values.permute(0, 2, 1, 3).reshape(b, s, self.num_heads * self.head_dim))
        if return_attention:
            return out, weights
        return out


@case(
    "PositionalEncoding",
    "buggy",
    source=src("models/transformer/positional_encoder.py"),
    why="the exponent is 2*i/d with i the FEATURE index (not the pair index): feature 2k uses 10000^(4k/d), so "
    "the frequencies fall off twice as fast as the paper's",
    expect=r"frequenc|exponent|wavelength|\b2i\b|i ?// ?2|pair index|feature index",
    pattern="(Adapted: the original fills a zeros_like(x) table in forward with two Python loops over "
    "num_timesteps=100 positions, so only inputs of exactly that length work; here the table is the contract's "
    "buffer pe [1, max_len, d], built once.) Feature i of position pos is sin(pos / 10000^(2*i/d)) when i is "
    "even and cos(pos / 10000^(2*i/d)) when i is odd, i running over all d features; forward returns x + pe[:, :S].",
    differences=["exponent 2*i/d with the feature index i (should be 2*(i//2)/d)"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        pos = torch.arange(max_seq_length, dtype=torch.float32)[:, None]
        i = torch.arange(d_model, dtype=torch.float32)[None, :]
        angle = pos / 10000 ** (2 * i / d_model)
        table = torch.zeros(max_seq_length, d_model)
        table[:, 0::2] = torch.sin(angle[:, 0::2])
        table[:, 1::2] = torch.cos(angle[:, 1::2])
        self.register_buffer("pe", table.unsqueeze(0))

    def forward(self, x):
        if x.size(1) > self.pe.size(1):
            raise ValueError(f"sequence of length {x.size(1)} is longer than the table ({self.pe.size(1)})")
        return x + self.pe[:, : x.size(1)]


@case(
    "LayerNorm",
    "buggy",
    source=src("models/transformer/layer_norm.py"),
    why="no learnable weight / bias at all, and torch.var's default unbiased (N-1) variance",
    expect=r"unbiased|n ?- ?1|bessel|(no|missing|without|lacks)\b.{0,30}(weight|bias|parameter)|learnable|affine",
    pattern="(Adapted: the original's constructor is (eps=1e-5) alone, so LayerNorm(d_model) would set eps = "
    "d_model; here (d_model, eps=1e-5) and d_model unused.) forward: (x - mean) / sqrt(torch.var(x, -1) + eps) "
    "with torch.var's default unbiased estimate; no scale or shift parameters.",
    differences=["no weight / bias parameters", "unbiased variance"],
)
class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        mean = torch.mean(x, dim=-1, keepdim=True)
        var = torch.var(x, dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps)


@case(
    "FeedForwardNetwork",
    "buggy",
    source=src("models/transformer/feed_forward.py"),
    why="layers named linear1 / linear2 instead of W_1 / W_2, and a dropout (p=0.1) between the ReLU and the "
    "second layer, which the contract does not have",
    expect=r"dropout|linear1|(no|missing|lacks)\b.{0,30}\bW_[12]\b",
    pattern="Constructor (d_model, hidden, drop_prob=0.1): linear1 = Linear(d, hidden), linear2 = Linear(hidden, "
    "d), ReLU and Dropout(drop_prob). forward: linear2(dropout(relu(linear1(x)))).",
    differences=["names linear1 / linear2", "dropout inside the network"],
)
class FeedForwardNetwork(nn.Module):
    def __init__(self, d_model, d_ff, drop_prob=0.1):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(p=drop_prob)

    def forward(self, x):
        return self.linear2(self.dropout(self.relu(self.linear1(x))))
