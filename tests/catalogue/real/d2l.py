"""Patterns observed in d2l-ai/d2l-en (Dive into Deep Learning): ``d2l/torch.py`` and the softmax of
``chapter_linear-classification/softmax-regression-scratch.md``.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import torch
from torch import nn

from solutions import MultiHeadAttention

from . import PASSES, case

COMMIT = "23d7a5aecceee57d1292c56e90cce307f183bb0a"


def src(path):
    return dict(repo="d2l-ai/d2l-en", path=path, commit=COMMIT)


@case(
    "softmax",
    "buggy",
    source=src("chapter_linear-classification/softmax-regression-scratch.md"),
    why="exp(X) / sum without subtracting the maximum (overflows for large inputs, as the book warns), "
    "and always over axis 1",
    expect=r"overflow|stable|large inputs|maximum|wrong axis|along `dim`",
    pattern="The textbook first version: exp(x) divided by its sum over axis 1 (keepdim), with no "
    "maximum subtracted; the `dim` argument is accepted and not used.",
    differences=["no maximum subtracted (overflows)", "always normalises over axis 1"],
)
def softmax(x, dim=-1):
    e = x.exp()
    return e / torch.sum(e, 1, keepdim=True)


@case(
    "PositionalEncoding",
    "variant",
    source=src("d2l/torch.py"),
    why="the table is a plain attribute (not a buffer: moved by .to(X.device) at every call); dropout inside",
    expect=r"buffer|dropout|train mode",
    pattern="Constructor (d_model, max_seq_length=5000, dropout=0.1). The table pe [1, max_len, d] holds "
    "sin / cos of pos / 10000^(2i/d) (float32, torch.pow) on even / odd features, kept as a PLAIN tensor "
    "attribute (no register_buffer). forward adds pe[:, :S] moved to x's device, then its own dropout.",
    differences=["pe is a plain attribute, not a buffer", "dropout inside", "no length check"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000, dropout=0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        rows = torch.arange(max_seq_length, dtype=torch.float32)[:, None]
        cols = torch.pow(10000, torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
        phase = rows / cols
        self.pe = torch.zeros(1, max_seq_length, d_model)
        self.pe[0, :, 0::2] = phase.sin()
        self.pe[0, :, 1::2] = phase.cos()

    def forward(self, x):
        n = x.shape[1]
        return self.dropout(x + self.pe[:, :n].to(x.device))


@case(
    "FeedForwardNetwork",
    "variant",
    source=src("d2l/torch.py"),
    why="nn.LazyLinear layers (shapes inferred at the first call; they become nn.Linear then); otherwise "
    "W_2(relu(W_1(x)))",
    expect=r"Lazy|uninitiali[sz]ed|nn\.Linear",
    may_pass=True,
    pattern="Both maps are nn.LazyLinear: W_1 = LazyLinear(d_ff), W_2 = LazyLinear(d_model), the input "
    "size inferred at the first call; forward is W_2(relu(W_1(x))).",
    differences=["nn.LazyLinear instead of nn.Linear (uninitialised parameters until the first call)"],
)
class FeedForwardNetwork(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.W_1 = nn.LazyLinear(d_ff)
        self.W_2 = nn.LazyLinear(d_model)

    def forward(self, x):
        return self.W_2(torch.relu(self.W_1(x)))


@case(
    "EncoderLayer",
    "correct",
    source=src("d2l/torch.py"),
    why="post-norm AddNorm: ln(dropout(Y) + X) after attention and after the FFN",
    expect=PASSES,
    pattern="Post-norm block: y = norm1(dropout(self_attn(x, x, x, mask)) + x), then "
    "norm2(dropout(feed_forward(y)) + y); norms are nn.LayerNorm(d_model), one dropout module; the "
    "attention is the contract's MultiHeadAttention and the feed-forward network this module's "
    "LazyLinear one. An extra unused argument use_bias=False.",
    differences=[
        "nn.LayerNorm for the norms",
        "the module's LazyLinear feed-forward network",
        "extra optional use_bias",
    ],
)
class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1, use_bias=False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.norm1 = nn.LayerNorm(d_model)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        h = self.norm1(x + self.dropout(self.self_attn(x, x, x, mask)))
        return self.norm2(h + self.dropout(self.feed_forward(h)))
