"""Held-out round 3 (issue 22): a label-smoothing loss observed in zhongmoxingzhe/Code-Context-Aware-TODO-Tracking
(``.ipynb_checkpoints/LabelSmoothing-checkpoint.py``): written for a 2-class problem, the number of classes is a
constructor argument (default 2) instead of the logits' width, and nothing is ignored.

Each case reproduces, in our own code, the behaviour its ``pattern`` describes; no code is copied.
Expectations were written before anything was graded.
"""

import torch
from torch import nn

from . import case


@case(
    "LabelSmoothingLoss",
    "buggy",
    source=dict(
        repo="zhongmoxingzhe/Code-Context-Aware-TODO-Tracking",
        path=".ipynb_checkpoints/LabelSmoothing-checkpoint.py",
        commit="ec594620e125156d36e557cdea66d0a45c14ee89",
    ),
    why="the smoothing mass is spread as smoothing / (classes - 1) with classes = 2 (a constructor default), not "
    "over the V classes of the logits, so every wrong class gets the whole smoothing and the target distribution "
    "sums to far more than 1; padding targets are never ignored",
    expect=r"classes|sums? to|mass|distribution|(not|never|doesn't|does not|without)\b.{0,30}ignor|"
    r"ignor\w*.{0,40}(not|never|unused)|pad(ding)? (tokens?|positions?|targets?)",
    reject=r"V ?- ?2",
    pattern="(Adapted: the original's constructor is (classes=2, smoothing=0.1, dim=-1); here (smoothing=0.1, "
    "ignore_index=0, classes=2), the index stored but unused, and logits flattened to [N, V].) log_softmax; "
    "true_dist = full(smoothing / (classes - 1)) with 1 - smoothing scattered at the target; mean over the rows of "
    "sum(-true_dist * log_probs).",
    differences=["smoothing / (classes - 1) with classes = 2, not V", "no ignore_index"],
)
class LabelSmoothingLoss(nn.Module):
    def __init__(self, smoothing=0.1, ignore_index=0, classes=2):
        super().__init__()
        self.confidence = 1.0 - smoothing
        self.smoothing = smoothing
        self.ignore_index = ignore_index
        self.cls = classes

    def forward(self, logits, target):
        pred = logits.reshape(-1, logits.size(-1)).log_softmax(dim=-1)
        with torch.no_grad():
            true_dist = torch.zeros_like(pred)
            true_dist.fill_(self.smoothing / (self.cls - 1))
            true_dist.scatter_(1, target.reshape(-1, 1), self.confidence)
        return torch.mean(torch.sum(-true_dist * pred, dim=-1))
