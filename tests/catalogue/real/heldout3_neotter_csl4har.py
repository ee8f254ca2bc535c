"""Held-out round 3 (issue 22): a LayerNorm observed in Neotter/CSL4HAR (``model/layer_norm.py``), "in the TF style":
eps inside the square root, but named ``variance_epsilon`` with a default of 1e-12, and parameters gamma / beta.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch
from torch import nn

from . import case


@case(
    "LayerNorm",
    "buggy",
    source=dict(repo="Neotter/CSL4HAR", path="model/layer_norm.py", commit="fac405d7d704f48a494468ac6bc9c3d50529779e"),
    why="the maths is nn.LayerNorm's, but the epsilon argument is `variance_epsilon` (LayerNorm(d, eps=...) "
    "raises TypeError) with a default of 1e-12, and the parameters are gamma / beta, not weight / bias",
    expect=r"\beps\b|variance_epsilon|gamma|beta|1e-12|keyword",
    pattern="__init__(hidden_dim, variance_epsilon=1e-12): gamma = ones, beta = zeros; forward: u = mean(-1), s = "
    "mean((x - u)^2) (biased), (x - u) / sqrt(s + variance_epsilon); gamma * x + beta.",
    differences=["epsilon argument named variance_epsilon, default 1e-12", "parameters gamma / beta"],
)
class LayerNorm(nn.Module):
    def __init__(self, hidden_dim, variance_epsilon=1e-12):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(hidden_dim), requires_grad=True)
        self.beta = nn.Parameter(torch.zeros(hidden_dim), requires_grad=True)
        self.variance_epsilon = variance_epsilon

    def forward(self, x):
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.variance_epsilon)
        return self.gamma * x + self.beta
