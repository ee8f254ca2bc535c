"""Held-out round: a pattern observed in NougatCA/SPT-Code (``sources/utils/label_smoothing.py``): a
label-smoothing cross-entropy that spreads the smoothing over the other classes only and ignores no token.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
"""

import torch
from torch import nn

from . import case

SRC = dict(
    repo="NougatCA/SPT-Code",
    path="sources/utils/label_smoothing.py",
    commit="4d289af337b9fc5ff7799eb3b6be1a99562cec75",
)


@case(
    "LabelSmoothingLoss",
    "buggy",
    source=SRC,
    why="no ignore_index: padding targets are averaged in; and the smoothing goes to the V-1 other classes "
    "(smoothing / (V-1) each), not smoothing / V to every class; the constructor wants the class count first",
    expect=r"ignore_index|ignored|pad|V ?- ?1|n_class|other classes",
    pattern="Constructor (n_class, smoothing=0.0, dim=-1). forward(pred [N, V], target [N]): log_softmax of pred; "
    "a target distribution of smoothing / (n_class - 1) with 1 - smoothing scattered at the target "
    "(scatter_(1, target.unsqueeze(1))), built without grad; returns the mean over all N rows of "
    "sum(-distribution * log-probabilities). No ignore index, 2-D input only.",
    differences=["no ignore_index", "smoothing / (V-1) on the non-targets", "constructor (n_class, smoothing)"],
)
class LabelSmoothingLoss(nn.Module):
    def __init__(self, n_class, smoothing=0.0, dim=-1):
        super().__init__()
        self.n_class = n_class
        self.smoothing = smoothing
        self.dim = dim

    def forward(self, pred, target):
        logp = pred.log_softmax(dim=self.dim)
        with torch.no_grad():
            dist = torch.full_like(logp, self.smoothing / (self.n_class - 1))
            dist.scatter_(1, target.unsqueeze(1), 1.0 - self.smoothing)
        return (-dist * logp).sum(dim=self.dim).mean()
