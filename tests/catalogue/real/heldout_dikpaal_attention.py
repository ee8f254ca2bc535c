"""Held-out round: patterns observed in dikpaal/attenton-is-all-you-need: batch-first masks built by
broadcasting, a static attention helper, and a positional encoding that adds to its input in place.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import math

import torch
from torch import nn

from . import PASSES, case

COMMIT = "bdeb10509f9d42bd4a0571bb40eb02c4536568da"


def src(path):
    return dict(repo="dikpaal/attenton-is-all-you-need", path=path, commit=COMMIT)


@case(
    "create_masks",
    "correct",
    source=src("utils/masks.py"),
    why="[B,1,1,S] source padding mask, and target padding AND a lower triangle made on the target's device",
    expect=PASSES,
    pattern="src_mask = (src != pad).unsqueeze(1).unsqueeze(2); tgt padding the same way; "
    "torch.tril(torch.ones(T, T, device=tgt.device)).bool(); tgt_mask = padding & triangle, broadcast to "
    "[B, 1, T, T]; returns (src_mask, tgt_mask).",
    differences=["triangle built with tril(ones).bool() on the target's device"],
)
def create_masks(src, tgt, pad_idx=0):
    keep_src = (src != pad_idx)[:, None, None, :]
    keep_tgt = (tgt != pad_idx)[:, None, None, :]
    n = tgt.size(1)
    below = torch.ones(n, n, device=tgt.device).tril().bool()
    return keep_src, keep_tgt & below


@case(
    "scaled_dot_product_attention",
    "correct",
    source=src("model/transformer_modules.py"),
    why="softmax(QK^T/sqrt(d_k)) with -1e9 fill (in place on the fresh score tensor, not on an input); the "
    "dropout argument is optional here",
    expect=PASSES,
    pattern="A static helper of the attention module (query, key, value, mask, dropout), both last ones passed "
    "every time (here given defaults of None, as a free function needs): scores = q @ k^T / sqrt(d_k) with "
    "d_k from the query; scores.masked_fill_(mask == 0, -1e9) in place on the scores; softmax over the keys; "
    "dropout on the weights when given; returns (weights @ v, weights).",
    differences=["-1e9 fill, in place on the score tensor", "extra optional dropout argument"],
)
def scaled_dot_product_attention(query, key, value, mask=None, dropout=None):
    scores = (query @ key.transpose(-2, -1)) / math.sqrt(query.shape[-1])
    if mask is not None:
        scores.masked_fill_(mask == 0, -1e9)
    weights = scores.softmax(dim=-1)
    if dropout is not None:
        weights = dropout(weights)
    return weights @ value, weights


@case(
    "PositionalEncoding",
    "buggy",
    source=src("model/transformer_modules.py"),
    why="`x += pe` changes the caller's tensor in place; the constructor also requires a dropout argument "
    "and applies dropout itself",
    expect=r"in[- ]place|modif|changes? (the|your|its)? ?input|dropout",
    pattern="Constructor (d_model, len_of_sequence, dropout), all three required. Buffer pe [1, L, d]: sin / cos "
    "of pos * exp(2i * -ln(10000) / d) on even / odd features (float32). forward does x += pe[:, :S] (in place "
    "on the input) and returns dropout(x); no length check.",
    differences=["in-place add to the input", "dropout argument required, dropout inside", "no length check"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length, dropout):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        pos = torch.arange(max_seq_length, dtype=torch.float)[:, None]
        freq = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_seq_length, d_model)
        table[:, 0::2] = torch.sin(pos * freq)
        table[:, 1::2] = torch.cos(pos * freq)
        self.register_buffer("pe", table.unsqueeze(0))

    def forward(self, x):
        x += self.pe[:, : x.shape[1], :]
        return self.dropout(x)
