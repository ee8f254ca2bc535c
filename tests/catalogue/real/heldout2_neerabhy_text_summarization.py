"""Held-out round 2 (issue 22): patterns observed in Neerabhy/Text_summarization, a summariser built on the
Annotated Transformer's layout: embeddings with (d_model, vocab) arguments, a positional encoding that takes a
dropout rate before the table length, multi-head attention with (heads, d_model) arguments and a list of four
projections, a three-dimensional future mask, and pre-norm sub-layer connections.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import math

import torch
from torch import nn

from solutions import FeedForwardNetwork, LayerNorm

from . import case


def src(path, commit):
    return dict(repo="Neerabhy/Text_summarization", path=path, commit=commit)


UTILS = src("utils.py", "1bdf71929af623153af9819ecc63e2d358d631bc")


@case(
    "TokenEmbedding",
    "buggy",
    source=UTILS,
    why="constructor arguments in the other order, (d_model, vocab), and the table is called `lut`, not `embedding`",
    expect=r"order|swap|revers|\(d_model, vocab|\blut\b|(no|missing|lacks)\b.{0,30}\bembedding\b",
    pattern="Constructor (d_model, vocab): lut = nn.Embedding(vocab, d_model). forward: lut(x) * sqrt(d_model). "
    "TokenEmbedding(vocab_size, d_model) positionally builds a [d_model, vocab_size] table scaled by "
    "sqrt(vocab_size).",
    differences=["(d_model, vocab) argument order", "attribute lut instead of embedding"],
)
class TokenEmbedding(nn.Module):
    def __init__(self, d_model, vocab):
        super().__init__()
        self.lut = nn.Embedding(vocab, d_model)
        self.d_model = d_model

    def forward(self, x):
        return self.lut(x) * math.sqrt(self.d_model)


@case(
    "PositionalEncoding",
    "buggy",
    source=UTILS,
    why="the second constructor argument is a dropout rate (the table length comes third), and dropout is "
    "applied inside forward, where the contract has none",
    expect=r"dropout|second (positional )?argument|signature|constructor",
    pattern="Constructor (d_model, dropout, max_length=5000): Dropout(p=dropout); buffer pe [1, max_len, d] with "
    "sin / cos of position * exp(2i * -ln(10000) / d). forward: dropout(x + pe[:, :S]). "
    "PositionalEncoding(d_model, 100) asks nn.Dropout for p=100 and raises ValueError; no length check.",
    differences=["dropout rate as second argument", "dropout in forward", "no length check"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout, max_length=5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_length, d_model)
        position = torch.arange(0, max_length).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * -(math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x):
        return self.dropout(x + self.pe[:, : x.size(1)].requires_grad_(False))


@case(
    "MultiHeadAttention",
    "buggy",
    source=src("Multi_Head_Attention.py", "1433bdefd4a826d1310e2ca6d4dd06f9f648d0f9"),
    why="arguments (num_heads, d_model) in the other order, the four projections in a list `linears` (no W_q "
    "... W_o), and the mask gets another head axis (mask.unsqueeze(1)) although the contract's already has one",
    expect=r"order|swap|revers|\(num_heads, d_model\)|linears|(no|missing|lacks)\b.{0,40}\bW_[qkvo]\b",
    pattern="Constructor (num_heads, d_model, dropout=0.1): asserts d_model % num_heads == 0; linears = four "
    "Linear(d, d); dropout on the attention weights. forward(query, key, value, mask=None): mask.unsqueeze(1); "
    "project with linears[0..2], view(B, -1, h, d_k).transpose(1, 2); scores / sqrt(d_k), masked_fill(mask == "
    "0, -1e9), softmax, dropout, kept as self.attn; merge and linears[3].",
    differences=[
        "(num_heads, d_model) order",
        "linears list instead of W_q ... W_o",
        "extra mask unsqueeze",
        "dropout on the weights",
        "weights kept as attn",
    ],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, num_heads, d_model, dropout=0.1):
        super().__init__()
        assert d_model % num_heads == 0, "Dimension of model should be divisible by number of heads"
        self.dropout = nn.Dropout(p=dropout)
        self.num_heads = num_heads
        self.d_key = d_model // num_heads
        self.linears = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(4)])
        self.attn = None

    def forward(self, query, key, value, mask=None):
        if mask is not None:
            mask = mask.unsqueeze(1)
        n = query.size(0)
        q, k, v = [
            lin(t).view(n, -1, self.num_heads, self.d_key).transpose(1, 2)
            for lin, t in zip(self.linears, (query, key, value))
        ]
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_key)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        self.attn = self.dropout(scores.softmax(dim=-1))
        x = (self.attn @ v).transpose(1, 2).contiguous().view(n, -1, self.num_heads * self.d_key)
        return self.linears[-1](x)


@case(
    "create_future_mask",
    "variant",
    source=UTILS,
    why="a bool [1, size, size] mask (triu(..., 1) == 0): right values, but no head axis ([1, 1, size, size])",
    expect=r"shape|\[1, ?1, ?|4-?D|3-?D|dimension|rank|\baxis\b|\baxes\b",
    pattern="attn_shape = (1, size, size); torch.triu(ones(attn_shape), diagonal=1) cast to uint8, then == 0: a "
    "bool tensor, True on and below the diagonal, of shape [1, size, size]; no device argument.",
    differences=["shape [1, size, size] instead of [1, 1, size, size]"],
)
def create_future_mask(size):
    upper = torch.triu(torch.ones((1, size, size)), diagonal=1).type(torch.uint8)
    return upper == 0


@case(
    "EncoderLayer",
    "variant",
    source=src("Encoder.py", "f3dccc82451c24bcbb9889fae07ad663cfd55987"),
    why="pre-norm sub-layer connections, x + dropout(sublayer(norm(x))), where the contract (the paper) is "
    "post-norm, norm(x + dropout(sublayer(x)))",
    expect=r"pre-?norm|post-?norm|before (the|each) sub-?layer|normali[sz]es? (the |its )?input",
    pattern="(Adapted to the contract's constructor and names; the original receives the attention and "
    "feed-forward modules and wraps each in a SubLayerConnection.) forward(x, mask): x = x + dropout(self_attn(n, "
    "n, n, mask)) with n = norm1(x); then x + dropout(ffn(norm2(x))). The original's Encoder adds a final "
    "LayerNorm after the stack.",
    differences=["pre-norm instead of post-norm"],
)
class EncoderLayer(nn.Module):
    def __init__(self, d_model, num_heads, d_ff, dropout=0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(num_heads=num_heads, d_model=d_model)
        self.feed_forward = FeedForwardNetwork(d_model, d_ff)
        self.norm1 = LayerNorm(d_model)
        self.norm2 = LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask=None):
        n = self.norm1(x)
        x = x + self.dropout(self.self_attn(n, n, n, mask))
        return x + self.dropout(self.feed_forward(self.norm2(x)))
