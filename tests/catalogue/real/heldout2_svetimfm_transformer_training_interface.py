"""Held-out round 2 (issue 22): a pattern observed in SvetimFM/transformer-training-interface
(``src/models/normalization.py``): nn.LayerNorm's maths with parameters called gamma and beta.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch
from torch import nn

from . import case

SRC = dict(
    repo="SvetimFM/transformer-training-interface",
    path="src/models/normalization.py",
    commit="84609e8f97d16e9e438055d588d785c98cb48edb",
)


@case(
    "LayerNorm",
    "buggy",
    source=SRC,
    why="right maths (biased variance, eps 1e-5 inside the root) but the parameters are gamma / beta, not the "
    "contract's weight / bias, so reference weights cannot be loaded by name",
    expect=r"gamma|beta|(no|missing|lacks)\b.{0,30}\b(weight|bias)\b|state.?dict",
    reject=r"unbiased|outside the square root|\beps\b.{0,20}default",
    pattern="Constructor (n_embed, eps=1e-5): gamma = ones, beta = zeros. forward: (x - mean) / sqrt(var(unbiased="
    "False) + eps), times gamma plus beta.",
    differences=["parameters gamma / beta instead of weight / bias"],
)
class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(d_model))
        self.beta = nn.Parameter(torch.zeros(d_model))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.gamma * ((x - mean) / torch.sqrt(var + self.eps)) + self.beta
