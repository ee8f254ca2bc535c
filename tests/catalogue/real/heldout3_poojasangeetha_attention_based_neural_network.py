"""Held-out round 3 (issue 22): a positional encoding observed in Poojasangeetha/Attention-Based-Neural-Network
(``time_series_project_v2/models/positional_encoding.py``): the right table, kept as a plain tensor attribute.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import math

import torch

from . import case


@case(
    "PositionalEncoding",
    "buggy",
    source=dict(
        repo="Poojasangeetha/Attention-Based-Neural-Network",
        path="time_series_project_v2/models/positional_encoding.py",
        commit="6358e153c4a53d378954fd5f63d050167ce10274",
    ),
    why="the table is right, but it is a plain attribute `self.pe = ...`, not a registered buffer: it is not in "
    "buffers() and does not follow model.to(device) / .double()",
    expect=r"buffer|register_buffer|\.to\(|device|state_dict|named_buffers",
    pattern="__init__(d_model, max_len=5000): pe = zeros(max, d); sin on even, cos on odd features with div = "
    "exp(2i * -ln(10000) / d); self.pe = pe.unsqueeze(0) (a plain tensor attribute); forward: x + pe[:, :S].",
    differences=["pe is a plain attribute, not a buffer"],
)
class PositionalEncoding(torch.nn.Module):
    def __init__(self, d_model, max_seq_length=5000):
        super().__init__()
        pe = torch.zeros(max_seq_length, d_model)
        pos = torch.arange(0, max_seq_length).unsqueeze(1).float()
        div = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000) / d_model))
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        self.pe = pe.unsqueeze(0)

    def forward(self, x):
        return x + self.pe[:, : x.size(1)]
