"""Patterns observed in pytorch/examples (``word_language_model/model.py``): the positional encoding and the
square subsequent mask of its Transformer language model.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import math

import torch
from torch import nn

from . import case

SRC = dict(
    repo="pytorch/examples",
    path="word_language_model/model.py",
    commit="001d493285083b54cacbc1334cb26338bdff2455",
)


@case(
    "PositionalEncoding",
    "variant",
    source=SRC,
    why="sequence-first: pe is [max_len, 1, d] and indexed by x.size(0), so on batch-first input it adds the "
    "encoding of position b to every token of batch row b; dropout inside",
    expect=r"batch.first|sequence.first|wrong axis|batch axis|\[1, ?max_seq_length|shape",
    pattern="Constructor (d_model, max_seq_length=5000, dropout=0.1). The sinusoid table uses frequencies "
    "exp(2i * -ln(10000)/d) (float32), sin on even and cos on odd features, and is a buffer `pe` of shape "
    "[max_len, 1, d] (sequence first). forward(x) adds pe[:x.size(0)] (the FIRST axis of x) and applies "
    "its own dropout.",
    differences=["sequence-first table [max_len, 1, d] indexed by the first axis", "dropout inside", "no length check"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_seq_length=5000, dropout=0.1):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        freq = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        angle = torch.arange(max_seq_length, dtype=torch.float)[:, None] * freq
        table = torch.zeros(max_seq_length, 1, d_model)
        table[:, 0, 0::2] = angle.sin()
        table[:, 0, 1::2] = angle.cos()
        self.register_buffer("pe", table)

    def forward(self, x):
        return self.dropout(x + self.pe[: x.shape[0]])


@case(
    "create_future_mask",
    "variant",
    source=SRC,
    why="nn.Transformer's additive float mask (0 where allowed, -inf where blocked), 2-D [sz, sz]",
    expect=r"bool|float|additive|-inf|\[1, ?1, ?\d+, ?\d+\]",
    pattern="Returns a 2-D float32 [size, size] additive mask: 0.0 on and below the diagonal, -inf above it "
    "(the convention of nn.Transformer); device is ignored.",
    differences=["additive float mask (0 / -inf) instead of bool", "2-D [size, size]"],
)
def create_future_mask(size, device=None):
    upper = torch.ones(size, size, dtype=torch.bool).triu(diagonal=1)
    return torch.zeros(size, size).masked_fill(upper, float("-inf"))
