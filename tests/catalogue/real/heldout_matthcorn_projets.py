"""Held-out round: a pattern observed in MatthCorn/Projets (``Complete/TypeClassic/PositionalEncoding.py``):
a positional encoding whose second constructor argument is the dropout rate.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import math

import torch
from torch import nn

from . import case

SRC = dict(
    repo="MatthCorn/Projets",
    path="Complete/TypeClassic/PositionalEncoding.py",
    commit="b21650b7ae4ae380712c1aa35ddb3d4bb6477bf9",
)


@case(
    "PositionalEncoding",
    "buggy",
    source=SRC,
    why="constructor (d_model, dropout=0., max_len=5000, device): PositionalEncoding(d, 50) takes 50 as the "
    "dropout rate (nn.Dropout raises); also dropout inside and no length check",
    expect=r"dropout|second (positional )?argument|max_seq_length|argument",
    pattern="Constructor (d_att, dropout=0., max_len=5000, device=cpu): the second positional argument is the "
    "dropout rate. Buffer pe [1, max_len, d]: sin / cos of pos * exp(2i * -ln(10000) / d) on even / odd "
    "features (float32), moved to `device`. forward returns dropout(x + pe[:, :S]); no length check.",
    differences=["second positional argument is dropout", "dropout inside", "no length check", "device argument"],
)
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.0, max_seq_length=5000, device="cpu"):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pos = torch.arange(max_seq_length)[:, None]
        freq = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(1, max_seq_length, d_model)
        table[0, :, 0::2] = torch.sin(pos * freq)
        table[0, :, 1::2] = torch.cos(pos * freq)
        self.register_buffer("pe", table.to(device=device))

    def forward(self, x):
        return self.dropout(x + self.pe[:, : x.size(1)])
