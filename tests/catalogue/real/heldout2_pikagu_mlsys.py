"""Held-out round 2 (issue 22): patterns observed in PikaGu/mlsys (``models/transformer/``): a token embedding
stored as `emb`, a multi-head attention whose head merge calls ``transpose()`` with no axes, and a feed-forward
network with a required dropout argument.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import math

import torch
from torch import nn

from . import case


def src(path, commit="8a58daf0105ee9d191250984283923ee2a022c4e"):
    return dict(repo="PikaGu/mlsys", path=path, commit=commit)


@case(
    "TokenEmbedding",
    "buggy",
    source=src("models/transformer/embedding/token_embedding.py", "0ab612b25445e038395ff166661aa609aed14380"),
    why="the table is stored as `emb`, not the contract's `embedding` attribute (right maths)",
    expect=r"\bemb\b|(no|missing|lacks|without)\b.{0,30}\bembedding\b|embedding\.weight|state.?dict",
    pattern="Constructor (vocab_size, d_model): emb = nn.Embedding(vocab_size, d_model). forward: emb(x) * "
    "sqrt(d_model).",
    differences=["attribute emb instead of embedding"],
)
class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model):
        super().__init__()
        self.d_model = d_model
        self.emb = nn.Embedding(vocab_size, d_model)

    def forward(self, x):
        return self.emb(x) * math.sqrt(self.d_model)


@case(
    "MultiHeadAttention",
    "buggy",
    source=src("models/transformer/layers/multi_head_attention.py"),
    why="the head merge calls x.transpose() with no dimensions, which raises TypeError on every forward; also "
    "a required drop_prob argument, a `linears` list and an extra mask unsqueeze",
    expect=r"TypeError|transpose\(\)|drop_prob|linears",
    pattern="Constructor (d_model, h, drop_prob), all required: linears = four deep copies of one Linear(d, d), "
    "dropout on the weights. forward(query, key, value, mask) with mask required: mask.unsqueeze(1) when given; "
    "project and view(B, -1, h, d_k).transpose(1, 2); scores / sqrt(d_k), masked_fill(mask == 0, -1e9), softmax, "
    "dropout, @ value; then x.transpose() with no arguments (TypeError) before view(B, -1, h * d_k) and "
    "linears[-1].",
    differences=[
        "transpose() without dimensions raises",
        "drop_prob required",
        "linears list",
        "extra mask unsqueeze",
        "no attention_weights",
    ],
)
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, h, drop_prob):
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(4))
        self.h = h
        self.d_k = d_model // h
        self.dropout = nn.Dropout(p=drop_prob)

    def forward(self, query, key, value, mask):
        if mask is not None:
            mask = torch.unsqueeze(mask, 1)
        b = query.size(0)
        query, key, value = [
            lin(t).view(b, -1, self.h, self.d_k).transpose(1, 2) for lin, t in zip(self.linears, (query, key, value))
        ]
        scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        x = torch.matmul(self.dropout(torch.softmax(scores, dim=-1)), value)
        x = x.transpose().contiguous().view(b, -1, self.h * self.d_k)
        return self.linears[-1](x)


@case(
    "FeedForwardNetwork",
    "buggy",
    source=src("models/transformer/layers/feed_forward.py"),
    why="a third, required constructor argument drop_prob (FeedForwardNetwork(d_model, d_ff) raises TypeError), a "
    "dropout between the ReLU and the second layer, and layers named linear1 / linear2",
    expect=r"drop_prob|dropout|missing .{0,20}argument|linear1",
    pattern="Constructor (d_model, d_ff, drop_prob), all required: linear1 = Linear(d, d_ff), linear2 = "
    "Linear(d_ff, d), Dropout(drop_prob), ReLU. forward: linear2(dropout(relu(linear1(x)))).",
    differences=["required drop_prob argument", "dropout inside", "names linear1 / linear2"],
)
class FeedForwardNetwork(nn.Module):
    def __init__(self, d_model, d_ff, drop_prob):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(p=drop_prob)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.linear2(self.dropout(self.relu(self.linear1(x))))
